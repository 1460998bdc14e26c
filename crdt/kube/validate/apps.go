package validate

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	"k8s.io/kubernetes/pkg/apis/apps"
	appsvalidation "k8s.io/kubernetes/pkg/apis/apps/validation"
	"k8s.io/kubernetes/pkg/apis/batch"
	batchvalidation "k8s.io/kubernetes/pkg/apis/batch/validation"
)

// As in core.go, each function mirrors the strategies of its kind in
// k8s.io/kubernetes/pkg/registry/{apps,batch}/<kind>/strategy.go.

func deployment(d *apps.Deployment) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(&d.Spec.Template, nil)
	errs := appsvalidation.ValidateDeployment(d, opts)
	return append(errs, appsvalidation.ValidateDeploymentStatusUpdate(d, d)...)
}

func replicaSet(rs *apps.ReplicaSet) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(&rs.Spec.Template, nil)
	errs := appsvalidation.ValidateReplicaSet(rs, opts)
	return append(errs, appsvalidation.ValidateReplicaSetStatusUpdate(rs, rs)...)
}

func statefulSet(ss *apps.StatefulSet) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(&ss.Spec.Template, nil)
	errs := appsvalidation.ValidateStatefulSet(ss, opts)
	return append(errs, appsvalidation.ValidateStatefulSetStatusUpdate(ss, ss)...)
}

func daemonSet(ds *apps.DaemonSet) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(&ds.Spec.Template, nil)
	errs := appsvalidation.ValidateDaemonSet(ds, opts)
	return append(errs, appsvalidation.ValidateDaemonSetStatusUpdate(ds, ds)...)
}

func controllerRevision(cr *apps.ControllerRevision) field.ErrorList {
	return appsvalidation.ValidateControllerRevisionCreate(cr)
}

// job: the options are those the job strategy's validationOptionsForJob
// (unexported) gives a new Job. For the status, its getStatusValidationOptions
// turns on rules about transitions (a counter decreasing, a terminal
// condition removed, ...), which an unchanged status always passes; with
// those off, what fires are the status's own rules (counts, conditions).
func job(j *batch.Job) field.ErrorList {
	opts := batchvalidation.JobValidationOptions{
		PodValidationOptions:  podutil.GetValidationOptionsFromPodTemplate(&j.Spec.Template, nil),
		RequirePrefixedLabels: true,
	}
	errs := batchvalidation.ValidateJob(j, opts)
	status := batchvalidation.JobStatusValidationOptions{AllowForSuccessCriteriaMetInExtendedScope: true}
	return append(errs, batchvalidation.ValidateJobUpdateStatus(j, j, status)...)
}

// cronJob: the CronJob status strategy validates nothing.
func cronJob(cj *batch.CronJob) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(&cj.Spec.JobTemplate.Spec.Template, nil)
	return batchvalidation.ValidateCronJobCreate(cj, opts)
}
