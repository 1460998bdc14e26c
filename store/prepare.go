package store

import (
	"bytes"
	"sync"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Preparing writes. The committer is one goroutine, so whatever it does per
// write is done one write at a time. The costliest part of a write to an
// existing key is readying its document: decoding it from badger and loading
// its automerge body (for a body never edited, building it field by field).
// Write does that in the caller's goroutine first, as etcd evaluates what it
// can against a read view before its apply loop:
//
//  1. it runs the caller's function against a dry view (dryTxn): reads see the
//     newest durable revision, writes only record the keys they put;
//  2. it cuts the values put into fields (crdt.PrepareValue; the value of a
//     create that is plainly a document only when its Doc first needs the
//     fields, crdt.PrepareNew), reads the keys' documents from one badger
//     view and readies them (crdt.Doc.Prepare), remembering the stored bytes
//     each came from;
//  3. the committer runs the function for real, against the committed state,
//     as it always has. When a write needs a key's document that the batch
//     has not yet changed, it takes the prepared one only if the key's stored
//     document is still byte for byte the one it was prepared from and the
//     custom resource schemas are those it was decoded with; else it decodes
//     the stored one, as without preparation. A value cut ahead is taken
//     when the write puts the same bytes and the schemas are the same.
//
// A store alone (not Config.Replicated) prepares nothing: it writes values
// whole (WriteTxn.putInto), with no document to ready and no fields to cut.
//
// So preparation decides nothing: compares, revisions, the order of commits
// and what watchers see are the committer's alone, and a prepared document is
// only ever used where decoding the stored bytes again would yield the same
// document. A prepared document the committer does not take is let go.

// prepared is what was readied outside the committer for one key put.
type prepared struct {
	crdGen uint64         // Store.crdGen when it was prepared
	value  []byte         // the value put
	cut    *crdt.Prepared // value cut (nil once taken)
	raw    []byte         // the stored document doc was decoded from
	doc    *crdt.Doc      // nil for a key absent, or once taken
	origin string         // the origin doc was readied for (Store.Origin)
}

// dryTxn runs a write's function to learn which keys it puts: its reads see
// the newest durable revision (not the write's own changes) and its changes
// are only recorded. Owned by the caller's goroutine.
type dryTxn struct {
	TxnRead
	puts    map[string][]byte // key -> value put
	changed bool
}

func (d *dryTxn) Put(key, value []byte, _ int64) error {
	d.puts[string(key)] = value
	d.changed = true
	return nil
}

// DeleteRange only counts the keys it would delete (a large range is not read
// twice), and returns none of them.
func (d *dryTxn) DeleteRange(key, end []byte) ([]KeyValue, error) {
	res, err := d.Range(key, RangeOptions{End: end, CountOnly: true})
	d.changed = d.changed || res.Count > 0
	return nil, err
}

func (d *dryTxn) Changed() bool         { return d.changed }
func (d *dryTxn) Reserve(_ int64) error { return nil }

// prepare runs fn dry and readies the documents of the keys it puts, in the
// caller's goroutine; alone, it does nothing. A function that fails or panics
// when run dry is prepared for nothing: the committer's run decides what it
// does.
func (s *Store) prepare(fn func(TxnWrite) error) (prep map[string]*prepared) {
	if !s.cfg.Replicated {
		return nil
	}
	select {
	case <-s.closing:
		return nil
	default:
	}
	dry := &dryTxn{TxnRead: readView{s: s, rev: s.Rev(), dry: true}, puts: make(map[string][]byte)}
	defer func() {
		if recover() != nil {
			dropPrepared(prep)
			prep = nil
		}
	}()
	if fn(dry) != nil || len(dry.puts) == 0 {
		return nil
	}
	gen := s.crdGen.Load()
	var txn *badgerTxn
	defer func() {
		if txn != nil {
			s.prepViews.release(txn)
		}
	}()
	prep = make(map[string]*prepared, len(dry.puts))
	for key, value := range dry.puts {
		p := &prepared{crdGen: gen, value: value}
		prep[key] = p
		if !mayBeDocument(value) {
			p.cut = crdt.PrepareValue(value, s.crs.Object)
			continue // replaces the stored document whole: nothing to ready
		}
		if txn == nil {
			if txn = s.prepViews.acquire(); txn == nil {
				return prep // closed
			}
		}
		raw, err := getIn(txn, docKey([]byte(key)))
		if err != nil || raw == nil {
			// A create: no document to ready, and a value that is a
			// document is cut when its Doc first needs the fields.
			p.cut = crdt.PrepareNew(value, s.crs.Object)
			continue
		}
		doc, err := s.openDoc(raw)
		if err != nil {
			p.cut = crdt.PrepareValue(value, s.crs.Object)
			continue // the committer reports it
		}
		p.cut = doc.PrepareValue(value, s.crs.Object)
		if v, _ := doc.Value(); bytes.Equal(v, value) {
			continue // nothing to edit
		}
		if p.origin = s.Origin(); doc.Prepare(p.origin) != nil {
			doc.Unload()
			continue
		}
		p.raw, p.doc = raw, doc
	}
	return prep
}

// prepViews hands out a badger read view of the last commit that landed,
// shared, which the committer renews as each commit lands (renew), before it
// makes the commit's revision the one readers see: writers preparing
// documents, Range, and the committer's own reads (batchReads) read through
// it. A view a reader opened itself would wait for a commit in flight to be
// durable (badger's read timestamps wait for every commit begun before them),
// and the write it prepares would then miss the batch that follows that
// commit. A shared view may be a commit old: a document prepared from it that
// a later commit changed is not taken (prepared). Safe for concurrent use.
type prepViews struct {
	mu     sync.Mutex
	cur    *badgerTxn         // nil before the first commit and after close
	users  map[*badgerTxn]int // writers using a view; cur counts one more
	closed bool
}

// acquire returns a view for a writer to read through, then release; nil
// once the store is closed.
func (v *prepViews) acquire() *badgerTxn {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil {
		return nil
	}
	v.users[v.cur]++
	return v.cur
}

// release ends a writer's use of a view: the last user of a view renew
// replaced discards it.
func (v *prepViews) release(txn *badgerTxn) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.drop(txn)
}

func (v *prepViews) drop(txn *badgerTxn) {
	if v.users[txn]--; v.users[txn] == 0 {
		delete(v.users, txn)
		txn.Discard()
	}
}

// renew makes txn, a view opened after the newest commit, the current one.
// Called by the committer; after close it discards txn.
func (v *prepViews) renew(txn *badgerTxn) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		txn.Discard()
		return
	}
	if v.cur != nil {
		v.drop(v.cur)
	}
	if v.users == nil {
		v.users = make(map[*badgerTxn]int)
	}
	v.cur = txn
	v.users[txn]++
}

// close drops the current view; views in use are discarded by their last user.
func (v *prepViews) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if v.cur != nil {
		v.drop(v.cur)
		v.cur = nil
	}
}

// mayBeDocument reports whether a Put of value may edit the stored document
// field by field: only a JSON object, or kube-apiserver's protobuf form of one,
// is cut into fields (crdt.PrepareValue); any other value replaces the stored
// document whole, which the committer does without loading it. So the
// document of a key put such a value is not read ahead: that read costs a
// badger view, which waits for a commit in flight to be durable.
func mayBeDocument(value []byte) bool {
	return len(value) > 0 && value[0] == '{' || kube.IsProtobuf(value)
}

// prepared returns the document prepared for key if it is still the key's
// stored one, and nil otherwise; either way the preparation is used up. Only
// for a key this batch has not changed. Called by the committer.
func (tx *WriteTxn) prepared(key []byte) *crdt.Doc {
	p := tx.prep[string(key)]
	if p == nil || p.doc == nil {
		return nil
	}
	defer func() { p.doc = nil }()
	raw, err := tx.reads.get(docKey(key))
	if err != nil || !bytes.Equal(raw, p.raw) || p.crdGen != tx.s.crdGen.Load() || p.origin != tx.s.origin {
		tx.s.docs.drop(p.doc)
		return nil
	}
	tx.s.metrics.preparedDocs.Inc()
	return p.doc
}

// preparedValue returns value cut ahead, if the write puts the bytes that
// were cut and the schemas have not changed since; nil otherwise. Called by
// the committer.
func (tx *WriteTxn) preparedValue(key, value []byte) *crdt.Prepared {
	p := tx.prep[string(key)]
	if p == nil || p.cut == nil || p.crdGen != tx.s.crdGen.Load() || !bytes.Equal(p.value, value) {
		return nil
	}
	cut := p.cut
	p.cut = nil
	return cut
}

// dropPrepared lets go of prepared documents no committer took.
func dropPrepared(prep map[string]*prepared) {
	for _, p := range prep {
		if p.doc != nil {
			p.doc.Unload()
		}
	}
}

// getIn reads one badger value through txn; nil when absent.
func getIn(txn *badgerTxn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}
