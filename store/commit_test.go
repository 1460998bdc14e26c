package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

var errCrash = errors.New("injected crash")

// TestStagedCommitCrash commits one request too large for a badger transaction
// and crashes it at each failpoint in turn, with a sync reader taking the change
// log between the parts. After reopening, the store must be consistent: the
// revision either before or after the commit with no gap, documents agreeing with
// the index, nothing staged left, and its own sequence not behind anything handed
// to the reader.
func TestStagedCommitCrash(t *testing.T) {
	const keys = 1500
	value := strings.Repeat("v", 200)
	for crashAt := 1; ; crashAt++ {
		dir := t.TempDir()
		cfg := DefaultConfig()
		cfg.Dir, cfg.Site, cfg.Replicated, cfg.MemoryBudget = dir, "a", true, MinMemoryBudget
		var (
			s      *Store
			calls  int
			handed uint64 // highest own sequence number the reader was given
		)
		cfg.Failpoint = func(name string) error {
			if !strings.HasPrefix(name, "commit/staged") {
				return nil // the points every commit passes
			}
			chs, err := s.Changes(s.Origin(), 0, 1<<20)
			if err != nil {
				return err
			}
			if n := len(chs); n > 0 {
				handed = max(handed, chs[n-1].Seq)
			}
			if calls++; calls == crashAt {
				return errCrash
			}
			return nil
		}
		var err error
		if s, err = Open(cfg); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			put(t, s, fmt.Sprintf("small%d", i), "x")
		}
		before := s.Rev()
		_, err = s.Update(context.Background(), func(tx *WriteTxn) error {
			for i := range keys {
				if err := tx.Put(fmt.Appendf(nil, "big/%04d", i), []byte(value), 0); err != nil {
					return err
				}
			}
			return nil
		})
		crashed := errors.Is(err, errCrash)
		if err != nil && !crashed {
			t.Fatal(err)
		}
		s.Close()
		if !crashed && calls < 3 {
			t.Fatalf("the large commit passed %d failpoints: it was not written in parts", calls)
		}

		cfg.Failpoint = nil
		if s, err = Open(cfg); err != nil {
			t.Fatalf("crash at failpoint %d: reopen: %v", crashAt, err)
		}
		checkConsistent(t, s, before, handed, keys)
		s.Close()
		if !crashed {
			t.Logf("%d failpoints crashed and recovered", crashAt-1)
			return
		}
	}
}

// checkConsistent checks a store reopened after a crash during a commit of
// revision before+1 that wrote keys big/NNNN.
func checkConsistent(t *testing.T, s *Store, before int64, handed uint64, keys int) {
	t.Helper()
	rev := s.Rev()
	if rev != before && rev != before+1 {
		t.Fatalf("revision %d after a crash in the commit of %d", rev, before+1)
	}
	evs, err := s.Events(2, rev, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for r, i := int64(2), 0; r <= rev; r++ {
		if i >= len(evs) || evs[i].KV.ModRevision != r {
			t.Fatalf("no event at revision %d of %d", r, rev)
		}
		for i < len(evs) && evs[i].KV.ModRevision == r {
			i++
		}
	}
	res, err := s.Range([]byte("big/"), RangeOptions{End: []byte("big0")})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]int{true: keys, false: 0}[rev == before+1]; len(res.KVs) != want {
		t.Fatalf("revision %d shows %d of the commit's keys, want %d", rev, len(res.KVs), want)
	}
	for i := range keys {
		k := fmt.Appendf(nil, "big/%04d", i)
		raw, err := s.getRaw(docKey(k))
		if err != nil {
			t.Fatal(err)
		}
		if (raw != nil) != (rev == before+1) {
			t.Fatalf("at revision %d the document of %s is present: %v", rev, k, raw != nil)
		}
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(iteratorPrefix(prefixStaged))
		defer it.Close()
		if it.Rewind(); it.Valid() {
			return fmt.Errorf("staged document %q left", it.Item().Key())
		}
		if _, err := txn.Get(metaStaged); !isNotFound(err) {
			return fmt.Errorf("staged mark left: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	own := s.VersionVector()[s.Origin()]
	if own < handed {
		t.Fatalf("own sequence %d is behind %d, handed to sync before the crash", own, handed)
	}
	chs, err := s.Changes(s.Origin(), 0, 1<<20)
	if err != nil || uint64(len(chs)) != own {
		t.Fatalf("change log holds %d of the %d own changes (%v)", len(chs), own, err)
	}
	if r := put(t, s, "after", "y"); r != rev+1 {
		t.Fatalf("write after recovery at revision %d, want %d", r, rev+1)
	}
}
