package store

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
)

// TestForgettingsDurable: forgetting decisions are kept once each (by
// incarnation and decider), handed out in their order, and survive a reopen.
func TestForgettingsDurable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	fs := []Forgetting{{Origin: "b~2", By: "a~1", At: 20}, {Origin: "c~3", By: "b~2", At: 10}}
	if n, err := s.AddForgettings(ctx, fs); err != nil || n != 2 {
		t.Fatalf("added %d, %v; want 2", n, err)
	}
	if n, err := s.AddForgettings(ctx, []Forgetting{{Origin: "b~2", By: "a~1", At: 99}}); err != nil || n != 0 {
		t.Fatalf("a known decision again: added %d, %v; want 0", n, err)
	}
	if _, err := s.AddForgettings(ctx, []Forgetting{{Origin: "b~2"}}); err == nil {
		t.Fatal("a decision without a decider was accepted")
	}
	want := []Forgetting{fs[1], fs[0]} // in order of At
	if got := s.Forgettings(); !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	if got := s.Forgettings(); !slices.Equal(got, want) {
		t.Fatalf("reopened: held %v, want %v", got, want)
	}
}

// TestInstallSnapshotAnew: a store that installs a snapshot anew gives up its
// own changes the snapshot lacks, even those it collected, and goes on as a
// newer incarnation whose changes start their own sequence; the old
// incarnation is held as far as the snapshot holds it.
func TestInstallSnapshotAnew(t *testing.T) {
	a, b := openSite(t, "a", nil), openSite(t, "b", nil)
	put(t, a, "/k", `{"v":1}`)
	exchange(t, a, b)
	old := a.Origin()
	put(t, a, "/k", `{"v":2}`) // b never gets it
	put(t, a, "/mine", `{"v":1}`)
	put(t, b, "/theirs", `{"v":1}`)
	a.SetHorizon(Horizon{Stable: a.VersionVector(), Complete: true})
	if err := a.collectLog(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.InstallSnapshot(context.Background(), snap); err == nil {
		t.Fatal("a snapshot without changes a collected installed as is")
	}
	// Judged on holdings that have changed since (a merge, another install):
	// refused, and nothing changes.
	judged := a.VersionVector()
	put(t, a, "/mine", `{"v":0}`)
	if err := a.InstallSnapshotWith(context.Background(), snap, InstallOptions{Anew: true, Held: judged}); !errors.Is(err, ErrSnapshotOlder) || a.Origin() != old {
		t.Fatalf("installing anew on changed holdings: %v, origin %s (was %s); want ErrSnapshotOlder and no change", err, a.Origin(), old)
	}
	if err := a.InstallSnapshotWith(context.Background(), snap, InstallOptions{Anew: true, Held: a.VersionVector()}); err != nil {
		t.Fatal(err)
	}
	if o := a.Origin(); !NewerOrigin(o, old) {
		t.Fatalf("origin %q after installing anew, want newer than %q", o, old)
	}
	if !maps.Equal(a.VersionVector(), snap.VV) {
		t.Fatalf("holds %v, want the snapshot's %v", a.VersionVector(), snap.VV)
	}
	if kv, ok := get(t, a, "/k", 0); !ok || string(kv.Value) != `{"v":1}` {
		t.Fatalf("/k is %q, want the snapshot's", kv.Value)
	}
	if _, ok := get(t, a, "/mine", 0); ok {
		t.Fatal("a change given up is still read")
	}
	put(t, a, "/mine", `{"v":2}`)
	if vv := a.VersionVector(); vv[a.Origin()] != 1 || vv[old] != snap.VV[old] {
		t.Fatalf("holds %v after a write, want 1 of its own and %d of %s", vv, snap.VV[old], old)
	}
	exchange(t, a, b)
	mustEqual(t, a, b)
}
