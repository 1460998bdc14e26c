package validate_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FuzzObject checks that no input makes Object panic and that every error
// carries the package prefix. The seeds are in testdata/fuzz/FuzzObject.
func FuzzObject(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":1}}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		if err := validate.Object(value); err != nil && !strings.HasPrefix(err.Error(), "validate: ") {
			t.Fatalf("error without the package prefix: %v", err)
		}
	})
}

// TestOddValuesDoNotPanic sets every field of every golden, one at a time,
// to values a merge of broken inputs might leave there (null, a negative
// number, an empty or unexpected string, a wrong type) and checks that
// Object answers, with a package-prefixed error if any, without panicking.
func TestOddValuesDoNotPanic(t *testing.T) {
	odd := []any{nil, int64(-1), "", "Not_A_Value!", map[string]any{}}
	for _, g := range goldens(t) {
		t.Run(g.file, func(t *testing.T) {
			var u map[string]any
			if err := json.Unmarshal(g.value, &u); err != nil {
				t.Fatal(err)
			}
			for _, path := range leafPaths(u, nil) {
				if path[0] == "apiVersion" || path[0] == "kind" {
					continue
				}
				for _, v := range odd {
					b := edit(t, g.value, func(u map[string]any) error {
						return unstructured.SetNestedField(u, v, path...)
					})
					if err := validate.Object(b); err != nil && !strings.HasPrefix(err.Error(), "validate: ") {
						t.Fatalf("%v = %v: error without the package prefix: %v", path, v, err)
					}
				}
			}
		})
	}
}

// leafPaths lists the paths of every leaf under maps of m (lists are leaves).
func leafPaths(m map[string]any, prefix []string) [][]string {
	var out [][]string
	for k, v := range m {
		path := append(append([]string(nil), prefix...), k)
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			out = append(out, leafPaths(sub, path)...)
			continue
		}
		out = append(out, path)
	}
	return out
}
