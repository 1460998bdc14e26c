package store

import (
	"bytes"
	"context"
	"testing"
)

// TestCacheKey: neighbouring revisions have distinct keys; one the key
// cannot name is not cached.
func TestCacheKey(t *testing.T) {
	seen := map[uint64]revision{}
	for _, r := range []revision{{1, 0}, {1, 1}, {2, 0}, {1 << 30, 5}, {1<<40 - 1, 1<<24 - 1}} {
		k, ok := cacheKey(r)
		if !ok {
			t.Fatalf("%v: not named", r)
		}
		if other, dup := seen[k]; dup {
			t.Fatalf("%v and %v share key %d", r, other, k)
		}
		seen[k] = r
	}
	for _, r := range []revision{{1 << 40, 0}, {1, 1 << 24}, {-1, 0}} {
		if _, ok := cacheKey(r); ok {
			t.Fatalf("%v: named", r)
		}
	}
}

// TestRecordCacheHoldsCommits: a durable write's state is offered to the
// record cache, which then answers for its revision as badger would.
func TestRecordCacheHoldsCommits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InMemory, cfg.Site = true, "t"
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rev, err := s.Update(context.Background(), func(tx *WriteTxn) error { return tx.Put([]byte("k"), []byte("v1"), 0) })
	if err != nil {
		t.Fatal(err)
	}
	s.records.c.Wait() // sets are applied asynchronously
	kv, ok := s.records.get(revision{main: rev})
	if !ok {
		t.Fatal("the commit's state is not in the record cache")
	}
	res, err := s.Range([]byte("k"), RangeOptions{})
	if err != nil || len(res.KVs) != 1 {
		t.Fatalf("range: %v %v", res, err)
	}
	if got := res.KVs[0]; !bytes.Equal(kv.Value, got.Value) || kv.ModRevision != got.ModRevision || kv.CreateRevision != got.CreateRevision || kv.Version != got.Version {
		t.Fatalf("cached %+v, range %+v", kv, got)
	}
	none, err := newRecordCache(0)
	if err != nil || none != nil {
		t.Fatalf("a cache of 0 bytes: %v %v", none, err)
	}
	if _, ok := none.get(revision{main: rev}); ok {
		t.Fatal("no cache answered")
	}
}
