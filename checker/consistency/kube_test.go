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
