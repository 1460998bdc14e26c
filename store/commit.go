package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// A commit is one badger transaction: the revision records, change-log entries,
// documents, leases, revision meta, version vector and collected marks of a batch
// become durable together or not at all. The committer closes a batch before it
// outgrows a transaction (batchBytes), so this is the rule. A single request that
// alone is larger than a badger transaction allows (a DeleteRange over very many
// keys, a snapshot install) is written in parts ordered so that whatever prefix of
// them survives a crash is consistent (persistStaged):
//
//  1. revision records and change-log entries, and every document staged under
//     s|rev|key instead of its place: recovery ignores revision records past the
//     revision meta, readers of the change log stop at the durable version vector,
//     and staged documents of an unfinished commit are dropped;
//  2. one transaction with everything else (revision meta, clock, version vector,
//     collected marks, leases) and the mark "staged at rev": the commit point;
//  3. the staged documents moved into place, then the mark deleted. Recovery
//     finishes a move it finds marked.
//
// Snapshot and OpenBackup wait while a staged move is under way (staging).

// Failpoint names, passed to Config.Failpoint.
const (
	FailpointStagedPart   = "commit/staged-part"   // after each part of step 1
	FailpointStagedRecord = "commit/staged-record" // after step 2, before any move
	FailpointStagedMove   = "commit/staged-move"   // after each part of step 3
)

var metaStaged = []byte("mstaged") // the revision whose staged documents are being moved

func stagedKey(rev int64, key []byte) []byte {
	return append(binary.BigEndian.AppendUint64([]byte{prefixStaged}, uint64(rev)), key...)
}

// batchBytes is how many bytes of writes a batch may reach before the committer
// stops adding requests to it: well within badger's transaction limit, leaving
// room for the documents the batch changed, which are encoded at the end.
func (s *Store) batchBytes() int64 { return s.db.MaxBatchSize() / 4 }

// persist makes writes durable: in one badger transaction when they fit, else in
// crash-consistent parts (see above).
func (s *Store) persist(writes []write) error {
	if err := s.failpoint(FailpointBeforeCommit); err != nil {
		return err
	}
	err := s.writeAll(writes)
	if errors.Is(err, badger.ErrTxnTooBig) {
		s.log.Info("commit larger than one badger transaction: writing it in parts", "writes", len(writes))
		err = s.persistStaged(writes)
	}
	if err != nil {
		return err
	}
	return s.failpoint(FailpointAfterCommit)
}

// writeAll writes in one transaction.
func (s *Store) writeAll(writes []write) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	for _, w := range writes {
		if err := w.apply(txn); err != nil {
			return err
		}
	}
	return txn.Commit()
}

func (w write) apply(txn *badger.Txn) error {
	if w.delete {
		return txn.Delete(w.key)
	}
	return txn.Set(w.key, w.value)
}

// writeParts writes in as many transactions as needed, calling the failpoint
// after each one committed.
func (s *Store) writeParts(writes []write, failpoint string) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	for _, w := range writes {
		err := w.apply(txn)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = txn.Commit(); err != nil {
				return err
			}
			if err = s.failpoint(failpoint); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = w.apply(txn)
		}
		if err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	return s.failpoint(failpoint)
}

func (s *Store) failpoint(name string) error {
	if s.cfg.Failpoint == nil || name == "" {
		return nil
	}
	return s.cfg.Failpoint(name)
}

// persistStaged writes a commit too large for one transaction in the three steps
// described above.
func (s *Store) persistStaged(writes []write) error {
	var early, record, moves []write
	for _, w := range writes {
		switch w.key[0] {
		case prefixRev, prefixChange:
			early = append(early, w)
		case prefixDoc:
			// A staged value is a flag (1: set, 0: delete) and the document.
			v := append([]byte{1}, w.value...)
			if w.delete {
				v = []byte{0}
			}
			early = append(early, write{key: stagedKey(s.rev, w.key[1:]), value: v})
			moves = append(moves, w, write{key: stagedKey(s.rev, w.key[1:]), delete: true})
		default:
			record = append(record, w)
		}
	}
	if err := s.writeParts(early, FailpointStagedPart); err != nil {
		return err
	}
	s.staging.Lock()
	defer s.staging.Unlock()
	record = append(record, write{key: metaStaged, value: int64Bytes(s.rev)})
	if err := s.writeAll(record); err != nil {
		return err
	}
	if err := s.failpoint(FailpointStagedRecord); err != nil {
		return err
	}
	if err := s.writeParts(moves, FailpointStagedMove); err != nil {
		return err
	}
	return s.writeAll([]write{{key: metaStaged, delete: true}})
}

// recoverStaged finishes or discards a staged commit a crash interrupted: one
// whose commit point is durable (metaStaged) has its documents moved into place;
// staged documents of any other are dropped.
func (s *Store) recoverStaged() error {
	var writes []write
	err := s.db.View(func(txn *badger.Txn) error {
		done, err := metaIn(txn, metaStaged, 0)
		if err != nil {
			return err
		}
		it := txn.NewIterator(iteratorPrefix(prefixStaged))
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) < 9 {
				return fmt.Errorf("store: staged document: %w", errCorrupt)
			}
			if rev := int64(binary.BigEndian.Uint64(k[1:9])); rev == done && done != 0 {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				switch {
				case len(v) == 0:
					return fmt.Errorf("store: staged document: %w", errCorrupt)
				case v[0] == 1:
					writes = append(writes, write{key: docKey(k[9:]), value: v[1:]})
				default:
					writes = append(writes, write{key: docKey(k[9:]), delete: true})
				}
			}
			writes = append(writes, write{key: k, delete: true})
		}
		if done != 0 {
			s.log.Warn("finishing a commit a crash interrupted", "revision", done)
			writes = append(writes, write{key: metaStaged, delete: true})
		}
		return nil
	})
	if err != nil || len(writes) == 0 {
		return err
	}
	if err := s.writeParts(writes[:len(writes)-1], ""); err != nil {
		return fmt.Errorf("store: recover staged commit: %w", err)
	}
	return s.writeAll(writes[len(writes)-1:])
}

// newView opens a read transaction that sees no staged commit half moved. The
// caller discards it.
func (s *Store) newView() *badger.Txn {
	s.staging.RLock()
	defer s.staging.RUnlock()
	return s.db.NewTransaction(false)
}

// view runs fn in a read view of newView.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	txn := s.newView()
	defer txn.Discard()
	return fn(txn)
}
