package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/rhizome-kv/rhizome/crdt"
)

// Snapshot is a site's replicated state at one point: every key's document (deleted
// ones too, which still rule out older incarnations), the leases, and the version
// vector the state holds. A site that lacks changes the others have collected from
// their logs installs a snapshot instead of replaying them.
type Snapshot struct {
	VV     map[string]uint64
	Docs   []SnapshotDoc
	Leases [][]byte // lease records, as the change log carries grants
}

// SnapshotDoc is one key's document and the lease the key is attached to.
type SnapshotDoc struct {
	Key   []byte
	Lease int64
	Doc   []byte
}

// Snapshot captures the store's replicated state from one badger read view, in
// which documents, leases and version vector agree (a commit writes them
// together), without holding up writers. Lease attachments come from the index.
func (s *Store) Snapshot(ctx context.Context) (Snapshot, error) {
	if s.docless {
		return Snapshot{}, ErrDocless
	}
	snap := Snapshot{VV: map[string]uint64{}}
	each := func(txn *badger.Txn, prefix byte, fn func(key, value []byte) error) error {
		return eachUnder(txn, prefix, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(k[1:], v)
		})
	}
	err := s.view(func(txn *badger.Txn) error {
		err := each(txn, prefixVV, func(origin, v []byte) error {
			seq, err := bytesInt64(v)
			snap.VV[string(origin)] = uint64(seq)
			return err
		})
		if err != nil {
			return err
		}
		err = each(txn, prefixDoc, func(key, v []byte) error {
			snap.Docs = append(snap.Docs, SnapshotDoc{Key: key, Doc: v})
			return nil
		})
		if err != nil {
			return err
		}
		return each(txn, prefixLease, func(_, v []byte) error {
			snap.Leases = append(snap.Leases, v)
			return nil
		})
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: snapshot: %w", err)
	}
	s.mu.RLock()
	for i, d := range snap.Docs {
		if ki := s.idx.get(d.Key); ki != nil {
			if _, live := ki.live(); live {
				snap.Docs[i].Lease = ki.lease
			}
		}
	}
	s.mu.RUnlock()
	return snap, nil
}

// InstallSnapshot replaces this site's replicated state with a snapshot taken at
// another site, in one revision whose events show every key that changed. Changes
// of other origins beyond the snapshot come again from the peers; this site's own
// changes the snapshot lacks are merged again on top, in the same commit, each
// at a revision of its own, as every other site merges them when they arrive
// (edits of histories rebased without counting this site are dropped alike
// everywhere, see crdt's rebase). So no revision changes a key twice, as in
// etcd: a key the install takes and own changes redo shows as ordinary events.
func (s *Store) InstallSnapshot(ctx context.Context, snap Snapshot) error {
	return s.InstallSnapshotWith(ctx, snap, InstallOptions{})
}

// InstallOptions say what installing a snapshot may give up of what this site
// holds beyond it (sync/peer's doc, Forgetting).
type InstallOptions struct {
	// GiveUp lists origins whose changes this site may hold beyond the
	// snapshot and give up: ones replaced by a newer incarnation, which no
	// site sends any more.
	GiveUp []string
	// Anew gives up everything this site holds beyond the snapshot, this
	// incarnation's own changes too, instead of merging them again, and goes on
	// as a new incarnation (Origin changes; see incarnation.go), as if its data
	// directory had been lost and restored from the snapshot. It is how a
	// forgotten incarnation rejoins when no snapshot will ever do otherwise: a
	// new incarnation's numbers cannot be mistaken for the ones given up.
	Anew bool
	// Held, with Anew, is the version vector the caller judged the install
	// by: it goes on anew only if the store still holds exactly that (a
	// change merged, or another snapshot installed, since may make the
	// judgement wrong), else the install is refused with ErrSnapshotOlder.
	Held map[string]uint64
}

// installing is a snapshot readied for its install: every document opened and
// every lease decoded before anything changes.
type installing struct {
	snap    Snapshot
	opts    InstallOptions
	docs    map[string]*crdt.Doc
	raw     map[string][]byte
	leaseOf map[string]int64
	grants  []*lease
	// Set by the install's revision: this site's own changes the snapshot
	// lacks, merged again after it.
	redo []Change
}

// InstallSnapshotWith installs a snapshot as InstallSnapshot does, but may give
// up what opts say.
func (s *Store) InstallSnapshotWith(ctx context.Context, snap Snapshot, opts InstallOptions) error {
	if s.docless {
		return ErrDocless
	}
	in, err := s.readyInstall(snap, opts)
	if err != nil {
		return err
	}
	r := &request{fns: []func(*WriteTxn) error{in.install}, alone: true, done: make(chan struct{})}
	if _, err := s.submit(ctx, r); err != nil {
		return err
	}
	s.log.Info("installed a snapshot", "keys", len(in.docs), "leases", len(in.grants), "vv", snap.VV, "redone", len(in.redo), "anew", opts.Anew, "origin", s.Origin())
	return nil
}

// readyInstall opens the snapshot's documents and decodes its leases.
func (s *Store) readyInstall(snap Snapshot, opts InstallOptions) (*installing, error) {
	in := &installing{snap: snap, opts: opts, docs: make(map[string]*crdt.Doc, len(snap.Docs)),
		raw: make(map[string][]byte, len(snap.Docs)), leaseOf: make(map[string]int64, len(snap.Docs))}
	for _, sd := range snap.Docs {
		in.raw[string(sd.Key)] = sd.Doc
		d, err := s.openDoc(sd.Doc)
		if err != nil {
			return nil, fmt.Errorf("store: snapshot document %q: %w", sd.Key, err)
		}
		in.docs[string(sd.Key)], in.leaseOf[string(sd.Key)] = d, sd.Lease
	}
	for _, rec := range snap.Leases {
		op, l, err := decodeLeaseRecord(rec)
		if err != nil || op != leaseGrant {
			return nil, fmt.Errorf("store: snapshot lease: %w", errCorrupt)
		}
		in.grants = append(in.grants, l)
	}
	return in, nil
}

// install is the install's revision: every check first, then the snapshot's
// documents, leases and version vector; this site's own changes the snapshot
// lacks follow (redo).
func (in *installing) install(tx *WriteTxn) error {
	if err := tx.s.snapshotNotOlder(in.snap.VV, in.opts); err != nil {
		return err
	}
	if in.opts.Anew {
		if err := tx.reincarnate(in.snap.VV); err != nil {
			return err
		}
	}
	redo, err := tx.ownChanges(in.snap.VV[tx.s.origin])
	if err != nil {
		return err
	}
	if err := tx.s.canRedo(redo, in.raw); err != nil {
		return err
	}
	in.redo = redo
	tx.mutated = true
	if err := tx.replaceLeases(in.grants); err != nil {
		return err
	}
	if err := tx.dropGone(in.docs); err != nil {
		return err
	}
	if err := tx.s.failpoint(FailpointSnapshotInstall); err != nil {
		return err
	}
	for key, d := range in.docs {
		tx.s.clock = max(tx.s.clock, d.Clock())
		if err := tx.takeDoc([]byte(key), d, in.leaseOf[key]); err != nil {
			return err
		}
	}
	tx.takeVersionVector(in.snap.VV)
	for _, c := range redo {
		tx.then = append(tx.then, redo1(c))
	}
	return nil
}

// redo1 merges one of this site's own changes again after a snapshot's
// install, untidied (see tidy), at a revision of its own.
func redo1(c Change) func(*WriteTxn) error {
	return func(tx *WriteTxn) error {
		tx.s.vv[c.Origin], tx.redo = c.Seq, true
		_, err := tx.merge(c, false)
		return err
	}
}

// dropGone empties the documents of keys this site has and the snapshot does
// not.
func (tx *WriteTxn) dropGone(docs map[string]*crdt.Doc) error {
	var gone [][]byte
	err := tx.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDoc}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if key := it.Item().Key()[1:]; docs[string(key)] == nil {
				gone = append(gone, bytes.Clone(key))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: install snapshot: %w", err)
	}
	for key := range tx.dirty {
		if docs[key] == nil {
			gone = append(gone, []byte(key))
		}
	}
	for _, key := range gone {
		if err := tx.takeDoc(key, tx.s.newDoc(), 0); err != nil {
			return err
		}
		tx.writes = append(tx.writes, write{key: docKey(key), delete: true})
	}
	return nil
}

// takeVersionVector makes vv the version vector: what this site held beyond
// it of other origins is no longer in its documents, so it must come again.
// Its own sequence is vv's until its own changes are merged again (redo1).
func (tx *WriteTxn) takeVersionVector(vv map[string]uint64) {
	self := tx.s.origin
	for o := range tx.s.vv {
		tx.s.vv[o] = 0
		tx.s.durable[o] = min(tx.s.durable[o], vv[o]) // no later than the commit
		if vv[o] == 0 && o != self {
			// Held no more: like an origin never heard of.
			delete(tx.s.vv, o)
			delete(tx.s.durable, o)
			tx.writes = append(tx.writes, write{key: vvKey(o), delete: true})
		}
	}
	for o, seq := range vv {
		tx.s.vv[o] = seq
		if o != self && seq > tx.s.collected[o] {
			tx.s.collected[o] = seq
			tx.writes = append(tx.writes, write{key: collectedKey(o), value: int64Bytes(int64(seq))})
		}
	}
}

// reincarnate makes this store a new incarnation, in the commit that installs
// a snapshot whose vector is vv: the old incarnation's changes beyond vv are
// given up (their log entries deleted), and it becomes an origin like any
// other, replaced by the new one.
func (tx *WriteTxn) reincarnate(vv map[string]uint64) error {
	old := tx.s.origin
	fresh, err := tx.s.newIncarnationAfter(old)
	if err != nil {
		return err
	}
	for seq := max(vv[old], tx.s.collected[old]) + 1; seq <= tx.s.vv[old]; seq++ {
		tx.writes = append(tx.writes, write{key: changeKey(old, seq), delete: true})
	}
	tx.s.vv[old] = vv[old]
	tx.s.origin = tx.s.cfg.Site + originSep + fresh
	tx.writes = append(tx.writes, write{key: metaIncarnation, value: []byte(fresh)})
	tx.s.log.Warn("giving up this incarnation's changes no other site holds, to go on as a new one", "old", old, "new", tx.s.origin)
	return nil
}

// ErrSnapshotBehind is returned by InstallSnapshot for a snapshot that lacks
// changes this site's own changes build on: merged on it, they would be lost here
// yet stand at the sites that have those changes. A later snapshot will do.
var ErrSnapshotBehind = errors.New("store: snapshot lacks what this site's own changes build on")

// ErrSnapshotOlder is returned by InstallSnapshot for a snapshot that lacks
// changes of another origin this site holds, or is older than what every site
// holds of this one. Installed, it would take those changes away while the peers
// that sent them, and count them as held here, would not send them again. A
// later snapshot will do.
var ErrSnapshotOlder = errors.New("store: snapshot older than what this site holds")

// snapshotNotOlder checks, with the committer's state, that a snapshot at vv
// holds everything this site holds of other origins but those opts give up,
// and of its own what every site holds (unless installed anew). It is checked
// inside the install's transaction: a check before it would race with changes
// merged meanwhile from another peer.
func (s *Store) snapshotNotOlder(vv map[string]uint64, opts InstallOptions) error {
	if opts.Anew && opts.Held != nil && !maps.Equal(s.vv, opts.Held) {
		return fmt.Errorf("%w: this site's holdings changed since the install was judged", ErrSnapshotOlder)
	}
	if opts.Anew {
		return nil
	}
	for o, seq := range s.vv {
		if o != s.origin && seq > vv[o] && !slices.Contains(opts.GiveUp, o) {
			return fmt.Errorf("%w: holds %s up to %d, the snapshot up to %d", ErrSnapshotOlder, o, seq, vv[o])
		}
	}
	if held := s.collected[s.origin]; held > vv[s.origin] {
		return fmt.Errorf("%w: every site holds this site's changes up to %d, the snapshot up to %d", ErrSnapshotOlder, held, vv[s.origin])
	}
	return nil
}

// canRedo tries this site's own changes on copies of the snapshot's documents.
func (s *Store) canRedo(redo []Change, raw map[string][]byte) error {
	trial := map[string]*crdt.Doc{}
	for _, c := range redo {
		if len(c.Key) == 0 || len(c.Body) == 0 {
			continue
		}
		d := trial[string(c.Key)]
		if d == nil {
			var err error
			if d, err = s.openDoc(raw[string(c.Key)]); err != nil {
				return err
			}
			trial[string(c.Key)] = d
		}
		change, err := crdt.DecodeChange(c.Body)
		if err != nil {
			return err
		}
		if _, err := d.Apply(change); errors.Is(err, crdt.ErrMissingDependency) {
			return ErrSnapshotBehind
		} else if err != nil {
			return err
		}
	}
	return nil
}

// ownChanges reads this site's own logged changes after seq. They are all still
// in the log: the sync layer keeps a site's own changes until every site it has
// heard from holds them.
func (tx *WriteTxn) ownChanges(after uint64) ([]Change, error) {
	self := tx.s.origin
	var out []Change
	for seq := after + 1; seq <= tx.s.vv[self]; seq++ {
		raw, err := tx.reads.get(changeKey(self, seq))
		if err != nil {
			return nil, err
		}
		if raw == nil {
			return nil, fmt.Errorf("store: install snapshot: own change %d was collected: %w", seq, ErrCollected)
		}
		key, lease, body, err := parseChangeEntry(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, Change{Origin: self, Seq: seq, Key: key, Lease: lease, Body: body})
	}
	return out, nil
}

// takeDoc makes d the key's document and brings the index to its value.
func (tx *WriteTxn) takeDoc(key []byte, d *crdt.Doc, lease int64) error {
	k := string(key)
	tx.dirty[k] = d
	tx.s.docs.pin(k, d)
	ki := tx.s.idx.getOrCreate(key)
	value, exists := d.Value()
	if !exists {
		if _, live := ki.live(); live {
			_, err := tx.indexDelete(ki)
			return err
		}
		return nil
	}
	if !tx.s.leases.exists(lease) {
		lease = 0
	}
	if v, live := ki.live(); live && ki.lease == lease {
		cur, err := tx.reads.kv(v)
		if err != nil {
			return err
		}
		if bytes.Equal(cur.Value, value) {
			return nil
		}
	}
	return tx.indexPut(ki, value, lease)
}

// replaceLeases makes the granted leases exactly grants, keeping the expiry of
// those already known. Keys attach again as their documents are taken.
func (tx *WriteTxn) replaceLeases(grants []*lease) error {
	ls := tx.s.leases
	ls.mu.Lock()
	defer ls.mu.Unlock()
	keep := map[int64]bool{}
	now := tx.s.cfg.Now()
	for _, g := range grants {
		keep[g.id] = true
		if old := ls.byID[g.id]; old != nil {
			continue
		}
		g.expiry = now.Add(time.Duration(g.ttl) * time.Second)
		ls.byID[g.id] = g
		tx.writes = append(tx.writes, write{key: leaseKey(g.id), value: encodeLeaseRecord(leaseGrant, g)})
	}
	for id := range ls.byID {
		if !keep[id] {
			delete(ls.byID, id)
			tx.writes = append(tx.writes, write{key: leaseKey(id), delete: true})
		}
	}
	return nil
}
