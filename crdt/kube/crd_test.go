package kube

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCustomResources(t *testing.T) {
	crd, err := os.ReadFile("testdata/crd-widgets.json")
	if err != nil {
		t.Fatal(err)
	}
	crs := NewCustomResources()
	if _, ok := crs.Object("example.com/v1", "Widget"); ok {
		t.Fatal("a Widget is known before its CRD")
	}
	res, changed, err := crs.Put(crd)
	if err != nil || !changed || res.KeyPrefix("/registry/") != "/registry/example.com/widgets/" {
		t.Fatalf("Put: %v %v %v", res, changed, err)
	}
	w, ok := crs.Object("example.com/v1", "Widget")
	if !ok || !w.Known() {
		t.Fatal("Widget v1 unknown after its CRD")
	}
	spec, meta := w.Member("spec"), w.Member("metadata")
	arrays := []struct {
		name  string
		node  Node
		shape Shape
		keys  []string
	}{
		{"ports a list-map by name and protocol", spec.Member("ports"), ListMap, []string{"name", "protocol"}},
		{"tags a set", spec.Member("tags"), Set, nil},
		{"args atomic (no list-type)", spec.Member("args"), Atomic, nil},
		{"finalizers a set (ObjectMeta)", meta.Member("finalizers"), Set, nil},
		{"ownerReferences by uid (ObjectMeta)", meta.Member("ownerReferences"), ListMap, []string{"uid"}},
	}
	for _, tc := range arrays {
		if shape, keys := tc.node.Array(); shape != tc.shape || !slices.Equal(keys, tc.keys) {
			t.Errorf("%s: %d %v, want %d %v", tc.name, shape, keys, tc.shape, tc.keys)
		}
	}
	objects := []struct {
		name  string
		node  Node
		shape Shape
	}{
		{"status one unit", w.Member("status"), Atomic},
		{"selector atomic map", spec.Member("selector"), Atomic},
		{"config by key", spec.Member("config"), Granular},
		{"labels by key", meta.Member("labels"), Granular},
		{"spec by field", spec, Granular},
	}
	for _, tc := range objects {
		if got := tc.node.Object(); got != tc.shape {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.shape)
		}
	}
	if d, ok := spec.Member("ports").Element().KeyDefault("protocol"); !ok || d != `"TCP"` {
		t.Errorf("port protocol default %q %v", d, ok)
	}
	if b, ok := crs.Object("example.com/v1beta1", "Widget"); !ok || func() bool { s, _ := b.Member("spec").Member("ports").Array(); return s != Atomic }() {
		t.Error("v1beta1 Widget: its own schema (ports atomic) not used")
	}
	if d, ok := crs.Object("apps/v1", "Deployment"); !ok || !d.Known() {
		t.Error("built-in kinds unknown through the registry")
	}

	// A write that changes only the CRD's status keeps the merge units.
	status := strings.Replace(string(crd), `"storedVersions":["v1"]`, `"storedVersions":["v1","v1beta1"]`, 1)
	if _, changed, err := crs.Put([]byte(status)); err != nil || changed {
		t.Errorf("status-only CRD write: changed %v, %v", changed, err)
	}
	// A schema change takes effect.
	atomicPorts := strings.Replace(string(crd), `"x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name","protocol"],`, ``, 1)
	if _, changed, err := crs.Put([]byte(atomicPorts)); err != nil || !changed {
		t.Fatalf("schema change: changed %v, %v", changed, err)
	}
	w, _ = crs.Object("example.com/v1", "Widget")
	if s, _ := w.Member("spec").Member("ports").Array(); s != Atomic {
		t.Errorf("ports after the schema change: %d, want atomic", s)
	}
	if _, _, err := crs.Put([]byte(`{"kind":"CustomResourceDefinition"}`)); err == nil {
		t.Error("a CRD without a name was accepted")
	}
	if r, ok := crs.ForKey("/registry/", []byte("/registry/example.com/widgets/default/w1")); !ok || r != res {
		t.Errorf("ForKey: %v %v", r, ok)
	}
	if _, ok := crs.ForKey("/registry/", []byte("/registry/example.com/gadgets/default/g1")); ok {
		t.Error("ForKey found a resource no CRD defines")
	}
	crdKey := []byte("/registry/" + CRDResource + "widgets.example.com")
	if _, changed, err := crs.Observe("/registry/", []byte("/registry/configmaps/default/x"), []byte("{}"), true); changed || err != nil {
		t.Errorf("Observe of a ConfigMap: %v %v", changed, err)
	}
	if r, changed, err := crs.Observe("/registry/", crdKey, nil, false); !changed || err != nil || r != res {
		t.Errorf("Observe of the CRD's delete: %v %v %v", r, changed, err)
	}
	if _, ok := crs.Object("example.com/v1", "Widget"); ok {
		t.Error("Widget known after its CRD was deleted")
	}
	if name, ok := IsCRDKey("/registry/", []byte("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com")); !ok || name != "widgets.example.com" {
		t.Errorf("IsCRDKey: %q %v", name, ok)
	}
}

// BenchmarkCustomResourcesPut: what building a CRD's merge units costs (paid
// once per CRD schema change).
func BenchmarkCustomResourcesPut(b *testing.B) {
	crd, err := os.ReadFile("testdata/crd-widgets.json")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := NewCustomResources().Put(crd); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCustomResourcesValidate(t *testing.T) {
	crd, err := os.ReadFile("testdata/crd-widgets.json")
	if err != nil {
		t.Fatal(err)
	}
	crs := NewCustomResources()
	widget := `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"default"},"spec":%s}`
	valid := []byte(`{"replicas":3,"ports":[{"name":"http","port":80}],"tags":["a","b"],"selector":{"app":"w"}}`)
	invalid := []byte(`{"replicas":"three","ports":[{"port":80}]}`)
	if err := crs.Validate([]byte(strings.Replace(widget, "%s", string(invalid), 1))); err != nil {
		t.Errorf("a Widget judged before its CRD is known: %v", err)
	}
	if _, _, err := crs.Put(crd); err != nil {
		t.Fatal(err)
	}
	if err := crs.Validate([]byte(strings.Replace(widget, "%s", string(valid), 1))); err != nil {
		t.Errorf("valid Widget rejected: %v", err)
	}
	err = crs.Validate([]byte(strings.Replace(widget, "%s", string(invalid), 1)))
	if err == nil || !strings.Contains(err.Error(), "spec.replicas") || !strings.Contains(err.Error(), "spec.ports[0].name") {
		t.Errorf("invalid Widget: %v, want errors for spec.replicas and spec.ports[0].name", err)
	}
	for _, v := range []string{`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`, `not json`, `{"apiVersion":"example.com/v2","kind":"Widget"}`} {
		if err := crs.Validate([]byte(v)); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}
