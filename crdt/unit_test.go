package crdt

import (
	"strings"
	"testing"
)

// TestUnitsAreFlattensLeaves ties kube.Node.Unit, which the model checker
// derives its merge units from, to the leaves flatten cuts a document into:
// every leaf is its own unit, and a place below a leaf lies in the leaf's.
func TestUnitsAreFlattensLeaves(t *testing.T) {
	objects := []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","generation":2,"labels":{"app":"web"},"annotations":{"deployment.kubernetes.io/revision":"1"}},` +
			`"spec":{"replicas":2,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":0,"maxUnavailable":1}},` +
			`"template":{"spec":{"containers":[{"name":"app","image":"nginx:1","args":["-v"],"ports":[{"containerPort":80,"protocol":"TCP"}]}]}}},` +
			`"status":{"replicas":2,"readyReplicas":1,"conditions":[{"type":"Available","status":"True"}]}}`,
		`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"kube-controller-manager","finalizers":["a","b"]},"spec":{"holderIdentity":"site-a","leaseTransitions":3}}`,
	}
	for _, value := range objects {
		fields, ok := flatten([]byte(value), nil)
		if !ok {
			t.Fatalf("not a document: %s", value)
		}
		root := fieldsNode(nil, fields)
		if !root.Known() {
			t.Fatalf("no schema for %s", value)
		}
		leaves := 0
		for k, v := range fields {
			if !strings.HasPrefix(k, leafPrefix) {
				continue
			}
			leaves++
			p := k[len(leafPrefix):]
			if got := root.Unit(p); got != p {
				t.Errorf("leaf %s: Unit = %s", p, got)
			}
			if v[0] == '{' || v[0] == '[' {
				if got := root.Unit(p + "/0"); got != p {
					t.Errorf("below leaf %s: Unit = %s", p, got)
				}
			}
		}
		if leaves < 5 {
			t.Errorf("only %d leaves in %s", leaves, value)
		}
	}
}
