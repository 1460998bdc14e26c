package kube

import (
	"slices"
	"testing"
)

func TestMergeUnits(t *testing.T) {
	deploy, ok := Object("apps/v1", "Deployment")
	if !ok || !deploy.Known() {
		t.Fatal("apps/v1 Deployment is not known")
	}
	pod := deploy.Member("spec").Member("template").Member("spec")
	containers := pod.Member("containers")
	meta := deploy.Member("metadata")
	arrays := []struct {
		name  string
		node  Node
		shape Shape
		keys  []string
	}{
		{"containers by name", containers, ListMap, []string{"name"}},
		{"ports by port and protocol", containers.Element().Member("ports"), ListMap, []string{"containerPort", "protocol"}},
		{"args atomic", containers.Element().Member("args"), Atomic, nil},
		{"finalizers a set", meta.Member("finalizers"), Set, nil},
		{"ownerReferences by uid", meta.Member("ownerReferences"), ListMap, []string{"uid"}},
		{"managedFields atomic", meta.Member("managedFields"), Atomic, nil},
		{"unknown member atomic", deploy.Member("spec").Member("noSuchField"), Atomic, nil},
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
		{"status one unit", deploy.Member("status"), Atomic},
		{"selector atomic", deploy.Member("spec").Member("selector"), Atomic},
		{"labels by key", meta.Member("labels"), Granular},
		{"annotations by key", meta.Member("annotations"), Granular},
		{"rolling update by field", deploy.Member("spec").Member("strategy").Member("rollingUpdate"), Granular},
		{"resources by field", containers.Element().Member("resources"), Granular},
	}
	for _, tc := range objects {
		if got := tc.node.Object(); got != tc.shape {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.shape)
		}
	}
	if d, ok := containers.Element().Member("ports").Element().KeyDefault("protocol"); !ok || d != `"TCP"` {
		t.Errorf("port protocol default %q %v", d, ok)
	}
	lease, ok := Object("coordination.k8s.io/v1", "Lease")
	if !ok || lease.Member("spec").Object() != Atomic || lease.Member("metadata").Member("labels").Object() != Granular {
		t.Error("a Lease's spec is not one unit")
	}
	if pv, ok := Object("v1", "PersistentVolume"); !ok || pv.Member("spec").Member("claimRef").Object() != Atomic ||
		pv.Member("spec").Member("capacity").Object() != Granular || pv.Member("status").Object() != Atomic {
		t.Error("a PersistentVolume's claimRef is not one unit")
	}
	if cm, ok := Object("v1", "ConfigMap"); !ok || cm.Member("data").Object() != Granular {
		t.Error("a ConfigMap's data does not merge by key")
	}
	for _, gv := range [][2]string{{"example.com/v1", "Widget"}, {"apps/v1", ""}, {"not/a/version", "Pod"}} {
		if _, ok := Object(gv[0], gv[1]); ok {
			t.Errorf("%v is known", gv)
		}
	}
}
