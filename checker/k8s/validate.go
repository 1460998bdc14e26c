package k8s

import "github.com/rhizome-kv/rhizome/checker/consistency"

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

// kubeRules holds each kind's merge units under rhizome, as crdt/ merges
// built-in kinds: status is one unit, spec fields merge one by one,
// metadata.generation moves after a concurrent spec merge, and validFields
// decides the validation fallback. Nil for kinds with nothing to add.
var kubeRules = func() [numKinds]*consistency.Kube {
	var out [numKinds]*consistency.Kube
	mk := func(k Kind, gen int, spec []int, status ...int) {
		r := &consistency.Kube{Gen: gen, Valid: func(f *[NF]int32) bool { return validFields(k, f) }}
		for _, i := range spec {
			r.Spec |= 1 << i
		}
		for _, i := range status {
			r.Unit[i] = 1
		}
		out[k] = r
	}
	mk(KindNode, -1, nil, NReady, NCapacity)
	mk(KindPod, -1, []int{PNode, PNever, FImage}, PPhase, PReady)
	mk(KindReplicaSet, RSGen, []int{FImage, RSReplicas, RSSelHash}, RSStatus, RSReady, RSObserved)
	mk(KindDeployment, DGen, []int{FImage, DReplicas, DPaused, DMaxSurge, DMaxUnavail}, DStatus, DUpdated, DObserved, DReady)
	mk(KindStatefulSet, SSGen, []int{FImage, SSReplicas, SSClaims}, SSStatus, SSReady, SSCurrent, SSUpdated, SSObserved, SSCurRev, SSUpdRev)
	mk(KindControllerRevision, -1, nil)
	mk(KindPVC, -1, []int{PVCOrdinal, PVCSet})
	mk(KindLease, -1, []int{LHolder, LTerm}, LHolder, LTerm) // a Lease's spec is one unit
	mk(KindJob, -1, []int{JCompletions, JParallelism}, JActive, JReady, JSucceeded, JFailed, JComplete, JUncSucc, JUncFail)
	return out
}()
