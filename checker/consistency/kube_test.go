package consistency

import "testing"

// TestNewKube: the merge units, their order, spec and generation come from
// crdt/kube's schema of the kind.
func TestNewKube(t *testing.T) {
	d, err := NewKube("apps/v1", "Deployment", [MaxFields]string{
		0: "/status/replicas", 1: "/spec/replicas", 2: "/metadata/generation", 3: "/status/readyReplicas",
		4: "/spec/selector/matchLabels/app", 5: "/spec/selector/matchLabels/tier", 6: "/metadata/annotations/a",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.unit[0] == 0 || d.unit[0] != d.unit[3] {
		t.Errorf("status fields are not one unit: %v", d.unit)
	}
	if d.unit[4] == 0 || d.unit[4] != d.unit[5] || d.unit[4] == d.unit[0] {
		t.Errorf("the selector (atomic) is not one unit of its own: %v", d.unit)
	}
	if d.unit[1] != 0 || d.unit[2] != 0 || d.unit[6] != 0 {
		t.Errorf("spec.replicas, generation or an annotation share a unit: %v", d.unit)
	}
	if d.gen != 2 || d.spec != 1<<1|1<<4|1<<5 {
		t.Errorf("gen %d spec %b, want 2 and 110010", d.gen, d.spec)
	}
	// crdt writes units in key order: metadata, spec, status, then the slots
	// that are no field.
	if want := []uint8{6, 2, 1, 4, 5, 0, 3}; string(d.order[:len(want)]) != string(want) {
		t.Errorf("order %v, want %v first", d.order, want)
	}
	l, err := NewKube("coordination.k8s.io/v1", "Lease", [MaxFields]string{4: "/spec/holderIdentity", 5: "/spec/leaseTransitions"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.unit[4] == 0 || l.unit[4] != l.unit[5] || l.gen != -1 {
		t.Errorf("a Lease's spec is not one unit: %v (gen %d)", l.unit, l.gen)
	}
	if _, err := NewKube("example.com/v1", "Widget", [MaxFields]string{}, nil); err == nil {
		t.Error("NewKube of a kind that is not built in: no error")
	}
	if _, err := NewKube("v1", "Pod", [MaxFields]string{"spec"}, nil); err == nil {
		t.Error("NewKube of a path that is no JSON pointer: no error")
	}
}

// BenchmarkMergeShown: one merge of a Deployment's concurrent edits at two
// sites (spec fields at both, status at both) and the object shown, what the
// checker pays per merged key.
func BenchmarkMergeShown(b *testing.B) {
	k, err := NewKube("apps/v1", "Deployment", [MaxFields]string{"/metadata/generation", "/spec/replicas",
		"/spec/strategy/rollingUpdate/maxSurge", "/spec/strategy/rollingUpdate/maxUnavailable",
		"/status/replicas", "/status/readyReplicas", "/status/observedGeneration"},
		func(v Fields) bool { return !(v[2] == 0 && v[3] == 0) && v[5] <= v[4] })
	if err != nil {
		b.Fatal(err)
	}
	base := Write(Doc{Key: 1}, vals(1, 2, 1, 1, 2, 2, 1), Stamp{1, 0}, 0, k)
	x := Write(base, vals(2, 2, 0, 1, 2, 2, 1), Stamp{2, 0}, 0, k)
	y := Write(base, vals(2, 3, 1, 0, 3, 1, 2), Stamp{2, 1}, 1, k)
	m, _ := MergeKube(x, y)
	if v, fallback := Shown(&m, k); !fallback || v != y.Vals {
		b.Fatalf("shown %v (fallback %v), want the later edit %v whole", v, fallback, y.Vals)
	}
	for b.Loop() {
		m, _ := MergeKube(x, y)
		Shown(&m, k)
	}
}
