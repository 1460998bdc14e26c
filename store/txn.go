package store

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// WriteTxn is one atomic write, run by the committer with the index locked. Its
// reads see the writes it has made so far. All its changes share one revision.
type WriteTxn struct {
	s       *Store
	rev     int64 // the revision this write commits as
	sub     int32
	events  []Event
	writes  []write
	cached  []*keyIndex
	dirty   map[string]*crdt.Doc // documents changed in this batch
	reads   *batchReads          // the batch's badger read view
	prep    map[string]*prepared // what the request's caller readied (prepare.go)
	mutated bool
	logged  bool // a change was added to the change log

	// recreate is set by merge, when asked to (splitReplace), to the create
	// that is to follow at the next revision because another incarnation
	// replaced the live one (see ApplyRemote).
	splitReplace bool
	recreate     *recreation
	// redo is set while a snapshot's install merges this site's own changes
	// again: tidy leaves documents as they are then (see tidy).
	redo bool
	// then are writes to follow this one in the same commit, each at a
	// revision of its own (a snapshot's install: this site's own changes
	// merged again, one revision each, as they first were).
	then []func(*WriteTxn) error
}

// recreation is a key's new incarnation, to be indexed as a create.
type recreation struct {
	ki    *keyIndex
	value []byte
	lease int64
}

// batchReads is what the writes of one batch read documents and revision
// records through: the writes of the flight under way (wrote), which are not
// yet in badger, and beneath them the shared view of the last commit that
// landed (prepViews), taken at the batch's first such read and let go before
// the batch is started (Store.apply). A view opened while a commit is under
// way would wait for it to be durable; this one does not, and one view reads
// what a view per read would, for the cost of none. Writes made outside the
// batches (compaction's deletions of revisions no longer indexed) are not
// read here. Owned by the committer.
type batchReads struct {
	s     *Store
	wrote map[string][]byte // the flight's writes by key (nil value: deleted)
	txn   *badger.Txn
	own   bool // txn was opened here, not taken from prepViews
}

func (b *batchReads) view() *badger.Txn {
	if b.txn == nil {
		if b.txn = b.s.prepViews.acquire(); b.txn == nil {
			// Closing: a view of its own, which waits for the flight.
			b.txn, b.own = b.s.db.NewTransaction(false), true
		}
	}
	return b.txn
}

// get reads one badger value, as it will be once the flight lands; nil when
// absent. The caller owns what it returns.
func (b *batchReads) get(key []byte) ([]byte, error) {
	if v, ok := b.wrote[string(key)]; ok {
		return bytes.Clone(v), nil
	}
	raw, err := getIn(b.view(), key)
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", key, err)
	}
	return raw, nil
}

// held returns the state an index entry names if it is in memory: in the
// entry, among the flight's writes or in the record cache.
func (b *batchReads) held(v *version) (KeyValue, bool) {
	if v.kv != nil {
		return *v.kv, true
	}
	k := revKey(v.rev.main, v.rev.sub)
	if raw, ok := b.wrote[string(k)]; ok {
		rec, err := decodeRecord(k, raw)
		return rec.kv, err == nil
	}
	return b.s.records.get(v.rev)
}

// kv returns the state an index entry names (see kvIn): an entry of the
// flight holds its state until the flight is shown, and its revision record
// is among the flight's writes.
func (b *batchReads) kv(v *version) (KeyValue, error) {
	if kv, ok := b.held(v); ok {
		return kv, nil
	}
	return b.s.kvIn(b.view(), v)
}

// close lets the view go; the next read takes a new one.
func (b *batchReads) close() {
	switch {
	case b.txn == nil:
	case b.own:
		b.txn.Discard()
	default:
		b.s.prepViews.release(b.txn)
	}
	b.txn, b.own = nil, false
}

// Rev returns the store's revision before this write.
func (tx *WriteTxn) Rev() int64 { return tx.rev - 1 }

// Changed reports whether the write has changed anything yet.
func (tx *WriteTxn) Changed() bool { return len(tx.events) > 0 }

// CompactRev returns the revision of the last compaction.
func (tx *WriteTxn) CompactRev() int64 { return tx.s.compactRev }

// Range reads like Store.Range, seeing this write's own changes.
func (tx *WriteTxn) Range(key []byte, opts RangeOptions) (RangeResult, error) {
	tx.s.metrics.ranges.Inc()
	cur := tx.rev - 1
	if tx.Changed() {
		cur = tx.rev
	}
	return tx.s.rangeAt(tx.reads, key, opts, cur)
}

// LeaseExists reports whether a lease is granted.
func (tx *WriteTxn) LeaseExists(id int64) bool { return tx.s.leases.exists(id) }

// Put writes a key and attaches it to a lease (0: none).
func (tx *WriteTxn) Put(key, value []byte, lease int64) error {
	tx.s.metrics.puts.Inc()
	if lease != 0 && !tx.s.leases.exists(lease) {
		return ErrLeaseNotFound
	}
	if tx.s.docless {
		return tx.putDocless(key, value, lease)
	}
	doc, err := tx.doc(key)
	if err != nil {
		return err
	}
	old, _ := doc.Value() // the key's value before the write (Doc.Put replaces it)
	change, changed, err := tx.putInto(doc, key, value)
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	tx.mutated = true
	switch ki := tx.s.idx.get(key); {
	case changed:
		tx.logChange(key, lease, change)
	case ki != nil && ki.lease != lease:
		// Same value, another lease: other sites must learn the attachment.
		tx.logBodiless(key, lease)
	}
	if err := tx.tidy(key, doc, lease); err != nil {
		return err
	}
	if tx.s.cfg.Replicated && doc.Kind() == crdt.Register && kube.IsProtobuf(value) {
		tx.s.metrics.opaqueKubeValue()
	}
	v, _ := doc.Value()
	if doc.Kind() != crdt.Register && kube.IsProtobuf(value) {
		// kube-apiserver's protobuf is served as it was written while the
		// document holds just that object (until a merge changes it, when its
		// JSON form is): the apiserver compares the object it would store with
		// the bytes it read, so an update that changes nothing is no write, as
		// on etcd. The record before may hold either form: prev_kv reads it.
		v, old = value, nil
	}
	return tx.indexPutFrom(tx.s.idx.getOrCreate(key), v, lease, old)
}

// putInto writes value into key's document: as fields other sites' edits
// merge with where there are other sites (Config.Replicated), else whole, as
// a register: a site alone has nothing to merge, so it neither cuts values
// into fields nor keeps their history (a replicated store promotes such a
// register to a document when it first edits it: crdt.Doc.PutRegister).
func (tx *WriteTxn) putInto(doc *crdt.Doc, key, value []byte) (crdt.Change, bool, error) {
	if !tx.s.cfg.Replicated {
		return doc.PutRegister(value, tx.stamp())
	}
	if cut := tx.preparedValue(key, value); cut != nil {
		return doc.PutPrepared(cut, tx.stamp())
	}
	return doc.Put(value, tx.stamp())
}

// indexPut records a key's new value as a version at this write's revision.
func (tx *WriteTxn) indexPut(ki *keyIndex, value []byte, lease int64) error {
	return tx.indexPutFrom(ki, value, lease, nil)
}

// indexPutFrom is indexPut told the value the key's document held before the
// write (nil: not known), which its live version recorded.
func (tx *WriteTxn) indexPutFrom(ki *keyIndex, value []byte, lease int64, old []byte) error {
	kv := KeyValue{Key: ki.key, Value: value, CreateRevision: tx.rev, ModRevision: tx.rev, Version: 1, Lease: lease}
	if v, ok := ki.live(); ok {
		kv.CreateRevision, kv.Version = v.created, v.ver+1
	}
	var prev *KeyValue
	var prevRev revision
	if kv.CreateRevision != tx.rev { // like etcd, a create event has no prev_kv
		var err error
		if prev, prevRev, err = tx.beforeFrom(ki, old); err != nil {
			return err
		}
	}
	if ki.lease != lease {
		tx.s.leases.detach(ki.lease, ki.key)
		tx.s.leases.attach(lease, ki.key)
		ki.lease = lease
	}
	tx.appendVersion(ki, EventPut, kv, prev, prevRev)
	return nil
}

// DeleteRange deletes the live keys in a range (etcd's key/end convention) and
// returns their states before the delete.
func (tx *WriteTxn) DeleteRange(key, end []byte) ([]KeyValue, error) {
	tx.s.metrics.deletes.Inc()
	var targets []*keyIndex
	tx.s.idx.ascend(key, end, func(ki *keyIndex) bool {
		if _, ok := ki.live(); ok {
			targets = append(targets, ki)
		}
		return true
	})
	var deleted []KeyValue
	for _, ki := range targets {
		prev, err := tx.deleteKey(ki)
		if err != nil {
			return nil, err
		}
		deleted = append(deleted, prev)
	}
	return deleted, nil
}

func (tx *WriteTxn) deleteKey(ki *keyIndex) (KeyValue, error) {
	if tx.s.docless {
		return tx.deleteDocless(ki)
	}
	doc, err := tx.doc(ki.key)
	if err != nil {
		return KeyValue{}, err
	}
	change, changed, err := doc.Delete()
	if err != nil {
		return KeyValue{}, fmt.Errorf("store: delete %q: %w", ki.key, err)
	}
	tx.mutated = true
	if changed {
		tx.logChange(ki.key, 0, change)
	}
	return tx.indexDelete(ki)
}

// indexDelete records a tombstone for a live key at this write's revision and
// returns the key's state before it.
func (tx *WriteTxn) indexDelete(ki *keyIndex) (KeyValue, error) {
	v, _ := ki.live()
	prev, err := tx.reads.kv(v)
	if err != nil {
		return KeyValue{}, err
	}
	tx.s.leases.detach(ki.lease, ki.key)
	ki.lease = 0
	before, beforeRev, err := tx.before(ki)
	if err != nil {
		return KeyValue{}, err
	}
	tx.appendVersion(ki, EventDelete, KeyValue{Key: ki.key, ModRevision: tx.rev}, before, beforeRev)
	return prev, nil
}

// before returns a key's state before this write: what a watcher gets as prev_kv,
// as etcd reads it at the previous revision (a key a revision changes twice —
// a Txn's put then delete, or a snapshot's install then this site's own change
// merged again on top — has the same prev_kv in both events, as in etcd).
func (tx *WriteTxn) before(ki *keyIndex) (*KeyValue, revision, error) {
	return tx.beforeFrom(ki, nil)
}

// beforeFrom is before told the value the key's document held before this
// write (nil: not known). When the key's live version is the one before this
// revision, that value is its value, and the state is made from the index
// rather than read back from its revision record. A state not in memory is
// not read here, in the committer: the state is nil and its revision is
// returned all the same, for the event to name (Store.PrevKV).
func (tx *WriteTxn) beforeFrom(ki *keyIndex, old []byte) (*KeyValue, revision, error) {
	v, ok := ki.at(tx.rev - 1)
	if !ok || v.tomb {
		return nil, revision{}, nil
	}
	if live, _ := ki.live(); old != nil && v.kv == nil && live == v {
		kv := KeyValue{Key: ki.key, Value: old, CreateRevision: v.created, ModRevision: v.rev.main, Version: v.ver, Lease: ki.lease}
		return &kv, v.rev, nil
	}
	if kv, ok := tx.reads.held(v); ok {
		return &kv, v.rev, nil
	}
	return nil, v.rev, nil
}

func (tx *WriteTxn) appendVersion(ki *keyIndex, typ EventType, kv KeyValue, prev *KeyValue, prevRev revision) {
	r := revision{tx.rev, tx.sub}
	tx.sub++
	ver := newVersion(r, typ, kv)
	if !ver.tomb {
		ver.kv = &kv // until durable (Store.commit)
	}
	ki.versions = append(ki.versions, ver)
	tx.cached = append(tx.cached, ki)
	rec := record{typ: typ, kv: kv, prevRev: prevRev}
	tx.writes = append(tx.writes, write{key: revKey(r.main, r.sub), value: rec.encode()})
	ev := Event{Type: typ, KV: kv, PrevKV: prev}
	if prev == nil {
		ev.prev = prevRev
	}
	tx.events = append(tx.events, ev)
}

// doc returns the key's document, loading it on first use in this batch.
func (tx *WriteTxn) doc(key []byte) (*crdt.Doc, error) {
	k := string(key)
	if d, ok := tx.dirty[k]; ok {
		return d, nil
	}
	d := tx.prepared(key)
	if d == nil {
		var err error
		if d, err = tx.peekDoc(key); err != nil {
			return nil, err
		}
	}
	tx.dirty[k] = d
	tx.s.docs.pin(k, d)
	return d, nil
}

// peekDoc returns the key's document for reading only: this batch's, else the
// cached or stored one, which the batch does not write back.
func (tx *WriteTxn) peekDoc(key []byte) (*crdt.Doc, error) {
	if d, ok := tx.dirty[string(key)]; ok {
		return d, nil
	}
	if d, ok := tx.s.docs.get(string(key)); ok {
		return d, nil
	}
	raw, err := tx.reads.get(docKey(key))
	if err != nil {
		return nil, err
	}
	d, err := tx.s.openDoc(raw)
	if err != nil {
		return nil, fmt.Errorf("store: document %q: %w", key, err)
	}
	return d, nil
}

// openDoc returns the document encoded in raw (newDoc when raw is nil),
// checked by the configured Validator, its fields following the schemas of the
// built-in kinds and of the stored CRDs (crd.go). Every document the store applies changes
// to is made here, so all of them merge by the same rules.
func (s *Store) openDoc(raw []byte) (*crdt.Doc, error) {
	if raw == nil {
		return s.newDoc(), nil
	}
	d, err := crdt.DecodeDoc(raw, s.crs.Object)
	if err != nil {
		return nil, err
	}
	d.SetValidator(s.cfg.Validator)
	return d, nil
}

// newDoc returns an empty document checked by the configured Validator.
func (s *Store) newDoc() *crdt.Doc {
	d := &crdt.Doc{}
	d.SetValidator(s.cfg.Validator)
	d.SetSchemas(s.crs.Object)
	return d
}

// stamp advances the Lamport clock for a change made here.
func (tx *WriteTxn) stamp() crdt.Stamp {
	tx.s.clock++
	return crdt.Stamp{Counter: tx.s.clock, Site: tx.s.origin}
}

// logChange records a change originated here for shipping to other sites, with the
// lease its key is attached to.
func (tx *WriteTxn) logChange(key []byte, lease int64, c crdt.Change) {
	site := tx.s.origin
	var change []byte
	if tx.s.cfg.Replicated { // alone, nothing is logged (recordWithLease)
		change = c.Encode()
	}
	tx.recordWithLease(site, tx.s.vv[site]+1, key, lease, change)
}

// logBodiless records a change originated here that carries no document
// change: a lease attached to a key whose value stayed, or a write of a store
// without documents (alone.go), which only counts in the version vector.
func (tx *WriteTxn) logBodiless(key []byte, lease int64) {
	site := tx.s.origin
	tx.recordWithLease(site, tx.s.vv[site]+1, key, lease, nil)
}

// record adds a change to the change log and the version vector.
func (tx *WriteTxn) record(origin string, seq uint64, key, change []byte) {
	tx.recordWithLease(origin, seq, key, 0, change)
}

func (tx *WriteTxn) recordWithLease(origin string, seq uint64, key []byte, lease int64, change []byte) {
	tx.s.vv[origin] = seq
	tx.logged = true
	if !tx.s.cfg.Replicated {
		// Alone, no site will ask for it: it counts as collected at once (a
		// site that joins later gets a snapshot); commit persists the mark.
		tx.s.collected[origin] = seq
		return
	}
	tx.writes = append(tx.writes, write{key: changeKey(origin, seq), value: appendChangeEntry(nil, key, lease, change)})
}

// getRaw reads one badger value; nil when absent.
func (s *Store) getRaw(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badgerTxn) error {
		var err error
		out, err = getIn(txn, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", key, err)
	}
	return out, nil
}
