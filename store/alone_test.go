package store

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// TestAloneThenReplicated: a store alone writes values whole and serves them
// byte for byte as written. Reopened as one of several sites, its objects
// merge field by field with another site's concurrent edits, as objects a
// replicated store wrote do: both sites promote the value written alone to
// the same document before editing it. Were the first edit at each site a
// whole replacement instead, one of the two edits would be lost.
func TestAloneThenReplicated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const podKey, cmKey = "/registry/pods/default/web", "/registry/configmaps/default/cm"
	pod := `{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"nodeName":"n1"},"status":{"phase":"Pending"}}`
	cm := protobufConfigMap(t, "default", map[string]string{"x": "1"})

	alone := openTest(t, dir)
	put(t, alone, podKey, pod)
	put(t, alone, cmKey, string(cm))
	for key, want := range map[string][]byte{podKey: []byte(pod), cmKey: cm} {
		if kv, _ := get(t, alone, key, 0); !bytes.Equal(kv.Value, want) {
			t.Fatalf("alone, %s served as %q, want the bytes written", key, kv.Value)
		}
	}
	if n := len(alone.VersionVector()); n != 1 {
		t.Fatalf("alone: version vector of %d origins", n)
	}
	alone.Close()

	a := openReplicatedTest(t, dir)
	defer a.Close()
	b := openSite(t, "b", nil)
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.InstallSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	// Concurrent edits of different fields, one at each site.
	put(t, a, podKey, `{"metadata":{"name":"web","labels":{"app":"web","tier":"front"}},"spec":{"nodeName":"n1"},"status":{"phase":"Pending"}}`)
	put(t, b, podKey, `{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}`)
	put(t, a, cmKey, string(protobufConfigMap(t, "default", map[string]string{"x": "1", "y": "2"})))
	put(t, b, cmKey, string(protobufConfigMap(t, "default", map[string]string{"x": "1", "z": "3"})))
	exchange(t, a, b)
	mustEqual(t, a, b)

	var got struct {
		Metadata struct{ Labels map[string]string } `json:"metadata"`
		Status   struct{ Phase string }             `json:"status"`
	}
	kv, _ := get(t, a, podKey, 0)
	if err := json.Unmarshal(kv.Value, &got); err != nil {
		t.Fatal(err)
	}
	if got.Metadata.Labels["tier"] != "front" || got.Status.Phase != "Running" {
		t.Fatalf("pod after concurrent edits: %s; want both edits (tier label, Running)", kv.Value)
	}
	kv, _ = get(t, b, cmKey, 0)
	var data struct{ Data map[string]string }
	if err := json.Unmarshal(kube.Canonical(kv.Value), &data); err != nil {
		t.Fatal(err)
	}
	if data.Data["y"] != "2" || data.Data["z"] != "3" {
		t.Fatalf("configmap after concurrent edits: %s; want both keys added", kube.Canonical(kv.Value))
	}
}
