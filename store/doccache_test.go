package store

import (
	"fmt"
	"testing"
)

// TestDocCacheBudget checks the document cache stays within its budget of bytes
// (C side counted) while keys are written and rewritten, and that documents it
// evicted are decoded again, whole, by the next write.
func TestDocCacheBudget(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.DocCacheBytes, cfg.Replicated = t.TempDir(), "test", 256<<10, true
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sawNative := false
	checkBudget := func(what string) {
		t.Helper()
		landed(t, s)
		heap, native := s.docs.heap.Load(), s.docs.native.Load()
		if heap+native > cfg.DocCacheBytes {
			t.Fatalf("%s: cache holds %d+%d bytes, budget %d", what, heap, native, cfg.DocCacheBytes)
		}
		sawNative = sawNative || native > 0
	}
	// One-branch histories are edited in Go (crdt); merging a peer's
	// concurrent edits loads automerge, whose C-side memory counts too.
	peer := openSite(t, "peer", nil)
	for gen := range 3 {
		if gen == 1 {
			exchange(t, s, peer)
			for i := range 40 {
				put(t, peer, fmt.Sprintf("k%02d", i), string(podJSON(i, 7)))
			}
		}
		for i := range 40 {
			put(t, s, fmt.Sprintf("k%02d", i), string(podJSON(i, gen)))
			checkBudget(fmt.Sprintf("gen %d key %d", gen, i))
		}
		if gen == 1 {
			exchange(t, s, peer)
			checkBudget("after merging the peer's concurrent edits")
		}
	}
	if !sawNative {
		t.Fatal("the cache never counted a loaded automerge document")
	}
	if s.docs.lru.Len() >= 40 {
		t.Fatalf("all %d documents stayed cached within %d bytes", s.docs.lru.Len(), cfg.DocCacheBytes)
	}
	// Three puts here each, and a revision of the merge where the peer's
	// concurrent edit won a field (by actor order, which follows the sites'
	// random incarnation ids).
	for i := range 40 {
		if kv, _ := get(t, s, fmt.Sprintf("k%02d", i), 0); string(kv.Value) != string(podJSON(i, 2)) || kv.Version < 3 || kv.Version > 4 {
			t.Fatalf("k%02d: version %d value %.60s", i, kv.Version, kv.Value)
		}
	}
}

// landed returns once the commits of the writes already answered have landed
// in the committer (their documents settled in the cache): a write is
// answered as soon as it is durable, and the committer lands its commit before
// it begins the next one, here an empty write's.
func landed(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.Update(t.Context(), func(*WriteTxn) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
