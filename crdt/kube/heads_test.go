package kube

import (
	"errors"
	"testing"
)

func TestUnit(t *testing.T) {
	cases := []struct {
		apiVersion, kind, path, unit string
	}{
		{"apps/v1", "Deployment", "/spec/replicas", "/spec/replicas"},
		{"apps/v1", "Deployment", "/spec/strategy/rollingUpdate/maxSurge", "/spec/strategy/rollingUpdate/maxSurge"},
		{"apps/v1", "Deployment", "/status/readyReplicas", "/status"},
		{"apps/v1", "Deployment", "/status", "/status"},
		{"apps/v1", "Deployment", "/metadata/generation", "/metadata/generation"},
		{"apps/v1", "Deployment", "/metadata/annotations/deployment.kubernetes.io~1revision", "/metadata/annotations/deployment.kubernetes.io~1revision"},
		{"apps/v1", "Deployment", `/spec/template/spec/containers/"app"/image`, `/spec/template/spec/containers/"app"/image`},
		{"apps/v1", "Deployment", `/spec/template/spec/containers/"app"/args/0`, `/spec/template/spec/containers/"app"/args`},
		{"apps/v1", "Deployment", "/metadata/managedFields/0/manager", "/metadata/managedFields"},
		{"coordination.k8s.io/v1", "Lease", "/spec/holderIdentity", "/spec"},
		{"v1", "PersistentVolume", "/spec/claimRef/name", "/spec/claimRef"},
		{"v1", "Node", "/status/conditions/0/status", "/status"},
	}
	for _, tc := range cases {
		n, ok := Object(tc.apiVersion, tc.kind)
		if !ok {
			t.Fatalf("%s %s is not known", tc.apiVersion, tc.kind)
		}
		if got := n.Unit(tc.path); got != tc.unit {
			t.Errorf("%s %s: Unit(%s) = %s, want %s", tc.apiVersion, tc.kind, tc.path, got, tc.unit)
		}
	}
	if got := (Node{}).Unit("/spec/a/b"); got != "/spec/a/b" {
		t.Errorf("an unknown kind's Unit(/spec/a/b) = %s, want the path itself", got)
	}
}

// obj is a toy way of holding an object's fields for Concurrent.
type obj struct {
	gen, spec, other int64
}

var objRules = &HeadRules[obj]{
	Generation:     func(f obj) (int64, bool) { return f.gen, true },
	WithGeneration: func(f obj, g int64) obj { f.gen = g; return f },
	SameSpec:       func(a, b obj) bool { return a.spec == b.spec },
	Valid:          func(f obj) bool { return f.spec+f.other < 10 },
}

func TestConcurrent(t *testing.T) {
	cases := []struct {
		name   string
		merged obj
		heads  []obj
		want   obj
		win    int
	}{
		{"every head saw the merged spec", obj{3, 1, 2}, []obj{{3, 1, 0}, {2, 1, 2}}, obj{3, 1, 2}, -1},
		{"a head saw another spec", obj{3, 4, 2}, []obj{{3, 4, 0}, {2, 1, 2}}, obj{4, 4, 2}, -1},
		{"greatest generation of any head", obj{2, 4, 2}, []obj{{2, 4, 0}, {7, 1, 2}, {5, 4, 2}}, obj{8, 4, 2}, -1},
		{"invalid merge shows the latest head whole", obj{3, 6, 5}, []obj{{3, 6, 0}, {2, 1, 5}}, obj{2, 1, 5}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			head := func(i int) (obj, error) { calls++; return tc.heads[i], nil }
			got, win, err := Concurrent(tc.merged, len(tc.heads), head, objRules)
			if err != nil || got != tc.want || win != tc.win {
				t.Errorf("Concurrent = %v, %d, %v; want %v, %d", got, win, err, tc.want, tc.win)
			}
			if calls == 0 {
				t.Error("Concurrent read no head")
			}
		})
	}
}

func TestConcurrentReadsHeadsOnlyWhenNeeded(t *testing.T) {
	noGen := *objRules
	noGen.Generation = func(f obj) (int64, bool) { return f.gen, false }
	failing := errors.New("unreadable")
	head := func(int) (obj, error) { return obj{}, failing }
	if got, win, err := Concurrent(obj{1, 1, 1}, 2, head, &noGen); err != nil || win != -1 || got != (obj{1, 1, 1}) {
		t.Errorf("valid merge without a generation: %v, %d, %v; want the merge, no head read", got, win, err)
	}
	if _, _, err := Concurrent(obj{1, 9, 9}, 2, head, &noGen); !errors.Is(err, failing) {
		t.Errorf("invalid merge with unreadable heads: err %v, want %v", err, failing)
	}
}
