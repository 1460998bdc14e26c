package validate

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/apis/apps"
	"k8s.io/kubernetes/pkg/apis/autoscaling"
	"k8s.io/kubernetes/pkg/apis/batch"
	"k8s.io/kubernetes/pkg/apis/coordination"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/apis/discovery"
	"k8s.io/kubernetes/pkg/apis/networking"
	"k8s.io/kubernetes/pkg/apis/policy"
	"k8s.io/kubernetes/pkg/apis/rbac"
	"k8s.io/kubernetes/pkg/apis/scheduling"
)

// rule validates one decoded object of the internal type of its kind and
// returns kube-apiserver's field errors.
type rule func(obj runtime.Object) field.ErrorList

// typed adapts a validation function of one internal type to a rule.
func typed[T runtime.Object](check func(T) field.ErrorList) rule {
	return func(obj runtime.Object) field.ErrorList {
		o, ok := obj.(T)
		if !ok {
			return field.ErrorList{field.InternalError(nil, fmt.Errorf("validate: decoded %T", obj))}
		}
		return check(o)
	}
}

// ruleFor is the rule of a covered kind, nil for every other kind.
func ruleFor(gk schema.GroupKind) rule {
	switch gk.Group {
	case api.GroupName:
		return coreRule(gk.Kind)
	case apps.GroupName:
		return appsRule(gk.Kind)
	case batch.GroupName:
		return batchRule(gk.Kind)
	case autoscaling.GroupName:
		return one(gk.Kind, "HorizontalPodAutoscaler", typed(horizontalPodAutoscaler))
	case policy.GroupName:
		return one(gk.Kind, "PodDisruptionBudget", typed(podDisruptionBudget))
	case coordination.GroupName:
		return one(gk.Kind, "Lease", typed(lease))
	case discovery.GroupName:
		return one(gk.Kind, "EndpointSlice", typed(endpointSlice))
	case networking.GroupName:
		return networkingRule(gk.Kind)
	case rbac.GroupName:
		return rbacRule(gk.Kind)
	case scheduling.GroupName:
		return one(gk.Kind, "PriorityClass", typed(priorityClass))
	}
	return nil
}

// one is r when kind is want, else nil.
func one(kind, want string, r rule) rule {
	if kind == want {
		return r
	}
	return nil
}

func coreRule(kind string) rule {
	switch kind {
	case "Pod":
		return typed(pod)
	case "PodTemplate":
		return typed(podTemplate)
	case "ReplicationController":
		return typed(replicationController)
	case "Service":
		return typed(service)
	case "Endpoints":
		return typed(endpoints)
	case "ConfigMap":
		return typed(configMap)
	case "Secret":
		return typed(secret)
	case "ServiceAccount":
		return typed(serviceAccount)
	case "Namespace":
		return typed(namespace)
	case "Node":
		return typed(node)
	case "PersistentVolume":
		return typed(persistentVolume)
	case "PersistentVolumeClaim":
		return typed(persistentVolumeClaim)
	case "ResourceQuota":
		return typed(resourceQuota)
	case "LimitRange":
		return typed(limitRange)
	}
	return nil
}

func appsRule(kind string) rule {
	switch kind {
	case "Deployment":
		return typed(deployment)
	case "ReplicaSet":
		return typed(replicaSet)
	case "StatefulSet":
		return typed(statefulSet)
	case "DaemonSet":
		return typed(daemonSet)
	case "ControllerRevision":
		return typed(controllerRevision)
	}
	return nil
}

func batchRule(kind string) rule {
	switch kind {
	case "Job":
		return typed(job)
	case "CronJob":
		return typed(cronJob)
	}
	return nil
}

func networkingRule(kind string) rule {
	switch kind {
	case "Ingress":
		return typed(ingress)
	case "IngressClass":
		return typed(ingressClass)
	case "NetworkPolicy":
		return typed(networkPolicy)
	case "IPAddress":
		return typed(ipAddress)
	case "ServiceCIDR":
		return typed(serviceCIDR)
	}
	return nil
}

func rbacRule(kind string) rule {
	switch kind {
	case "Role":
		return typed(role)
	case "ClusterRole":
		return typed(clusterRole)
	case "RoleBinding":
		return typed(roleBinding)
	case "ClusterRoleBinding":
		return typed(clusterRoleBinding)
	}
	return nil
}
