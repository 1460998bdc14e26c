package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	// Alone from the start, it keeps no documents: each value is stored once,
	// in its revision record; what needs documents says so.
	put(t, alone, "/gone", "x")
	if _, err := alone.Update(ctx, func(tx *WriteTxn) error { _, err := tx.DeleteRange([]byte("/gone"), nil); return err }); err != nil {
		t.Fatal(err)
	}
	if n, err := alone.DocSize([]byte(podKey)); n != 0 || err != nil {
		t.Fatalf("alone: a document of %d bytes (%v), want none", n, err)
	}
	if _, err := alone.Snapshot(ctx); !errors.Is(err, ErrDocless) {
		t.Fatalf("alone: Snapshot: %v, want ErrDocless", err)
	}
	if _, err := alone.ApplyRemote(ctx, []Change{{Origin: "x", Seq: 1, Key: []byte("k")}}); !errors.Is(err, ErrDocless) {
		t.Fatalf("alone: ApplyRemote: %v, want ErrDocless", err)
	}
	alone.Close()

	// Opened as one of several sites, it first writes every live key's
	// document.
	a := openReplicatedTest(t, dir)
	defer a.Close()
	if n, _ := a.DocSize([]byte(podKey)); n == 0 {
		t.Fatal("replicated: no document built for a key written alone")
	}
	if _, ok := get(t, a, "/gone", 0); ok {
		t.Fatal("replicated: a key deleted alone is back")
	}
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

// TestAloneAfterReplicated: a store that kept documents keeps them current
// when opened alone (values written whole into them), so opened as one of
// several sites again it serves and merges from them.
func TestAloneAfterReplicated(t *testing.T) {
	dir := t.TempDir()
	s := openReplicatedTest(t, dir)
	put(t, s, "/k", `{"a":"1","b":"1"}`)
	s.Close()
	s = openTest(t, dir)
	put(t, s, "/k", `{"a":"2","b":"1"}`)
	if n, _ := s.DocSize([]byte("/k")); n == 0 {
		t.Fatal("alone after replicated: the document was dropped")
	}
	s.Close()
	a := openReplicatedTest(t, dir)
	defer a.Close()
	b := openSite(t, "b", nil)
	snap, err := a.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.InstallSnapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	if kv, _ := get(t, b, "/k", 0); string(kv.Value) != `{"a":"2","b":"1"}` {
		t.Fatalf("snapshot of a store written alone after being replicated: %s, want the last write", kv.Value)
	}
	put(t, a, "/k", `{"a":"3","b":"1"}`)
	put(t, b, "/k", `{"a":"2","b":"3"}`)
	exchange(t, a, b)
	mustEqual(t, a, b)
	if kv, _ := get(t, a, "/k", 0); canonicalJSON(t, kv.Value) != `{"a":"3","b":"3"}` {
		t.Fatalf("after concurrent edits: %s, want both", kv.Value)
	}
}

// canonicalJSON is the JSON value v with its members sorted.
func canonicalJSON(t *testing.T, v []byte) string {
	t.Helper()
	var x any
	if err := json.Unmarshal(v, &x); err != nil {
		t.Fatalf("%s: %v", v, err)
	}
	out, _ := json.Marshal(x)
	return string(out)
}
