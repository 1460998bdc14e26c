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
	cfg.Dir, cfg.Site, cfg.DocCacheBytes = t.TempDir(), "test", 256<<10
	// A one-branch history is edited in Go (crdt); a rebase loads automerge.
	cfg.RebaseEdits = 2
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sawNative := false
	for gen := range 3 {
		for i := range 40 {
			put(t, s, fmt.Sprintf("k%02d", i), string(podJSON(i, gen)))
			heap, native := s.docs.heap.Load(), s.docs.native.Load()
			if heap+native > cfg.DocCacheBytes {
				t.Fatalf("gen %d key %d: cache holds %d+%d bytes, budget %d", gen, i, heap, native, cfg.DocCacheBytes)
			}
			sawNative = sawNative || native > 0
		}
	}
	if !sawNative {
		t.Fatal("the cache never counted a loaded automerge document")
	}
	if s.docs.lru.Len() >= 40 {
		t.Fatalf("all %d documents stayed cached within %d bytes", s.docs.lru.Len(), cfg.DocCacheBytes)
	}
	for i := range 40 {
		if kv, _ := get(t, s, fmt.Sprintf("k%02d", i), 0); string(kv.Value) != string(podJSON(i, 2)) || kv.Version != 3 {
			t.Fatalf("k%02d: version %d value %.60s", i, kv.Version, kv.Value)
		}
	}
}
