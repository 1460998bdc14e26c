package store

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Compact discards history before rev: reads and watches at earlier revisions fail
// with ErrCompacted afterwards. Each key keeps its newest state at or before rev
// unless that is a delete. It returns once the history is physically gone.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	var removed []revision
	_, err := s.Update(ctx, func(tx *WriteTxn) error {
		switch {
		case rev > tx.Rev():
			return ErrFutureRev
		case rev <= s.compactRev:
			return ErrCompacted
		}
		s.compactRev = rev
		removed = s.pruneIndex(rev)
		tx.mutated = true
		tx.writes = append(tx.writes, write{key: metaCompact, value: int64Bytes(rev)})
		return nil
	})
	if err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range removed {
		if err := wb.Delete(revKey(r.main, r.sub)); err != nil {
			return fmt.Errorf("store: compact: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	s.metrics.compacted(len(removed))
	return nil
}

// pruneIndex drops from the index the history that compaction at rev discards and
// returns the revisions dropped. Callers hold mu (or own the store exclusively).
func (s *Store) pruneIndex(rev int64) []revision {
	if rev < 0 {
		return nil
	}
	var removed []revision
	var empty []*keyIndex
	s.idx.tree.Ascend(func(ki *keyIndex) bool {
		n := 0 // entries at or before rev
		for n < len(ki.versions) && ki.versions[n].rev.main <= rev {
			n++
		}
		keep := n - 1
		if keep >= 0 && ki.versions[keep].tomb {
			keep++
		}
		for _, v := range ki.versions[:max(keep, 0)] {
			removed = append(removed, v.rev)
		}
		if keep > 0 {
			ki.versions = append([]version(nil), ki.versions[keep:]...)
		}
		if len(ki.versions) == 0 {
			empty = append(empty, ki)
		}
		return true
	})
	for _, ki := range empty {
		s.idx.tree.Delete(ki)
	}
	return removed
}

func iteratorPrefix(p byte) badger.IteratorOptions {
	return badger.IteratorOptions{Prefix: []byte{p}, PrefetchValues: true, PrefetchSize: 100}
}
