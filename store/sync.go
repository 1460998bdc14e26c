package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"

	"github.com/dgraph-io/badger/v4"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// This file is the seam the sync layer sees: the version vector, the change log, and
// ApplyRemote, which takes changes from other sites down the one commit path.

// Change is one logged change as it travels between sites: the origin site and its
// sequence number there name it; Body is the crdt.Change.
type Change struct {
	Origin string
	Seq    uint64
	Key    []byte // empty for a lease granted or revoked
	Lease  int64  // the lease the key was attached to at its origin
	Body   []byte
}

// VersionVector returns, per origin site, the highest sequence number up to which
// this site holds every change.
func (s *Store) VersionVector() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.vv)
}

// DurableVersionVector returns, per origin site, the highest sequence number up
// to which this site holds every change durably: what a crash cannot take back,
// and what Changes hands out. VersionVector may be ahead of it by changes the
// committer has applied but not yet made durable.
func (s *Store) DurableVersionVector() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.durable)
}

// ChangesLogged returns a channel closed when the next change is logged (local or
// merged), so the sync layer can push without polling.
func (s *Store) ChangesLogged() <-chan struct{} { return s.changes.Wait() }

// Changes returns up to limit logged changes of one origin with sequence numbers
// after after, in order. Fewer than limit means the log has no more yet.
func (s *Store) Changes(origin string, after uint64, limit int) ([]Change, error) {
	s.mu.RLock()
	collected, durable := s.collected[origin], s.durable[origin]
	s.mu.RUnlock()
	if after < collected {
		return nil, ErrCollected
	}
	var out []Change
	prefix := changeKey(origin, 0)[:2+len(origin)]
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		next := after + 1
		for it.Seek(changeKey(origin, next)); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			if seq != next || seq > durable {
				break // not logged yet, or not durable yet, or collected: stop
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			key, lease, body, err := parseChangeEntry(v)
			if err != nil {
				return err
			}
			out = append(out, Change{Origin: origin, Seq: seq, Key: key, Lease: lease, Body: body})
			next++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read change log: %w", err)
	}
	return out, nil
}

// ApplyRemote merges changes received from other sites. A change is applied only in
// its origin's order (the next sequence number after the version vector) and only
// once its causal dependencies are here; others are left for a later delivery, so
// duplicates, reordering and gaps are harmless. Each change that alters what a
// client reads commits as its own revision and reaches watchers as an ordinary event;
// a change whose incarnation replaces the live one (a concurrent create that wins)
// commits as two, a delete of the object here and a create of the winner, so a
// watcher never sees an object's identity change in an update.
// Objects the change leaves in a namespace deleted at one of the sites are deleted
// in the same commit (namespace.go). It returns how many changes were applied.
// Changes are handed to the committer in requests small enough that a commit
// of them fits one badger transaction (a batch of sync's is often larger than
// one: a badger transaction is 15 % of a memtable), queued together so the
// committer takes as many in a commit as fit.
func (s *Store) ApplyRemote(ctx context.Context, changes []Change) (int, error) {
	if s.docless {
		return 0, ErrDocless
	}
	applied := 0
	var rs []*request
	size := int64(0)
	for _, c := range changes {
		// A merged change writes its log entry, its document and its revision
		// record: about three times its body.
		if size += 3 * int64(len(c.Key)+len(c.Body)); len(rs) == 0 || size > s.batchBytes()/2 {
			rs, size = append(rs, &request{done: make(chan struct{})}), 3*int64(len(c.Key)+len(c.Body))
		}
		r := rs[len(rs)-1]
		var (
			effect   namespaceEffect
			wasLive  bool
			recreate *recreation
		)
		r.fns = append(r.fns, func(tx *WriteTxn) (err error) {
			if tx.s.namespaceName(c.Key) != "" {
				if _, wasLive, err = tx.liveValue(c.Key); err != nil {
					return err
				}
			}
			tx.splitReplace = true
			ok, err := tx.applyRemote(c)
			if ok {
				applied++
				if err == nil {
					err = tx.s.failpoint(FailpointApplyRemote)
				}
			}
			if recreate = tx.recreate; ok && err == nil && recreate == nil && len(c.Key) > 0 {
				effect, err = tx.namespaceEffect(c.Key, wasLive)
			}
			return err
		}, func(tx *WriteTxn) error {
			// A replaced incarnation's successor: a create, at its own revision.
			if recreate == nil {
				return nil
			}
			if err := tx.indexPut(recreate.ki, recreate.value, recreate.lease); err != nil {
				return err
			}
			var err error
			effect, err = tx.namespaceEffect(c.Key, wasLive)
			return err
		}, func(tx *WriteTxn) error {
			// Its own revision, in the same commit (namespace.go).
			return tx.enforceNamespace(effect)
		})
	}
	err := s.submitAll(ctx, rs)
	return applied, err
}

func (tx *WriteTxn) applyRemote(c Change) (bool, error) {
	if c.Origin == tx.s.origin || c.Seq != tx.s.vv[c.Origin]+1 {
		return false, nil // ours, a duplicate, or ahead of a gap
	}
	return tx.merge(c, true)
}

// merge applies a logged change to the key's document and the index, and records
// it in the change log when record is set (it is not when a snapshot's install
// applies this site's own changes again).
func (tx *WriteTxn) merge(c Change, record bool) (bool, error) {
	if len(c.Key) == 0 {
		if err := tx.applyLeaseChange(c.Body); err != nil {
			return false, fmt.Errorf("store: lease change %s/%d: %w", c.Origin, c.Seq, err)
		}
		tx.mutated = true
		if record {
			tx.record(c.Origin, c.Seq, nil, c.Body)
		}
		return true, nil
	}
	if len(c.Body) == 0 {
		return true, tx.reattach(c, record)
	}
	change, err := crdt.DecodeChange(c.Body)
	if err != nil {
		return false, fmt.Errorf("store: change %s/%d: %w", c.Origin, c.Seq, err)
	}
	doc, err := tx.doc(c.Key)
	if err != nil {
		return false, err
	}
	conflicts, inc := doc.ConflictCount(), doc.Incarnation()
	changed, err := doc.Apply(change)
	if errors.Is(err, crdt.ErrMissingDependency) {
		return false, nil // its causes have not arrived yet
	}
	if err != nil {
		return false, fmt.Errorf("store: apply change %s/%d to %q: %w", c.Origin, c.Seq, c.Key, err)
	}
	tx.mutated = true
	tx.s.clock = max(tx.s.clock, change.Inc.Counter, change.Epoch.Counter)
	if record {
		tx.recordWithLease(c.Origin, c.Seq, c.Key, c.Lease, c.Body)
	}
	lease := c.Lease
	if ki := tx.s.idx.get(c.Key); ki != nil {
		if _, live := ki.live(); live {
			lease = ki.lease
		}
	}
	if err := tx.tidy(c.Key, doc, lease); err != nil {
		return true, err
	}
	tx.recordConflicts(c.Key, doc, conflicts)
	if !changed {
		return true, nil
	}
	ki := tx.s.idx.getOrCreate(c.Key)
	if value, exists := doc.Value(); exists {
		lease := c.Lease
		if !tx.s.leases.exists(lease) {
			lease = 0 // revoked here meanwhile
		}
		if _, live := ki.live(); live && tx.splitReplace && doc.Incarnation() != inc {
			// Another site's concurrent create won over the object here: watchers
			// see this one deleted and the winner created at the next revision,
			// as etcd would show them, never an update that changes an object's
			// identity (a Kubernetes uid) under the same key.
			tx.recreate = &recreation{ki: ki, value: value, lease: lease}
			_, err := tx.indexDelete(ki)
			return true, err
		}
		return true, tx.indexPut(ki, value, lease)
	}
	if _, live := ki.live(); live {
		_, err = tx.indexDelete(ki)
	}
	return true, err
}

// reattach takes a change that only moved a key to another lease: a new revision
// of the key with the same value, as the Put made at its origin.
func (tx *WriteTxn) reattach(c Change, record bool) error {
	tx.mutated = true
	if record {
		tx.recordWithLease(c.Origin, c.Seq, c.Key, c.Lease, nil)
	}
	ki := tx.s.idx.get(c.Key)
	if ki == nil || !tx.s.leases.exists(c.Lease) && c.Lease != 0 {
		return nil
	}
	v, live := ki.live()
	if !live || ki.lease == c.Lease {
		return nil
	}
	kv, err := tx.reads.kv(v)
	if err != nil {
		return err
	}
	return tx.indexPut(ki, kv.Value, c.Lease)
}

// A change-log entry: len(key) (4 bytes), key, lease (8 bytes), body.
func appendChangeEntry(b, key []byte, lease int64, body []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(lease))
	return append(b, body...)
}

func parseChangeEntry(b []byte) (key []byte, lease int64, body []byte, err error) {
	if len(b) < 12 {
		return nil, 0, nil, errCorrupt
	}
	n := int(binary.BigEndian.Uint32(b))
	if len(b) < 12+n {
		return nil, 0, nil, errCorrupt
	}
	return b[4 : 4+n], int64(binary.BigEndian.Uint64(b[4+n:])), b[12+n:], nil
}

// Digest summarises the live keys and their values at the newest revision: sites
// holding the same data have the same digest, whatever their revisions.
func (s *Store) Digest() ([32]byte, error) {
	h := sha256.New()
	res, err := s.Range([]byte{0}, RangeOptions{End: []byte{0}})
	if err != nil {
		return [32]byte{}, err
	}
	for _, kv := range res.KVs {
		binary.Write(h, binary.BigEndian, uint32(len(kv.Key)))
		h.Write(kv.Key)
		value := kube.Canonical(kv.Value)
		binary.Write(h, binary.BigEndian, uint32(len(value)))
		h.Write(value)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, nil
}
