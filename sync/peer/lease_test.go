package peer

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/store"
)

// TestLeasesReplicateAndAreTakenOver: a lease and its keys reach the other site; a
// revoke there deletes the keys everywhere; and when the granting site is declared
// dead, the other site expires its leases after the takeover timeout.
func TestLeasesReplicateAndAreTakenOver(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Unix(1_000_000, 0).UnixNano())
	open := func(site string) *store.Store {
		cfg := store.DefaultConfig()
		cfg.InMemory, cfg.Site, cfg.Replicated = true, site, true
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.LeaseCheckInterval = 5 * time.Millisecond
		cfg.LeaseTakeover = time.Minute
		cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
		s, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	net := NewNetwork(7)
	net.Add("a", NewEngine(a, 100))
	net.Add("b", NewEngine(b, 100))
	settle := func() {
		t.Helper()
		if _, err := net.Settle(ctx, 10); err != nil {
			t.Fatal(err)
		}
	}
	get := func(s *store.Store, key string) (store.KeyValue, bool) {
		res, err := s.Range([]byte(key), store.RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.KVs) == 0 {
			return store.KeyValue{}, false
		}
		return res.KVs[0], true
	}
	grantAndPut := func(id int64, key string) {
		t.Helper()
		if _, _, err := a.GrantLease(ctx, id, 30); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Update(ctx, func(tx *store.WriteTxn) error { return tx.Put([]byte(key), []byte("v"), id) }); err != nil {
			t.Fatal(err)
		}
		settle()
		if kv, ok := get(b, key); !ok || kv.Lease != id {
			t.Fatalf("%s at b: %+v %v, want attached to lease %d", key, kv, ok, id)
		}
	}
	waitGone := func(s *store.Store, key string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			settle()
			if _, ok := get(s, key); !ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still at %s", key, s.Site())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	grantAndPut(11, "/events/e1")
	if _, err := a.RevokeLease(ctx, 11); err != nil {
		t.Fatal(err)
	}
	waitGone(b, "/events/e1")
	if _, err := b.LeaseTimeToLive(11, false); err == nil {
		t.Fatal("a revoked lease lives on at b")
	}

	// The same value put with another lease moves the key at every site.
	grantAndPut(13, "/events/e3")
	grantAndPut(14, "/events/e3")

	grantAndPut(12, "/events/e2")
	b.SetSiteAlive(func(site string) bool { return site != "a" }) // a is declared dead
	now.Add(int64(30 * time.Second))                              // within the takeover timeout
	time.Sleep(50 * time.Millisecond)
	if _, ok := get(b, "/events/e2"); !ok {
		t.Fatal("b expired a's lease before the takeover timeout")
	}
	now.Add(int64(2 * time.Minute)) // past takeover plus the lease's TTL
	waitGone(b, "/events/e2")
	waitGone(a, "/events/e2") // b's expiry replicates back
}
