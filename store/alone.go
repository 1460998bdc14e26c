package store

import (
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rhizome-kv/rhizome/crdt"
)

// A store alone. A store created alone (not Config.Replicated) that has never
// shared its data keeps no documents: no other site's writes will ever merge
// into them, so its key index and revision records are its whole state, as
// etcd's key index and bbolt are etcd's, and a write stores its value once
// (in its revision record) instead of twice. metaDocless marks such a store.
// Opened as one of several sites, it first writes every live key's document:
// a register holding the key's value (crdt.Doc.PutRegister), which the first
// edit promotes to the value's document alike at every site (buildDocuments).
// A store that kept documents once keeps them when opened alone again: it
// writes values whole into them (WriteTxn.putInto), so they stay current.

// ErrDocless is returned by what needs documents from a store that keeps none:
// merging other sites' changes into it, or a snapshot of it for another site.
var ErrDocless = errors.New("store: a store alone keeps no documents (open it as replicated first)")

// settleDocuments decides at Open whether the store keeps documents: not when
// it is alone and either new or already without them; and a replicated store
// that had none gets them before it serves. Called after recover.
func (s *Store) settleDocuments() error {
	var docless, empty bool
	err := s.db.View(func(txn *badger.Txn) error {
		mark, err := metaBytes(txn, metaDocless)
		docless = mark != nil
		empty = !hasPrefix(txn, prefixRev) && !hasPrefix(txn, prefixDoc)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: read %s: %w", metaDocless, err)
	}
	switch {
	case !s.cfg.Replicated && (docless || empty):
		s.docless = true
		if docless {
			return nil
		}
		return s.db.Update(func(txn *badger.Txn) error { return txn.Set(metaDocless, nil) })
	case s.cfg.Replicated && docless:
		return s.buildDocuments()
	}
	return nil
}

// buildBatch bounds the documents buildDocuments writes per transaction.
const buildBatch = 1000

// buildDocuments writes every live key's document, a register holding its
// value at a stamp of this site, then drops metaDocless, in transactions of
// buildBatch keys: a crash part way leaves the mark, and the next Open builds
// them all again (no other site has seen any yet).
func (s *Store) buildDocuments() error {
	var live []*keyIndex
	s.idx.tree.Ascend(func(ki *keyIndex) bool {
		if _, ok := ki.live(); ok {
			live = append(live, ki)
		}
		return true
	})
	for start := 0; start < len(live); start += buildBatch {
		if err := s.db.Update(func(txn *badger.Txn) error {
			for _, ki := range live[start:min(start+buildBatch, len(live))] {
				if err := s.buildDocument(txn, ki); err != nil {
					return err
				}
			}
			return txn.Set(metaClock, int64Bytes(int64(s.clock)))
		}); err != nil {
			return fmt.Errorf("store: build documents: %w", err)
		}
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaDocless) }); err != nil {
		return fmt.Errorf("store: build documents: %w", err)
	}
	s.log.Info("built the documents of a store that was alone", "keys", len(live))
	return nil
}

func (s *Store) buildDocument(txn *badger.Txn, ki *keyIndex) error {
	v, _ := ki.live()
	kv, err := s.kvIn(txn, v)
	if err != nil {
		return err
	}
	s.clock++
	d := &crdt.Doc{}
	if _, _, err := d.PutRegister(kv.Value, crdt.Stamp{Counter: s.clock, Site: s.origin}); err != nil {
		return err
	}
	return txn.Set(docKey(ki.key), d.Encode())
}

// putDocless is Put in a store that keeps no documents: the value goes into
// the key's revision record alone.
func (tx *WriteTxn) putDocless(key, value []byte, lease int64) error {
	tx.mutated = true
	tx.logBodiless(key, lease)
	return tx.indexPutFrom(tx.s.idx.getOrCreate(key), value, lease, nil)
}

// deleteDocless is deleteKey in a store that keeps no documents.
func (tx *WriteTxn) deleteDocless(ki *keyIndex) (KeyValue, error) {
	tx.mutated = true
	tx.logBodiless(ki.key, 0)
	return tx.indexDelete(ki)
}
