package validate

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	api "k8s.io/kubernetes/pkg/apis/core"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	volumevalidation "k8s.io/kubernetes/pkg/volume/validation"
)

// The functions below run, for one kind each, what its strategy in
// k8s.io/kubernetes/pkg/registry/core/<kind>/strategy.go runs: the object
// validation of Validate (with the options a new object gets) and the
// status strategy's ValidateUpdate with the object as its own old object.

// pod runs validatePodMetadataAndSpec through ValidatePodUpdate (not
// ValidatePodCreate, which forbids ephemeral containers: they are added by
// an update of a stored pod) and ValidatePodStatusUpdate.
func pod(p *api.Pod) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodSpecAndMeta(&p.Spec, nil, &p.ObjectMeta, nil)
	opts.ResourceIsPod = true
	errs := corevalidation.ValidatePodUpdate(p, p, opts)
	return append(errs, corevalidation.ValidatePodStatusUpdate(p, p, opts)...)
}

func podTemplate(t *api.PodTemplate) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(&t.Template, nil)
	return corevalidation.ValidatePodTemplate(t, opts)
}

func replicationController(rc *api.ReplicationController) field.ErrorList {
	opts := podutil.GetValidationOptionsFromPodTemplate(rc.Spec.Template, nil)
	errs := corevalidation.ValidateReplicationController(rc, opts)
	return append(errs, corevalidation.ValidateReplicationControllerStatusUpdate(rc, rc)...)
}

func service(s *api.Service) field.ErrorList {
	errs := corevalidation.ValidateServiceCreate(s)
	return append(errs, corevalidation.ValidateServiceStatusUpdate(s, s)...)
}

func endpoints(e *api.Endpoints) field.ErrorList {
	return corevalidation.ValidateEndpointsCreate(e)
}

func configMap(c *api.ConfigMap) field.ErrorList {
	return corevalidation.ValidateConfigMap(c)
}

func secret(s *api.Secret) field.ErrorList {
	return corevalidation.ValidateSecret(s)
}

func serviceAccount(sa *api.ServiceAccount) field.ErrorList {
	return corevalidation.ValidateServiceAccount(sa)
}

func namespace(ns *api.Namespace) field.ErrorList {
	errs := corevalidation.ValidateNamespace(ns)
	return append(errs, corevalidation.ValidateNamespaceStatusUpdate(ns, ns)...)
}

// node: the node status strategy validates with ValidateNodeUpdate.
func node(n *api.Node) field.ErrorList {
	errs := corevalidation.ValidateNode(n)
	return append(errs, corevalidation.ValidateNodeUpdate(n, n)...)
}

func persistentVolume(pv *api.PersistentVolume) field.ErrorList {
	opts := corevalidation.ValidationOptionsForPersistentVolume(pv, nil)
	errs := corevalidation.ValidatePersistentVolume(pv, opts)
	errs = append(errs, volumevalidation.ValidatePersistentVolume(pv)...)
	return append(errs, corevalidation.ValidatePersistentVolumeStatusUpdate(pv, pv)...)
}

func persistentVolumeClaim(pvc *api.PersistentVolumeClaim) field.ErrorList {
	opts := corevalidation.ValidationOptionsForPersistentVolumeClaim(pvc, nil)
	errs := corevalidation.ValidatePersistentVolumeClaim(pvc, opts)
	return append(errs, corevalidation.ValidatePersistentVolumeClaimStatusUpdate(pvc, pvc, opts)...)
}

func resourceQuota(rq *api.ResourceQuota) field.ErrorList {
	errs := corevalidation.ValidateResourceQuota(rq)
	return append(errs, corevalidation.ValidateResourceQuotaStatusUpdate(rq, rq)...)
}

func limitRange(lr *api.LimitRange) field.ErrorList {
	return corevalidation.ValidateLimitRange(lr)
}
