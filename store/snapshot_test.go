package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"
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
// changes: the install's revision shows the key taking the snapshot's value, the
// next revision the own change merged again on top. Each event's prev_kv is the
// key's state at the previous revision, etcd's rule (the internal/cluster watch
// checks and etcdshim's differential test against etcd hold it to that).
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
	from := c.Rev() + 1
	if err := c.InstallSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	evs := eventsSince(t, c, from)
	want := []string{`{"n":1}`, `{"n":2}`}
	if len(evs) != 2 {
		t.Fatalf("the install shows %d events, want the snapshot's value then this site's own change", len(evs))
	}
	for i, ev := range evs {
		if string(ev.KV.Value) != want[i] || ev.KV.ModRevision != from+int64(i) {
			t.Fatalf("event %d: %s at %d, want %s at %d", i, ev.KV.Value, ev.KV.ModRevision, want[i], from+int64(i))
		}
	}
	if err := etcdValid(t, c, from); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotRedoCreate installs a snapshot that lacks a key this site
// created, deleted and created again (no document at all): the install deletes
// it, and the own changes redone create, delete and create it again. Each shows
// at its own revision, so every create follows a delete, as etcd's history
// would have it; in one revision, a create of a key live at the revision before
// read as a put without prev_kv (internal/cluster TestLinearizable seed 1: "put
// /lin/a create 611 version 1 prev false after rev 605 put /lin/a").
func TestSnapshotRedoCreate(t *testing.T) {
	ctx := context.Background()
	a, c := openSite(t, "a", nil), openSite(t, "c", nil)
	put(t, a, "j", `{"n":1}`)
	put(t, c, "k", `{"n":0}`) // never at a
	del(t, c, "k")
	put(t, c, "k", `{"n":1}`)
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := c.Rev() + 1
	if err := c.InstallSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := etcdValid(t, c, from); err != nil {
		t.Fatal(err)
	}
	res, err := c.Range([]byte("k"), RangeOptions{})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != `{"n":1}` || res.KVs[0].Version != 1 {
		t.Fatalf("k after the install: %+v, %v; want this site's own create redone", res.KVs, err)
	}
}

// eventsSince returns the store's events from revision from on.
func eventsSince(t *testing.T, s *Store, from int64) []Event {
	t.Helper()
	evs, err := s.Events(from, s.Rev(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// etcdValid checks the events from revision from on against what an etcd
// history can hold: a key changes at most once per revision; a create (create
// revision == mod revision) is version 1 of a key absent at the revision
// before, with no prev_kv; any other event's prev_kv is the key's state at the
// revision before.
func etcdValid(t *testing.T, s *Store, from int64) error {
	t.Helper()
	seen := map[string]int64{}
	for _, ev := range eventsSince(t, s, from) {
		key, rev := string(ev.KV.Key), ev.KV.ModRevision
		if seen[key] == rev {
			return fmt.Errorf("revision %d changes %q twice", rev, key)
		}
		seen[key] = rev
		before, err := s.Range(ev.KV.Key, RangeOptions{Rev: rev - 1})
		if err != nil {
			return err
		}
		create := ev.Type == EventPut && ev.KV.CreateRevision == rev
		switch {
		case create && (ev.KV.Version != 1 || ev.PrevKV != nil || len(before.KVs) != 0):
			return fmt.Errorf("revision %d: a create of %q at version %d, prev_kv %v, live before: %v", rev, key, ev.KV.Version, ev.PrevKV != nil, len(before.KVs) != 0)
		case !create && len(before.KVs) == 0 && ev.PrevKV != nil:
			return fmt.Errorf("revision %d: %q absent before, yet a prev_kv", rev, key)
		case !create && len(before.KVs) == 1 && (ev.PrevKV == nil || !bytes.Equal(ev.PrevKV.Value, before.KVs[0].Value)):
			return fmt.Errorf("revision %d: %q's prev_kv %v, want the state at the revision before %s", rev, key, ev.PrevKV, before.KVs[0].Value)
		case !create && ev.Type == EventPut && len(before.KVs) == 0:
			return fmt.Errorf("revision %d: a put of %q absent before that is not a create", rev, key)
		}
	}
	return nil
}

// TestSnapshotInstallAlone queues a snapshot's install behind a write of this
// site's own that the committer would take in the same batch. The install
// reads this site's own logged changes from badger, where that write's are
// not yet: it commits in a batch of its own, after the write, and merges the
// write again on top (in one batch it took the change as collected and was
// refused, or, for a forgotten site, went on anew and lost the write).
func TestSnapshotInstallAlone(t *testing.T) {
	ctx := context.Background()
	a, c := openSite(t, "a", nil), openSite(t, "c", nil)
	put(t, a, "j", `{"n":1}`)
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The committer waits while applying x, so that k and the install queue
	// behind it: x's batch takes k but must leave the install, which reads
	// what is durable, to a batch of its own after x's and k's commit.
	held, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 3)
	write := func(k string, hold bool) {
		_, err := c.Update(ctx, func(tx *WriteTxn) error {
			if hold {
				close(held)
				<-release
			}
			return tx.Put([]byte(k), []byte(`{"n":1}`), 0)
		})
		errs <- err
	}
	queued := func(n int) {
		for len(c.reqs) < n {
			time.Sleep(time.Millisecond)
		}
	}
	go write("x", true)
	<-held
	go write("k", false)
	queued(1)
	go func() { errs <- c.InstallSnapshot(ctx, snap) }()
	queued(2)
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"j", "k", "x"} {
		if kv, ok := get(t, c, k, 0); !ok || string(kv.Value) != `{"n":1}` {
			t.Fatalf("%s after the install: %+v %v, want {\"n\":1}", k, kv, ok)
		}
	}
}
