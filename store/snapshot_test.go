package store

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
)

// TestSnapshotOlderRefused installs, at a site that already holds more of an
// origin, a snapshot taken before those changes (a joining site receives
// snapshots from two peers while it catches up from one of them): installed,
// it would take the changes away while the peers count them as held there.
// It is refused and nothing changes.
func TestSnapshotOlderRefused(t *testing.T) {
	ctx := context.Background()
	a, c := openSite(t, "a", nil), openSite(t, "c", nil)
	put(t, a, "k", `{"n":1}`)
	old, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(t, a, "k", `{"n":2}`)
	put(t, a, "j", `{"n":1}`)
	exchange(t, a, c)
	before, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	vv := c.VersionVector()
	if err := c.InstallSnapshot(ctx, old); !errors.Is(err, ErrSnapshotOlder) {
		t.Fatalf("installing a snapshot older than what the site holds: %v, want ErrSnapshotOlder", err)
	}
	after, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if after != before || !maps.Equal(c.VersionVector(), vv) {
		t.Fatalf("a refused snapshot changed the store: version vector %v -> %v", vv, c.VersionVector())
	}
	// A snapshot that holds everything the site holds is installed.
	cur, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.InstallSnapshot(ctx, cur); err != nil {
		t.Fatalf("installing a current snapshot: %v", err)
	}
	mustEqual(t, a, c)
}

// TestSnapshotRedoPrevKV installs a snapshot that lacks one of this site's own
// changes: the install's revision shows the key taking the snapshot's value,
// then the own change merged again on top. As etcd shows a key a revision
// changes twice, both events' prev_kv is the key's state at the previous
// revision (the internal/cluster watch checks and etcdshim's differential test
// against etcd hold it to that), and the revision ends with the own change.
func TestSnapshotRedoPrevKV(t *testing.T) {
	ctx := context.Background()
	a, c := openSite(t, "a", nil), openSite(t, "c", nil)
	put(t, c, "k", `{"n":1}`)
	exchange(t, a, c)
	put(t, c, "k", `{"n":2}`) // not at a
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.InstallSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	rev := c.Rev()
	evs, err := c.Events(rev, rev, 100)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for i, ev := range evs {
		if string(ev.KV.Key) != "k" {
			continue
		}
		if ev.PrevKV == nil || string(ev.PrevKV.Value) != `{"n":2}` {
			t.Fatalf("event %d of the install's revision: prev_kv %+v, want the state at the previous revision {\"n\":2}", i, ev.PrevKV)
		}
		values = append(values, string(ev.KV.Value))
	}
	if want := []string{`{"n":1}`, `{"n":2}`}; !slices.Equal(values, want) {
		t.Fatalf("the install's revision shows k as %q, want the snapshot's value then this site's own change %q", values, want)
	}
}
