package k8s

import (
	"fmt"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
)

// deploymentJSON renders the modelled fields of a Deployment into the object
// kube-apiserver stores (a strategy slot is its value plus one; 0: unset).
func deploymentJSON(f *[NF]int32) []byte {
	ru := ""
	if f[DMaxSurge] != 0 {
		ru += fmt.Sprintf(`"maxSurge":%d`, f[DMaxSurge]-1)
	}
	if f[DMaxUnavail] != 0 {
		if ru != "" {
			ru += ","
		}
		ru += fmt.Sprintf(`"maxUnavailable":%d`, f[DMaxUnavail]-1)
	}
	return fmt.Appendf(nil, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"dep","namespace":"default","generation":1},`+
		`"spec":{"replicas":2,"selector":{"matchLabels":{"app":"dep"}},"strategy":{"type":"RollingUpdate","rollingUpdate":{%s}},`+
		`"template":{"metadata":{"labels":{"app":"dep"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}},`+
		`"status":{"replicas":%d,"updatedReplicas":%d,"readyReplicas":%d}}`, ru, f[DStatus], f[DUpdated], f[DReady])
}

// replicaSetJSON renders the modelled status of a ReplicaSet.
func replicaSetJSON(f *[NF]int32) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"rs","namespace":"default"},`+
		`"spec":{"replicas":2,"selector":{"matchLabels":{"app":"dep"}},`+
		`"template":{"metadata":{"labels":{"app":"dep"}},"spec":{"containers":[{"name":"app","image":"app:1"}]}}},`+
		`"status":{"replicas":%d,"readyReplicas":%d}}`, f[RSStatus], f[RSReady])
}

// TestValidFieldsAgreeWithKubernetes ties the model's validator to
// kube-apiserver's validation (crdt/kube/validate, which the store's merges
// use) over every combination of the modelled fields it judges.
func TestValidFieldsAgreeWithKubernetes(t *testing.T) {
	verdicts := map[bool]int{}
	check := func(k Kind, f *[NF]int32, value []byte) {
		t.Helper()
		err := validate.Object(value)
		verdicts[err == nil]++
		if got := validFields(k, f); got != (err == nil) {
			t.Errorf("%s %s: model says valid=%v, kube-apiserver: %v", k, value, got, err)
		}
	}
	var f [NF]int32
	for surge := range int32(3) {
		for unavail := range int32(3) {
			for st := range int32(3) {
				for upd := range int32(3) {
					for ready := range int32(3) {
						f[DMaxSurge], f[DMaxUnavail], f[DStatus], f[DUpdated], f[DReady] = surge, unavail, st, upd, ready
						check(KindDeployment, &f, deploymentJSON(&f))
					}
				}
			}
		}
	}
	f = [NF]int32{}
	for st := range int32(3) {
		for ready := range int32(3) {
			f[RSStatus], f[RSReady] = st, ready
			check(KindReplicaSet, &f, replicaSetJSON(&f))
		}
	}
	if verdicts[true] == 0 || verdicts[false] == 0 {
		t.Errorf("verdicts %v: the grid must hold valid and invalid objects", verdicts)
	}
}
