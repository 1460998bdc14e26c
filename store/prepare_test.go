package store

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPreparedDocuments writes through Write, whose documents are readied
// before the commit: a preparation still current is used, one that another
// write made stale is not, and either way the key ends with the value last
// written and the version count of every write.
func TestPreparedDocuments(t *testing.T) {
	s := openReplicatedTest(t, t.TempDir())
	defer func() { s.Close() }()
	ctx := context.Background()
	key := []byte("/registry/pods/ns-1/web-0000001")
	putPod := func(gen int) func(TxnWrite) error {
		return func(tx TxnWrite) error { return tx.Put(key, podJSON(1, gen), 0) }
	}
	for gen := range 3 {
		if _, err := s.Write(ctx, putPod(gen)); err != nil {
			t.Fatal(err)
		}
	}
	// The first write created the key: nothing to prepare. The next two each
	// edited a stored document, readied before the commit.
	if n := testutil.ToFloat64(s.metrics.preparedDocs); n != 2 {
		t.Fatalf("%v prepared documents used, want 2", n)
	}

	// Prepared, then made stale by another write before it commits.
	stale := putPod(3)
	prep := s.prepare(stale)
	if len(prep) != 1 {
		t.Fatalf("prepared %d documents, want 1", len(prep))
	}
	if _, err := s.Write(ctx, putPod(4)); err != nil {
		t.Fatal(err)
	}
	r := &request{fns: []func(*WriteTxn) error{func(tx *WriteTxn) error { return stale(tx) }}, prep: prep, done: make(chan struct{})}
	if _, err := s.submit(ctx, r); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(s.metrics.preparedDocs); n != 3 {
		t.Fatalf("%v prepared documents used, want 3 (the stale one not)", n)
	}
	kv, ok := get(t, s, string(key), 0)
	if !ok || string(kv.Value) != string(podJSON(1, 3)) || kv.Version != 5 {
		t.Fatalf("key after the stale preparation: version %d, value %.80q; want version 5, the last value", kv.Version, kv.Value)
	}

	// The document as written survives a restart, edits included.
	dir := s.cfg.Dir
	s.Close()
	s = openReplicatedTest(t, dir)
	if kv2, _ := get(t, s, string(key), 0); string(kv2.Value) != string(kv.Value) || kv2.ModRevision != kv.ModRevision {
		t.Fatalf("after reopening: %.80q at %d, want %.80q at %d", kv2.Value, kv2.ModRevision, kv.Value, kv.ModRevision)
	}
	if _, err := s.Write(ctx, putPod(5)); err != nil {
		t.Fatal(err)
	}
}

// TestPrepViewsOutliveRenew checks the views writers prepare through: one in
// use stays readable after the committer renews the current view, is
// discarded by its last user, and none is handed out once the store closes.
func TestPrepViewsOutliveRenew(t *testing.T) {
	s := openReplicatedTest(t, t.TempDir())
	defer func() { s.Close() }()
	put(t, s, "/a", "1")
	old := s.prepViews.acquire()
	if raw, err := getIn(old, docKey([]byte("/a"))); err != nil || raw == nil {
		t.Fatalf("current view after a commit: document %q, %v; want it", raw, err)
	}
	put(t, s, "/b", "2") // renews the view
	cur := s.prepViews.acquire()
	if cur == old {
		t.Fatal("the view was not renewed by a commit")
	}
	if raw, _ := getIn(cur, docKey([]byte("/b"))); raw == nil {
		t.Fatal("the renewed view misses the commit before it")
	}
	if _, err := getIn(old, docKey([]byte("/a"))); err != nil {
		t.Fatalf("a view in use, once replaced: %v; want it readable", err)
	}
	s.prepViews.release(old)
	if _, err := old.Get(docKey([]byte("/a"))); !errors.Is(err, badger.ErrDiscardedTxn) {
		t.Fatalf("a replaced view after its last user: %v; want it discarded", err)
	}
	s.prepViews.release(cur)
	s.Close()
	if v := s.prepViews.acquire(); v != nil {
		t.Fatal("a view handed out after close")
	}
}
