package validate_test

import (
	"fmt"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// A merge of two edits made during a partition — one side set maxSurge to
// 0, the other maxUnavailable — yields a Deployment kube-apiserver rejects.
func ExampleObject() {
	merged := []byte(`{"kind":"Deployment","apiVersion":"apps/v1",
	"metadata":{"name":"web","namespace":"shop","uid":"9a1f0c2e-5b3d-4e6f-8a7b-1c2d3e4f5a6b","generation":3},
	"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
	 "strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":0,"maxUnavailable":0}},
	 "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}`)
	err := validate.Object(merged)
	fmt.Println(apierrors.IsInvalid(err))
	fmt.Println(err)
	fmt.Println(validate.Object([]byte(`{"apiVersion":"example.com/v1","kind":"Widget"}`)))
	// Output:
	// true
	// validate: Deployment.apps "web" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0
	// <nil>
}
