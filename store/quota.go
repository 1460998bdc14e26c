package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Space quota, as etcd's --quota-backend-bytes.
//
// The store's size is what its badger directory occupies on disk: the blocks of
// the LSM tables, the memtable write-ahead logs and the value log (files are
// preallocated sparsely, so their length would overstate it). Walking the
// directory costs a system call per file, so the size is measured every
// SizeCheckInterval and the bytes committed since are added to it. An in-memory
// store counts its live keys and values instead.
//
// Like etcd, a write that would take the size to the quota raises the NOSPACE
// alarm and is refused with ErrNoSpace; while the alarm is raised every write that
// adds data (put, lease grant) is refused, and deletes, compactions, reads and
// changes merged from other sites go on. Deleting, compacting and Defragment give
// the space back; DisarmNoSpace lowers the alarm (a write that still does not fit
// raises it again). The alarm is kept across restarts.

// DefaultQuotaBytes is etcd's default quota (Config.QuotaBackendBytes 0).
const DefaultQuotaBytes = 2 << 30

// leaseQuotaCost is what a lease grant is charged against the quota (etcd's
// estimate of a lease's size).
const leaseQuotaCost = 64

var metaNoSpace = []byte("mnospace") // present while the NOSPACE alarm is raised

// Quota returns the quota in bytes, 0 when there is none.
func (s *Store) Quota() int64 {
	switch q := s.cfg.QuotaBackendBytes; {
	case q < 0:
		return 0
	case q == 0:
		return DefaultQuotaBytes
	default:
		return q
	}
}

// Size returns the bytes the store occupies (see the quota's comment above):
// never 0, as clients divide by it.
func (s *Store) Size() int64 {
	return max(s.measured.Load()+s.unmeasured.Load(), 1)
}

// measureSize measures the store's size now.
func (s *Store) measureSize() {
	var size int64
	if s.cfg.InMemory {
		s.mu.RLock()
		s.idx.tree.Ascend(func(ki *keyIndex) bool {
			if v, ok := ki.live(); ok {
				size += int64(len(ki.key)) + int64(v.size)
			}
			return true
		})
		s.mu.RUnlock()
	} else {
		filepath.WalkDir(s.cfg.Dir, func(_ string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					size += st.Blocks * 512
				} else {
					size += info.Size()
				}
			}
			return nil
		})
	}
	s.unmeasured.Store(0)
	s.measured.Store(size)
}

func (s *Store) runSizer() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SizeCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
			s.measureSize()
		}
	}
}

// Reserve refuses a write that would add cost bytes (etcd's estimate of a
// request: key and value plus 256 per put) when the NOSPACE alarm is raised, or
// raises it and refuses when the write would take the store to its quota. Call it
// before the write changes anything: it returns ErrNoSpace.
func (tx *WriteTxn) Reserve(cost int64) error {
	s := tx.s
	if cost <= 0 || s.Quota() == 0 {
		return nil
	}
	if s.noSpace.Load() {
		return ErrNoSpace
	}
	if s.Size()+cost < s.Quota() {
		return nil
	}
	if err := s.RaiseNoSpace(); err != nil {
		return err
	}
	return ErrNoSpace
}

// NoSpace reports whether the NOSPACE alarm is raised.
func (s *Store) NoSpace() bool { return s.noSpace.Load() }

// RaiseNoSpace raises the NOSPACE alarm, durably.
func (s *Store) RaiseNoSpace() error {
	if s.noSpace.Load() {
		return nil
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(metaNoSpace, nil) }); err != nil {
		return fmt.Errorf("store: raise alarm: %w", err)
	}
	s.noSpace.Store(true)
	s.log.Warn("space quota reached: NOSPACE alarm raised, writes are refused until it is disarmed",
		"size", s.Size(), "quota", s.Quota())
	return nil
}

// DisarmNoSpace lowers the NOSPACE alarm and reports whether it was raised.
func (s *Store) DisarmNoSpace() (bool, error) {
	if !s.noSpace.Load() {
		return false, nil
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaNoSpace) }); err != nil {
		return false, fmt.Errorf("store: disarm alarm: %w", err)
	}
	s.noSpace.Store(false)
	s.log.Info("NOSPACE alarm disarmed", "size", s.Size(), "quota", s.Quota())
	return true, nil
}

func (s *Store) loadNoSpace() error {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(metaNoSpace)
		s.noSpace.Store(err == nil)
		if isNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: read alarm: %w", err)
	}
	return nil
}

// Defragment gives back the space of deleted and compacted data, as etcd's
// defragmentation does: it writes badger's memtables out (badger does so on
// DropPrefix, so a marker key is written and dropped), merges every LSM level into
// one, dropping what is deleted or overwritten, and rewrites value-log files that
// are mostly garbage. Writes wait while the memtables are written out.
//
// The marker is written by the committer, whose commit renews the shared read
// view (prepViews): badger drops an overwritten or deleted version only below
// the oldest open read, and the view held since the last commit would keep
// what a Compact deleted after it (Compact deletes outside the committer).
func (s *Store) Defragment(ctx context.Context) error {
	defer timer(s.metrics.defragSeconds)()
	if _, err := s.Update(ctx, func(tx *WriteTxn) error {
		tx.writes = append(tx.writes, write{key: defragMarker})
		return nil
	}); err != nil {
		return fmt.Errorf("store: defragment: %w", err)
	}
	if err := s.db.DropPrefix(defragMarker); err != nil {
		return fmt.Errorf("store: defragment: %w", err)
	}
	if err := s.db.Flatten(2); err != nil {
		return fmt.Errorf("store: defragment: %w", err)
	}
	for ctx.Err() == nil && s.db.RunValueLogGC(0.5) == nil {
	}
	s.measureSize()
	return ctx.Err()
}

var defragMarker = []byte{prefixDefrag}
