package validate

import (
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/kubernetes/pkg/apis/autoscaling"
	autoscalingvalidation "k8s.io/kubernetes/pkg/apis/autoscaling/validation"
	"k8s.io/kubernetes/pkg/apis/coordination"
	coordinationvalidation "k8s.io/kubernetes/pkg/apis/coordination/validation"
	"k8s.io/kubernetes/pkg/apis/discovery"
	discoveryvalidation "k8s.io/kubernetes/pkg/apis/discovery/validation"
	"k8s.io/kubernetes/pkg/apis/networking"
	networkingvalidation "k8s.io/kubernetes/pkg/apis/networking/validation"
	"k8s.io/kubernetes/pkg/apis/policy"
	policyvalidation "k8s.io/kubernetes/pkg/apis/policy/validation"
	"k8s.io/kubernetes/pkg/apis/rbac"
	rbacvalidation "k8s.io/kubernetes/pkg/apis/rbac/validation"
	"k8s.io/kubernetes/pkg/apis/scheduling"
	schedulingvalidation "k8s.io/kubernetes/pkg/apis/scheduling/validation"
	"k8s.io/kubernetes/pkg/features"
)

// As in core.go, each function mirrors the strategies of its kind in
// k8s.io/kubernetes/pkg/registry/<group>/<kind>/strategy.go. Strategies
// that also call rest.ValidateDeclarativelyWithMigrationChecks do so
// without WithDeclarativeEnforcement for every kind here, so declarative
// validation only shadows the handwritten one (metrics on mismatch) and the
// handwritten errors below are exactly what kube-apiserver returns.

// horizontalPodAutoscaler: the options are those the strategy's
// validationOptionsForHorizontalPodAutoscaler (unexported) gives a new HPA.
func horizontalPodAutoscaler(h *autoscaling.HorizontalPodAutoscaler) field.ErrorList {
	opts := autoscalingvalidation.HorizontalPodAutoscalerSpecValidationOptions{
		MinReplicasLowerBound: 1,
		ScaleTargetRefValidationOptions: autoscalingvalidation.CrossVersionObjectReferenceValidationOptions{
			AllowEmptyAPIGroup: h.Spec.ScaleTargetRef.Kind == "ReplicationController",
		},
		ObjectMetricsValidationOptions: autoscalingvalidation.CrossVersionObjectReferenceValidationOptions{
			AllowEmptyAPIGroup: true,
		},
	}
	if utilfeature.DefaultFeatureGate.Enabled(features.HPAScaleToZero) {
		opts.MinReplicasLowerBound = 0
	}
	errs := autoscalingvalidation.ValidateHorizontalPodAutoscaler(h, opts)
	return append(errs, autoscalingvalidation.ValidateHorizontalPodAutoscalerStatusUpdate(h, h)...)
}

// podDisruptionBudget: status rules depend on the request's version; every
// client writes policy/v1, the only version served.
func podDisruptionBudget(pdb *policy.PodDisruptionBudget) field.ErrorList {
	opts := policyvalidation.PodDisruptionBudgetValidationOptions{AllowInvalidLabelValueInSelector: false}
	errs := policyvalidation.ValidatePodDisruptionBudget(pdb, opts)
	return append(errs, policyvalidation.ValidatePodDisruptionBudgetStatusUpdate(pdb.Status, pdb.Status,
		field.NewPath("status"), policyv1.SchemeGroupVersion)...)
}

func lease(l *coordination.Lease) field.ErrorList {
	return coordinationvalidation.ValidateLease(l)
}

func endpointSlice(es *discovery.EndpointSlice) field.ErrorList {
	return discoveryvalidation.ValidateEndpointSliceCreate(es)
}

func ingress(i *networking.Ingress) field.ErrorList {
	errs := networkingvalidation.ValidateIngressCreate(i)
	return append(errs, networkingvalidation.ValidateIngressStatusUpdate(i, i)...)
}

func ingressClass(ic *networking.IngressClass) field.ErrorList {
	return networkingvalidation.ValidateIngressClass(ic)
}

func networkPolicy(np *networking.NetworkPolicy) field.ErrorList {
	opts := networkingvalidation.ValidationOptionsForNetworking(np, nil)
	return networkingvalidation.ValidateNetworkPolicy(np, opts)
}

func ipAddress(ip *networking.IPAddress) field.ErrorList {
	return networkingvalidation.ValidateIPAddress(ip)
}

func serviceCIDR(sc *networking.ServiceCIDR) field.ErrorList {
	errs := networkingvalidation.ValidateServiceCIDR(sc)
	return append(errs, networkingvalidation.ValidateServiceCIDRStatusUpdate(sc, sc)...)
}

func role(r *rbac.Role) field.ErrorList {
	return rbacvalidation.ValidateRole(r)
}

func clusterRole(cr *rbac.ClusterRole) field.ErrorList {
	opts := rbacvalidation.ClusterRoleValidationOptions{AllowInvalidLabelValueInSelector: false}
	return rbacvalidation.ValidateClusterRole(cr, opts)
}

func roleBinding(rb *rbac.RoleBinding) field.ErrorList {
	return rbacvalidation.ValidateRoleBinding(rb)
}

func clusterRoleBinding(crb *rbac.ClusterRoleBinding) field.ErrorList {
	return rbacvalidation.ValidateClusterRoleBinding(crb)
}

func priorityClass(pc *scheduling.PriorityClass) field.ErrorList {
	return schedulingvalidation.ValidatePriorityClass(pc)
}
