package peer

import (
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/store"
)

// healPair starts runners a and b on f with no anti-entropy rounds to speak of
// (tune, if set, changes each one's configuration further), syncs one change,
// and returns their stores and runners.
func healPair(t *testing.T, f *Fabric, stall time.Duration, tune func(site string, cfg *Config)) (a, b *store.Store, ra, rb *Runner) {
	t.Helper()
	stores, runners := map[string]*store.Store{}, map[string]*Runner{}
	for _, n := range []string{"a", "b"} {
		stores[n] = openStore(t, n)
		cfg := DefaultConfig()
		// No anti-entropy round within the test: only the runner's resync can
		// repair what the cut lost.
		cfg.AntiEntropyInterval, cfg.Redial, cfg.StallTimeout = time.Hour, 50*time.Millisecond, stall
		// One push per write, so that the writes below fill mailboxes and
		// the fabric's window (counted in messages) as they mean to.
		cfg.PushDelay = 0
		cfg.Logger, cfg.Transport = slog.New(slog.DiscardHandler), f.Transport(n)
		if tune != nil {
			tune(n, &cfg)
		}
		r, err := NewRunner(cfg, stores[n])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		runners[n] = r
		r.SetPeers(map[string]string{"a": "a", "b": "b"})
		r.SetCounted([]string{"a", "b"})
	}
	a, b = stores["a"], stores["b"]
	put(t, a, fmt.Sprintf("/k/%d", 0), fmt.Sprintf(`{"i":%d}`, 0))
	waitSame(t, a, b, 5*time.Second)
	return a, b, runners["a"], runners["b"]
}

// waitSame waits until a and b hold the same changes and returns how long it took.
func waitSame(t *testing.T, a, b *store.Store, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !maps.Equal(a.VersionVector(), b.VersionVector()) {
		if time.Since(start) > within {
			t.Fatalf("not the same %v after: a %v, b %v", within, a.VersionVector(), b.VersionVector())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestResyncAfterHeal stalls the link between two sites (messages held, not
// lost) while one writes more pushes than a mailbox holds: those that
// overflowed are dropped, and what the stalled stream delivers after the heal
// shows the peer no gap. Once the mailbox has drained they are sent again at
// once, not at the next anti-entropy round (an hour away here).
func TestResyncAfterHeal(t *testing.T) {
	f := NewFabric(1)
	a, b, _, _ := healPair(t, f, time.Hour, nil)
	f.Stall("a", "b")
	for i := 1; i <= 2*(mailboxSize+fabricQueue); i++ {
		put(t, a, fmt.Sprintf("/k/%d", i), fmt.Sprintf(`{"i":%d}`, i))
		time.Sleep(time.Millisecond) // a push each
	}
	f.Heal()
	took := waitSame(t, a, b, 3*time.Second)
	t.Logf("converged %v after the heal (fabric %+v)", took, f.Stats())
}

// TestHealSendsEachChangeOnce cuts the link between two sites while one writes
// more pushes than a mailbox holds (one per write), then heals it: the peer
// receives each change once. What the mailbox kept through the cut, the
// pushes of the cut's first writes, is superseded by the fresh stream's resync
// and dropped: sent first, it would arrive beside the resync's push of the same
// changes, and the overflow it recorded would start a second resync, sending
// them all again.
func TestHealSendsEachChangeOnce(t *testing.T) {
	f := NewFabric(1)
	a, b, _, rb := healPair(t, f, time.Hour, nil)
	// b's push tells a that b holds a's first change (there are no
	// anti-entropy rounds here): what a rewinds to after the heal.
	put(t, b, "/b/0", `{"i":0}`)
	waitSame(t, a, b, 5*time.Second)
	f.Cut("a", "b")
	for i := 1; i <= 3*mailboxSize; i++ {
		put(t, a, fmt.Sprintf("/k/%d", i), fmt.Sprintf(`{"i":%d}`, i))
		time.Sleep(time.Millisecond) // a push each
	}
	before := rb.Stats()
	f.Heal()
	waitSame(t, a, b, 3*time.Second)
	time.Sleep(100 * time.Millisecond) // let what is on its way arrive
	if st := rb.Stats(); st.Duplicates != before.Duplicates || st.Merged-before.Merged != 3*mailboxSize {
		t.Fatalf("b merged %d changes and received %d it held, want %d and 0", st.Merged-before.Merged, st.Duplicates-before.Duplicates, 3*mailboxSize)
	}
}

// TestStalledStreamRedialled stalls the link between two sites (messages
// held, not lost, and new streams refused) while one writes: the sender's
// stream fills up and is dropped after StallTimeout, redialled after the heal
// and resynced, so the sites converge long before the held messages would
// have been all that arrives.
func TestStalledStreamRedialled(t *testing.T) {
	f := NewFabric(1)
	a, b, ra, _ := healPair(t, f, 200*time.Millisecond, nil)
	f.Stall("a", "b")
	// Write until the stream is dropped: how many writes fill the fabric's
	// window depends on how many of them each commit (and push) takes.
	deadline := time.Now().Add(20 * time.Second)
	for i := 1; ; i++ {
		put(t, a, fmt.Sprintf("/k/%d", i), fmt.Sprintf(`{"i":%d}`, i))
		if s := ra.Sites(); len(s) == 1 && !s[0].Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream is still open after %d writes in 20s: %+v (fabric %+v)", i, ra.Sites(), f.Stats())
		}
	}
	f.Heal()
	took := waitSame(t, a, b, 3*time.Second)
	t.Logf("converged %v after the heal (fabric %+v)", took, f.Stats())
}

// TestRedialWhenPeerHeard partitions two sites while a writes; a waits an hour
// between redials, b 50 ms. After the heal b's stream (its Pulls) arrives first, and a
// redials at once on hearing from b (its stream carries a's answers to b's
// Pull), rather than after its backoff.
func TestRedialWhenPeerHeard(t *testing.T) {
	f := NewFabric(1)
	a, b, _, _ := healPair(t, f, time.Hour, func(site string, cfg *Config) {
		if site == "a" {
			cfg.Redial = time.Hour
		} else {
			cfg.AntiEntropyInterval = 100 * time.Millisecond // b's Pulls find its stream broken
		}
	})
	f.Partition([]string{"a"})
	for i := 1; i <= 50; i++ {
		put(t, a, fmt.Sprintf("/k/%d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	time.Sleep(100 * time.Millisecond) // a's stream breaks: it waits out Redial/10
	f.Heal()
	took := waitSame(t, a, b, 3*time.Second)
	t.Logf("converged %v after the heal (fabric %+v)", took, f.Stats())
}
