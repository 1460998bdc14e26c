package store

import (
	"context"
	"errors"
	"maps"
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
