package peer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/store"
)

// openStore opens a store that rebases and collects often, so faults meet them.
func openStore(t testing.TB, site string) *store.Store {
	return openSyncedStore(t, site, 3)
}

func openSyncedStore(t testing.TB, site string, rebaseEdits int) *store.Store {
	t.Helper()
	return openStoreWith(t, site, rebaseEdits, func(*store.Config) {})
}

// openSeededStore opens a site's store whose incarnation (and so its origin,
// which orders its changes among others') is the same in every run of a seed.
func openSeededStore(t testing.TB, site string, seed uint64) *store.Store {
	t.Helper()
	var key [32]byte
	copy(key[:], fmt.Sprint(seed, site))
	return openStoreWith(t, site, 3, func(cfg *store.Config) {
		cfg.Rand = rand.NewChaCha8(key)
		start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		cfg.Now = func() time.Time { return start }
	})
}

func openStoreWith(t testing.TB, site string, rebaseEdits int, set func(*store.Config)) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.InMemory, cfg.Site, cfg.Replicated = true, site, true
	cfg.RebaseEdits, cfg.GCInterval = rebaseEdits, 5*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	set(&cfg)
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seeds() int {
	if n, err := strconv.Atoi(os.Getenv("RHIZOME_SYNC_SEEDS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// TestConvergence writes at random sites under random partitions, message loss,
// duplication and reordering; after healing every site must hold identical data,
// and every key only one site wrote must end as that site's last acknowledged
// write. A failure names its seed; RHIZOME_SYNC_SEED=N replays exactly that one.
func TestConvergence(t *testing.T) {
	first, last := uint64(1), uint64(seeds())
	if s, err := strconv.ParseUint(os.Getenv("RHIZOME_SYNC_SEED"), 10, 64); err == nil {
		first, last = s, s
	}
	for seed := first; seed <= last; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runConvergence(t, seed, false) })
	}
}

// TestConvergenceForgetting is TestConvergence with each site also forgetting
// others and counting them again on its own, out of step with the others (as
// their --forget-site-after clocks would): the counted sets disagree while logs
// are collected and histories rebased, and the sites must still converge.
//
// Seeds 1..10 by default (RHIZOME_SYNC_SEEDS raises it); RHIZOME_SYNC_SEED runs
// any one seed. The divergence this test found (seed 12) is fixed, and so are
// the stalls of seeds 7 and 52: a site installing a snapshot merged its own
// changes again with tidying on, so it rebased a document anew under the epoch
// name its first rebase had (seed 7), or dropped a prior before merging its
// own later edits of it (seed 52); either left its edits missing a dependency
// at the other sites for ever.
func TestConvergenceForgetting(t *testing.T) {
	first, last := uint64(1), uint64(min(10, seeds()))
	if os.Getenv("RHIZOME_SYNC_SEEDS") != "" {
		last = uint64(seeds())
	}
	if s, err := strconv.ParseUint(os.Getenv("RHIZOME_SYNC_SEED"), 10, 64); err == nil {
		first, last = s, s
	}
	for seed := first; seed <= last; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runConvergence(t, seed, true) })
	}
}

// runConvergence runs one seed's schedule; forgetting adds sites forgetting others.
func runConvergence(t *testing.T, seed uint64, forgetting bool) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	names := []string{"a", "b", "c"}
	stores := map[string]*store.Store{}
	net := NewNetwork(seed)
	net.DropRate, net.DupRate = 0.1, 0.1
	for _, n := range names {
		stores[n] = openSeededStore(t, n, seed)
		net.Add(n, NewEngine(stores[n], 50))
	}
	// last[key] is the final acknowledged write to a key only one site writes,
	// and the incarnation that first wrote the key.
	type final struct {
		value        string
		exists       bool
		site, origin string
	}
	last := map[string]final{}
	shared := []string{"/registry/pods/ns/p", "/registry/pods/ns/q", "/x"}
	docs := []string{
		`{"metadata":{"name":"p"},"spec":{"replicas":1}}`,
		`{"metadata":{"name":"p","labels":{"a":"1"}},"spec":{"replicas":2}}`,
		`{"metadata":{"name":"p"},"status":{"ready":3}}`,
		"opaque",
	}
	for step := range 300 {
		switch r := rng.IntN(100); {
		case r < 45: // a write at a random site
			site := names[rng.IntN(len(names))]
			st := stores[site]
			own := rng.IntN(2) == 0
			key := shared[rng.IntN(len(shared))]
			if own {
				key = fmt.Sprintf("/own/%s/%d", site, rng.IntN(4))
			}
			del := rng.IntN(5) == 0
			val := docs[rng.IntN(len(docs))]
			if rng.IntN(3) == 0 {
				val = fmt.Sprintf(`{"metadata":{"name":"p"},"spec":{"n":%d,"by":"%s"}}`, step, site)
			}
			_, err := st.Update(ctx, func(tx *store.WriteTxn) error {
				if del {
					_, err := tx.DeleteRange([]byte(key), nil)
					return err
				}
				return tx.Put([]byte(key), []byte(val), 0)
			})
			if err != nil {
				t.Fatalf("seed %d step %d: write at %s: %v", seed, step, site, err)
			}
			if own {
				origin := st.Origin()
				if f, ok := last[key]; ok {
					origin = f.origin
				}
				if del {
					last[key] = final{site: site, origin: origin}
				} else {
					last[key] = final{val, true, site, origin}
				}
			}
		case r < 50:
			a := names[rng.IntN(3)]
			net.Partition([]string{a}) // one site cut off from the other two
		case r < 55:
			net.Heal()
		case r < 60 && forgetting:
			site := names[rng.IntN(3)]
			counted := []string{site}
			for _, n := range names {
				if n != site && rng.IntN(2) == 0 {
					counted = append(counted, n)
				}
			}
			net.engines[site].SetCounted(counted)
		case r < 70:
			if err := net.Tick(); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		default:
			for range rng.IntN(10) {
				if _, err := net.Step(ctx); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
			}
		}
	}
	for _, n := range names {
		net.engines[n].SetCounted(names)
	}
	net.Heal()
	rounds, err := net.Settle(ctx, 50)
	if err != nil {
		var state []string
		for _, n := range names {
			state = append(state, fmt.Sprintf("%s holds %v, collected %v", n, stores[n].VersionVector(), stores[n].Collected()))
		}
		t.Fatalf("seed %d: %v: %s", seed, err, state)
	}

	var want [32]byte
	var wantKVs []store.KeyValue
	for i, n := range names {
		d, err := stores[n].Digest()
		if err != nil {
			t.Fatal(err)
		}
		res, err := stores[n].Range([]byte{0}, store.RangeOptions{End: []byte{0}})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want, wantKVs = d, res.KVs
			continue
		}
		if d != want {
			t.Fatalf("seed %d: site %s digest differs from site a after %d rounds:\na: %s\n%s: %s", seed, n, rounds, dump(wantKVs), n, dump(res.KVs))
		}
	}
	anew := 0
	for key, f := range last {
		if stores[f.site].Origin() != f.origin {
			// Its site rejoined anew since it first wrote the key: it gave up
			// what no other site held, and its new incarnation's edits of a
			// history the old one rebased meanwhile are dropped (doc.go,
			// Forgetting).
			anew++
			continue
		}
		res, err := stores["a"].Range([]byte(key), store.RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := final{site: f.site, origin: f.origin}
		if len(res.KVs) == 1 {
			got.value, got.exists = string(res.KVs[0].Value), true
		}
		if got != f {
			t.Fatalf("seed %d: %s ended %+v, its only writer last wrote %+v", seed, key, got, f)
		}
	}
	// Once every site has told the others what it holds, every change is
	// stable and each site's change log is collected whole.
	net.DropRate, net.DupRate = 0, 0
	if err := net.Tick(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Settle(ctx, 10); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		waitCollected(t, stores[n])
	}
	t.Logf("seed %d: converged in %d rounds; %d messages delivered, %d lost; %d keys (%d written by an incarnation that rejoined anew, not checked)", seed, rounds, net.Delivered, net.Dropped, len(wantKVs), anew)
}

// waitCollectedOf waits until a store's change log is collected up to everything
// it holds of one origin.
func waitCollectedOf(t *testing.T, st *store.Store, origin string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for st.Collected()[origin] < st.VersionVector()[origin] {
		if time.Now().After(deadline) {
			t.Fatalf("site %s: change log of %s collected up to %d, holds %d", st.Site(), origin, st.Collected()[origin], st.VersionVector()[origin])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCollected waits until a store's change log is collected up to everything
// it holds.
func waitCollected(t *testing.T, st *store.Store) {
	t.Helper()
	for origin := range st.VersionVector() {
		waitCollectedOf(t, st, origin)
	}
}

func dump(kvs []store.KeyValue) string {
	s := ""
	for _, kv := range kvs {
		s += fmt.Sprintf("  %s = %s\n", kv.Key, kv.Value)
	}
	return s
}

// TestChainForwarding: a and c never talk, yet each ends with the other's writes,
// forwarded by b.
func TestChainForwarding(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(1)
	stores := map[string]*store.Store{}
	for _, n := range []string{"a", "b", "c"} {
		stores[n] = openStore(t, n)
		net.Add(n, NewEngine(stores[n], 10))
	}
	net.Cut("a", "c")
	for i := range 25 { // more than one batch each way
		for _, n := range []string{"a", "c"} {
			if _, err := stores[n].Update(ctx, func(tx *store.WriteTxn) error {
				return tx.Put([]byte(fmt.Sprintf("/%s/%d", n, i)), []byte(`{"v":1}`), 0)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "c"} {
		res, err := stores[n].Range([]byte("/"), store.RangeOptions{End: []byte("0"), CountOnly: true})
		if err != nil || res.Count != 50 {
			t.Fatalf("site %s holds %d keys (%v), want 50", n, res.Count, err)
		}
	}
}
