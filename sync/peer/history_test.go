package peer

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rhizome-kv/rhizome/store"
)

// TestBoundedHistory updates one object 100,000 times, taking turns at three sites
// that sync as they go (RHIZOME_HISTORY_UPDATES changes the count). Each site's
// stored document must stay within a small factor of one version of the object,
// and the change logs must not grow with the updates.
func TestBoundedHistory(t *testing.T) {
	updates := 100_000
	if n, err := strconv.Atoi(os.Getenv("RHIZOME_HISTORY_UPDATES")); err == nil && n > 0 {
		updates = n
	}
	if testing.Short() {
		updates = 5_000
	}
	ctx := context.Background()
	names := []string{"a", "b", "c"}
	net := NewNetwork(1)
	stores := map[string]*store.Store{}
	for _, n := range names {
		stores[n] = openSyncedStore(t, n, store.DefaultConfig().RebaseEdits)
		net.Add(n, NewEngine(stores[n], 500))
	}
	key := []byte("/registry/leases/kube-node-lease/node-1")
	value := func(i int, site string) []byte {
		return fmt.Appendf(nil, `{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"node-1","namespace":"kube-node-lease","uid":"0b3c6f1e-8d9a-4c55-9f0e-2a7d1c3b4e5f","resourceVersion":"%d","creationTimestamp":"2026-11-22T00:00:00Z","labels":{"kubernetes.io/hostname":"node-1"}},"spec":{"holderIdentity":"%s","leaseDurationSeconds":40,"renewTime":"2026-11-22T%02d:%02d:%02d.%06dZ"}}`,
			i, site, i/3600%24, i/60%60, i%60, i%1_000_000)
	}
	largestDoc, largestLog, one := 0, uint64(0), len(value(0, "a"))
	for i := range updates {
		site := names[i%3]
		if _, err := stores[site].Update(ctx, func(tx *store.WriteTxn) error {
			return tx.Put(key, value(i, site), 0)
		}); err != nil {
			t.Fatalf("update %d at %s: %v", i, site, err)
		}
		if i%3 == 2 { // every site wrote once: sync
			if err := net.Tick(); err != nil {
				t.Fatal(err)
			}
			if err := net.Drain(ctx, 1_000_000); err != nil {
				t.Fatal(err)
			}
		}
		if i%1000 == 999 || i == updates-1 {
			for _, n := range names {
				size, err := stores[n].DocSize(key)
				if err != nil {
					t.Fatal(err)
				}
				largestDoc = max(largestDoc, size)
				largestLog = max(largestLog, stores[n].LogLen())
			}
		}
		if i%10_000 == 9_999 {
			t.Logf("%d updates: largest stored document %d bytes (one version %d), largest change log %d changes", i+1, largestDoc, one, largestLog)
		}
	}
	// The last updates may have been concurrent; one more after settling is
	// causally last and must stand everywhere.
	if _, err := net.Settle(ctx, 10); err != nil {
		t.Fatal(err)
	}
	final := value(updates, "c")
	if _, err := stores["c"].Update(ctx, func(tx *store.WriteTxn) error { return tx.Put(key, final, 0) }); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Settle(ctx, 10); err != nil {
		t.Fatal(err)
	}
	var want string
	for i, n := range names {
		res, err := stores[n].Range(key, store.RangeOptions{})
		if err != nil || len(res.KVs) != 1 {
			t.Fatalf("%s: %v %v", n, res, err)
		}
		if got := string(res.KVs[0].Value); i == 0 {
			want = got
		} else if got != want {
			t.Fatalf("sites differ:\na: %s\n%s: %s", want, n, got)
		}
	}
	if want != string(final) {
		t.Fatalf("ended at %s, last write was %s", want, final)
	}
	t.Logf("%d updates at 3 sites: largest stored document %d bytes = %.1fx one version (%d bytes); largest change log %d changes",
		updates, largestDoc, float64(largestDoc)/float64(one), one, largestLog)
	if largestDoc > 16*one {
		t.Fatalf("the stored document reached %d bytes, %.1fx one version", largestDoc, float64(largestDoc)/float64(one))
	}
	if largestLog > 5_000 {
		t.Fatalf("a change log reached %d changes over %d updates", largestLog, updates)
	}
}
