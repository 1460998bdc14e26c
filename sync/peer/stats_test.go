package peer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/store"
)

// TestMissingAndStats: while b is cut off, a's view of what b lacks grows with
// a's writes; after healing, b has merged them (more than a batch: a catch-up,
// logged at start and end) and neither lacks anything.
func TestMissingAndStats(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t, "a"), openStore(t, "b")
	ea, eb := NewEngine(a, 50), NewEngine(b, 50)
	var log bytes.Buffer
	eb.SetLogger(slog.New(slog.NewTextHandler(&log, nil)))
	net := NewNetwork(1)
	net.Add("a", ea)
	net.Add("b", eb)
	write := func(s *store.Store, key string) {
		if _, err := s.Update(ctx, func(tx *store.WriteTxn) error { return tx.Put([]byte(key), []byte("v"), 0) }); err != nil {
			t.Fatal(err)
		}
	}
	write(b, "/b")
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if !eb.Stats().CaughtUp || !ea.Stats().CaughtUp {
		t.Fatal("a site holding all its peer holds is not caught up")
	}
	if they, we, known := ea.Missing("b"); they != 0 || we != 0 || !known {
		t.Fatalf("settled: a's view of b: they lack %d, we lack %d, known %t", they, we, known)
	}
	net.Partition([]string{"a"}, []string{"b"})
	for i := range 300 {
		write(a, fmt.Sprintf("/a/%d", i))
	}
	if they, _, _ := ea.Missing("b"); they != 300 {
		t.Fatalf("cut: a thinks b lacks %d changes, want 300", they)
	}
	net.Heal()
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	// One more round: a learns from b's next Pull that b holds it all.
	if err := net.Tick(); err != nil {
		t.Fatal(err)
	}
	if err := net.Drain(ctx, 100_000); err != nil {
		t.Fatal(err)
	}
	if they, _, _ := ea.Missing("b"); they != 0 {
		t.Fatalf("healed: a thinks b lacks %d changes", they)
	}
	if _, we, _ := eb.Missing("a"); we != 0 {
		t.Fatalf("healed: b lacks %d of a's changes", we)
	}
	if got := eb.Stats().Merged; got != 300 {
		t.Fatalf("b merged %d changes, want 300 (stats %+v; a %+v collected %v vv %v)", got, eb.Stats(), ea.Stats(), a.Collected(), a.VersionVector())
	}
	for _, line := range []string{"peer: catch-up started", "peer: catch-up finished"} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("b's log lacks %q:\n%s", line, log.String())
		}
	}
}

// TestSnapshotStats: a site that joins after the others collected their logs is
// sent a snapshot and installs it; both ends count it, the joiner logs receiving
// and installing it, and is then caught up.
func TestSnapshotStats(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(1)
	a, b := openStore(t, "a"), openStore(t, "b")
	ea, eb := NewEngine(a, 50), NewEngine(b, 50)
	net.Add("a", ea)
	net.Add("b", eb)
	for i := range 100 {
		put(t, a, fmt.Sprintf("/a/%d", i%20), fmt.Sprintf(`{"v":"%d"}`, i))
	}
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	net.Tick()
	net.Drain(ctx, 1000)
	waitCollected(t, a)
	waitCollected(t, b)

	c := openStore(t, "c")
	ec := NewEngine(c, 50)
	var log bytes.Buffer
	ec.SetLogger(slog.New(slog.NewTextHandler(&log, nil)))
	net.Add("c", ec)
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	sameData(t, a, b, c)
	if got := ec.Stats(); got.SnapshotsInstalled == 0 || !got.CaughtUp {
		t.Fatalf("c's stats after joining: %+v", got)
	}
	if sent := ea.Stats().SnapshotsSent + eb.Stats().SnapshotsSent; sent == 0 {
		t.Fatal("no snapshot counted as sent")
	}
	for _, line := range []string{"peer: receiving snapshot", "peer: snapshot installed"} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("c's log lacks %q:\n%s", line, log.String())
		}
	}
}
