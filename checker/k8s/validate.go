package k8s

import (
	"fmt"
	"sync"

	"github.com/rhizome-kv/rhizome/checker/consistency"
)

// validObject mirrors kube-apiserver's validation of the modelled fields
// (k8s.io/kubernetes/pkg/apis/apps/validation): a Deployment's RollingUpdate
// may not have both maxSurge and maxUnavailable 0, and no workload's status
// may count more ready or updated replicas than replicas.
func validObject(o *Object) bool { return validFields(o.Kind, &o.F) }

func validFields(k Kind, f *[NF]int32) bool {
	switch k {
	case KindDeployment:
		return !(f[DMaxSurge] == 1 && f[DMaxUnavail] == 1) && f[DReady] <= f[DStatus] && f[DUpdated] <= f[DStatus]
	case KindReplicaSet:
		return f[RSReady] <= f[RSStatus]
	}
	return true
}

// kindAPIVersions names each kind's group and version.
var kindAPIVersions = [numKinds]string{
	KindNode: "v1", KindPod: "v1", KindReplicaSet: "apps/v1", KindDeployment: "apps/v1",
	KindStatefulSet: "apps/v1", KindControllerRevision: "apps/v1", KindPVC: "v1", KindJob: "batch/v1",
	KindLease: "coordination.k8s.io/v1",
}

// template is where a workload's pod template puts the container the model's
// FImage slot stands for (containers are a list-map keyed by name).
const template = `/spec/template/spec/containers/"app"/image`

// fieldPaths places each kind's field slots in the Kubernetes object (JSON
// pointers, as consistency.NewKube takes them; "" for an unused slot).
var fieldPaths = [numKinds][NF]string{
	KindNode: {NReady: `/status/conditions/"Ready"/status`, NCapacity: "/status/allocatable/pods"},
	KindPod: {PNode: "/spec/nodeName", FImage: `/spec/containers/"app"/image`, PPhase: "/status/phase",
		PReady: `/status/conditions/"Ready"/status`, PFinal: `/metadata/finalizers/"batch.kubernetes.io~1job-tracking"`,
		PHash: "/metadata/labels/pod-template-hash", PNever: "/spec/restartPolicy"},
	KindReplicaSet: {FImage: template, RSReplicas: "/spec/replicas", RSStatus: "/status/replicas",
		RSReady: "/status/readyReplicas", RSGen: "/metadata/generation", RSObserved: "/status/observedGeneration",
		RSLabelHash: "/metadata/labels/pod-template-hash", RSSelHash: "/spec/selector/matchLabels/pod-template-hash",
		RSAnnUser: "/metadata/annotations/user", RSAnnRev: "/metadata/annotations/deployment.kubernetes.io~1revision"},
	KindDeployment: {FImage: template, DReplicas: "/spec/replicas", DStatus: "/status/replicas",
		DUpdated: "/status/updatedReplicas", DGen: "/metadata/generation", DObserved: "/status/observedGeneration",
		DPaused: "/spec/paused", DAnnUser: "/metadata/annotations/user", DReady: "/status/readyReplicas",
		DMaxSurge: "/spec/strategy/rollingUpdate/maxSurge", DMaxUnavail: "/spec/strategy/rollingUpdate/maxUnavailable"},
	KindStatefulSet: {FImage: template, SSReplicas: "/spec/replicas", SSStatus: "/status/replicas",
		SSReady: "/status/readyReplicas", SSCurrent: "/status/currentReplicas", SSUpdated: "/status/updatedReplicas",
		SSGen: "/metadata/generation", SSObserved: "/status/observedGeneration", SSCurRev: "/status/currentRevision",
		SSUpdRev: "/status/updateRevision", SSClaims: "/spec/volumeClaimTemplates"},
	KindControllerRevision: {CRRevision: "/revision"},
	KindPVC:                {PVCOrdinal: "/metadata/labels/ordinal", PVCSet: "/metadata/labels/set"},
	KindJob: {FImage: template, JCompletions: "/spec/completions", JParallelism: "/spec/parallelism",
		JActive: "/status/active", JReady: "/status/ready", JSucceeded: "/status/succeeded", JFailed: "/status/failed",
		JComplete: `/status/conditions/"Complete"/status`, JUncSucc: "/status/uncountedTerminatedPods/succeeded",
		JUncFail: "/status/uncountedTerminatedPods/failed"},
	KindLease: {LHolder: "/spec/holderIdentity", LTerm: "/spec/leaseTransitions"},
}

// commonPaths places the slots every kind shares (ownerReferences are a
// list-map keyed by uid).
var commonPaths = [...]string{
	FOwnerKind: `/metadata/ownerReferences/"owner"/kind`,
	FOwner:     `/metadata/ownerReferences/"owner"/name`,
	FDeleting:  "/metadata/deletionTimestamp",
}

// kubeRules returns each kind's merge rules under rhizome, taken from
// crdt/kube's schemas by consistency.NewKube (status one unit, a Lease's spec
// one unit, metadata.generation moved after a concurrent spec merge), with
// validFields deciding the validation fallback. Built on first use: the
// schemas are parsed then. New reports its error; kubeRule may ignore it.
var kubeRules = sync.OnceValues(func() ([numKinds]*consistency.Kube, error) {
	var out [numKinds]*consistency.Kube
	for k := KindNode; int(k) < numKinds; k++ {
		paths := fieldPaths[k]
		for i, p := range commonPaths {
			if p != "" && paths[i] == "" {
				paths[i] = p
			}
		}
		r, err := consistency.NewKube(kindAPIVersions[k], k.String(), paths, func(f [NF]int32) bool { return validFields(k, &f) })
		if err != nil {
			return out, fmt.Errorf("k8s: merge rules of %s: %w", k, err)
		}
		out[k] = r
	}
	return out, nil
})

// kubeRule returns kind k's merge rules under rhizome.
func kubeRule(k Kind) *consistency.Kube {
	rules, _ := kubeRules()
	return rules[k]
}
