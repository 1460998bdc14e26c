package store

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Store is one site's MVCC store. Reads may run concurrently with each other and
// with writes; writes are serialised through one committer goroutine.
type Store struct {
	cfg     Config
	origin  string // Site and the data directory's incarnation (incarnation.go)
	log     *slog.Logger
	db      *badger.DB
	metrics *metrics

	// mu guards the index and compactRev. The committer holds it while applying a
	// request; readers hold it shared while reading.
	mu         sync.RWMutex
	idx        *index
	compactRev int64

	committed atomic.Int64 // newest durable revision: what readers see

	// docless: the store keeps no documents (alone.go); set at Open.
	docless bool

	// Committer-owned state.
	rev   int64  // newest applied revision (>= committed)
	clock uint64 // Lamport clock for crdt stamps
	// conflictSeq numbers the last conflict record written (conflict.go); owned
	// by the committer.
	conflictSeq uint64
	docs        *docCache    // decoded key documents
	records     *recordCache // states of recent revisions (recordcache.go)
	fail        error        // set when a commit failed: the store refuses further writes
	reqs        chan *request
	crs         *kube.CustomResources // merge units of custom resources (crd.go)
	crdGen      atomic.Uint64         // counts changes of crs, for prepared documents (prepare.go)
	prepViews   prepViews             // read views for preparing documents (prepare.go)

	leases *leases

	// Size accounting (quota.go): the last measurement, and bytes committed since.
	measured, unmeasured atomic.Int64
	noSpace              atomic.Bool // the NOSPACE alarm is raised

	// vv is the version vector: per origin site, the highest sequence number up to
	// which every change is held. Written by the committer under mu.
	vv      map[string]uint64
	changes broadcast // fires when changes are logged, for the sync layer

	// durable is the version vector as last made durable: readers of the change
	// log stop there, so nothing is handed to sync that a crash could take back.
	// Written by the committer under mu.
	durable map[string]uint64
	// staging is held while a commit too large for one transaction moves its
	// documents into place; whole-store read views wait for it (commit.go).
	staging sync.RWMutex

	// collected is, per origin, how far the change log has been collected.
	// Written by the committer under mu.
	collected map[string]uint64
	horizon   atomic.Pointer[Horizon]
	// forgettings are the forgetting decisions held, in order (forget.go).
	// Written by the committer under mu.
	forgettings []Forgetting

	publisher  atomic.Pointer[Publisher]
	ownerAlive atomic.Pointer[func(site string) bool]
	closing    chan struct{}
	stopped    chan struct{} // closed when the committer has exited
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// request is one caller's write: usually one fn; a batch of merged remote changes
// has one fn per change, each committed as its own revision.
type request struct {
	fns  []func(*WriteTxn) error
	prep map[string]*prepared // readied by the caller (prepare.go)
	// alone makes the request a batch of its own: it reads what is durable
	// (a snapshot's install reads this site's own logged changes from badger,
	// where those of earlier requests in its batch are not yet).
	alone bool
	rev   int64
	err   error
	done  chan struct{}
}

// Open opens (or creates) the store described by cfg and starts its committer and
// lease expiry.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := badgerOptions(cfg)
	if err := checkTables(opts); err != nil {
		return nil, err
	}
	records, err := newRecordCache(cfg.RecordCacheBytes)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(opts)
	if err != nil {
		records.close()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Dir, err)
	}
	s := &Store{
		cfg:       cfg,
		log:       cfg.Logger,
		db:        db,
		metrics:   newMetrics(cfg.Registerer),
		idx:       newIndex(),
		docs:      newDocCache(cfg.DocCacheBytes),
		records:   records,
		reqs:      make(chan *request, cfg.MaxBatch),
		leases:    newLeases(),
		vv:        make(map[string]uint64),
		durable:   make(map[string]uint64),
		collected: make(map[string]uint64),
		changes:   newBroadcast(),
		closing:   make(chan struct{}),
		stopped:   make(chan struct{}),
		crs:       cfg.CustomResources,
	}
	if s.crs == nil {
		s.crs = kube.NewCustomResources()
	}
	if err := s.claimSite(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recoverStaged(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.settleDocuments(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadCRDs(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadConflicts(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: load conflicts: %w", err)
	}
	if err := s.loadNoSpace(); err != nil {
		db.Close()
		return nil, err
	}
	s.measureSize()
	// Recovery read every revision record: those pages leave the resident
	// memory before the store serves, not when the reclaimer first runs,
	// which raced with the first requests (tablepages.go).
	s.releaseTablePages(s.tablePagesDir())
	s.registerGauges(cfg.Registerer)
	s.prepViews.renew(s.newView())
	s.wg.Add(4)
	go s.runCommitter()
	go s.runReclaimer()
	go s.runLeaseExpiry()
	go s.runSizer()
	if cfg.Replicated {
		s.wg.Add(1)
		go s.runCollector()
	}
	return s, nil
}

// Close stops the store. Requests in flight finish first.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		s.wg.Wait()
		s.prepViews.close()
		s.records.close()
		err = s.db.Close()
	})
	return err
}

// SetPublisher installs the receiver of committed events. Call it before the store
// takes traffic.
func (s *Store) SetPublisher(p Publisher) { s.publisher.Store(&p) }

// Site returns the name of this site.
func (s *Store) Site() string { return s.cfg.Site }

// Rev returns the newest durable revision.
func (s *Store) Rev() int64 { return s.committed.Load() }

// CompactRev returns the revision of the last compaction (-1 if none).
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// recover rebuilds the in-memory state from badger.
func (s *Store) recover() error {
	return s.db.View(func(txn *badger.Txn) error {
		if err := s.readMeta(txn); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRev}, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if main, _ := parseRevKey(item.Key()); main > s.rev {
				// Written by a commit that crashed before its final transaction:
				// never acknowledged, so never shown.
				break
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("store: recover: %w", err)
			}
			rec, err := decodeRecord(item.Key(), v)
			if err != nil {
				return err
			}
			main, sub := parseRevKey(item.Key())
			ki := s.idx.getOrCreate(rec.kv.Key)
			ki.versions = append(ki.versions, newVersion(revision{main, sub}, rec.typ, rec.kv))
			ki.lease = rec.kv.Lease
		}
		// A compaction interrupted before its deletions finished left records
		// that the index must not show.
		s.pruneIndex(max(s.compactRev, 0))
		s.idx.tree.Ascend(func(ki *keyIndex) bool {
			if _, ok := ki.live(); ok && ki.lease != 0 {
				s.leases.attach(ki.lease, ki.key)
			}
			return true
		})
		s.committed.Store(s.rev)
		maps.Copy(s.durable, s.vv)
		return nil
	})
}

func (s *Store) readMeta(txn *badger.Txn) error {
	var err error
	// Like etcd, a fresh store is at revision 1 (the first write is 2) and has
	// never been compacted (-1: a compaction at revision 0 is accepted).
	if s.rev, err = metaIn(txn, metaRev, 1); err != nil {
		return err
	}
	if s.compactRev, err = metaIn(txn, metaCompact, -1); err != nil {
		return err
	}
	clock, err := metaIn(txn, metaClock, 0)
	if err != nil {
		return err
	}
	s.clock = uint64(clock)
	err = eachUnder(txn, prefixVV, func(k, v []byte) error {
		seq, err := bytesInt64(v)
		if err != nil {
			return fmt.Errorf("store: version vector: %w", err)
		}
		s.vv[string(k[1:])] = uint64(seq)
		return nil
	})
	if err != nil {
		return err
	}
	err = eachUnder(txn, prefixCollected, func(k, v []byte) error {
		origin, seq, err := parseCollected(k, v)
		if err != nil {
			return fmt.Errorf("store: collected log: %w", err)
		}
		s.collected[origin] = seq
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.loadForgettings(txn); err != nil {
		return err
	}
	return s.leases.load(txn, s.cfg.Now())
}

// metaIn reads an integer meta value, def if it was never written.
func metaIn(txn *badger.Txn, k []byte, def int64) (int64, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read meta: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	return bytesInt64(v)
}

// Range reads keys at a revision (0: the newest durable one). The index is read
// under mu and the values afterwards, from the view of the last commit that
// landed (prepViews), taken before mu is released: a compaction that follows
// cannot take away what the range selected, a long range holds the committer up
// only while it walks the index, and no range waits for a commit under way
// (a view opened then would wait until it is durable).
func (s *Store) Range(key []byte, opts RangeOptions) (RangeResult, error) {
	s.metrics.ranges.Inc()
	return s.rangeCommitted(key, opts)
}

// rangeCommitted is Range, not counted in the metrics.
func (s *Store) rangeCommitted(key []byte, opts RangeOptions) (RangeResult, error) {
	s.mu.RLock()
	res, vers, err := s.selectRange(key, opts, s.committed.Load())
	if err != nil || len(vers) == 0 {
		s.mu.RUnlock()
		return res, err
	}
	txn := s.prepViews.acquire() // a view with every revision up to committed
	s.mu.RUnlock()
	if txn == nil {
		return RangeResult{}, ErrClosed
	}
	defer s.prepViews.release(txn)
	res.KVs, err = readVersions(vers, func(v *version) (KeyValue, error) { return s.kvIn(txn, v) })
	return res, err
}

// rangeAt reads with mu held, seeing revisions up to cur, through the
// committer's reads.
func (s *Store) rangeAt(reads *batchReads, key []byte, opts RangeOptions, cur int64) (RangeResult, error) {
	res, vers, err := s.selectRange(key, opts, cur)
	if err != nil || len(vers) == 0 {
		return res, err
	}
	res.KVs, err = readVersions(vers, reads.kv)
	return res, err
}

// selectRange finds, with mu held, the index entries a range at cur returns:
// the result without its KVs, and the entries whose states make them (with
// opts.KeysOnly, the result with its KVs and no entries).
func (s *Store) selectRange(key []byte, opts RangeOptions, cur int64) (RangeResult, []version, error) {
	// The order of these checks is etcd's: a revision <= 0 means the newest.
	rev := opts.Rev
	if rev > cur {
		return RangeResult{}, nil, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	if rev < s.compactRev {
		return RangeResult{}, nil, ErrCompacted
	}
	res := RangeResult{Rev: cur}
	var vers []version
	s.idx.ascend(key, opts.End, func(ki *keyIndex) bool {
		v, ok := ki.at(rev)
		if !ok || v.tomb {
			return true
		}
		res.Count++
		switch {
		case opts.CountOnly || (opts.Limit > 0 && int64(res.Count) > opts.Limit):
		case opts.KeysOnly:
			res.KVs = append(res.KVs, v.keyOnly(ki.key))
		default:
			vers = append(vers, *v)
		}
		return true
	})
	return res, vers, nil
}

// readVersions reads the states of index entries, each through kv.
func readVersions(vers []version, kv func(*version) (KeyValue, error)) ([]KeyValue, error) {
	kvs := make([]KeyValue, len(vers))
	for i := range vers {
		var err error
		if kvs[i], err = kv(&vers[i]); err != nil {
			return nil, err
		}
	}
	return kvs, nil
}

// kvIn returns the state an index entry names: its own while it is not yet
// durable, else its revision record's, from the record cache or read through
// txn.
func (s *Store) kvIn(txn *badger.Txn, v *version) (KeyValue, error) {
	if v.kv != nil {
		return *v.kv, nil
	}
	if kv, ok := s.records.get(v.rev); ok {
		return kv, nil
	}
	rec, err := readRecordIn(txn, v.rev)
	if err != nil {
		return KeyValue{}, fmt.Errorf("store: read revision %d.%d: %w", v.rev.main, v.rev.sub, err)
	}
	s.records.put(v.rev, rec.kv)
	return rec.kv, nil
}

// kvOf returns the state an index entry names, read in a view of its own.
func (s *Store) kvOf(v *version) (KeyValue, error) {
	if v.kv != nil {
		return *v.kv, nil
	}
	var kv KeyValue
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		kv, err = s.kvIn(txn, v)
		return err
	})
	return kv, err
}

// Events returns committed events with revisions in [from, to], in order, at most
// limit of them (a revision's events are never split), with their prev_kv.
func (s *Store) Events(from, to int64, limit int) ([]Event, error) {
	s.mu.RLock()
	compact := s.compactRev
	s.mu.RUnlock()
	if from < compact {
		return nil, ErrCompacted
	}
	to = min(to, s.committed.Load())
	var evs []Event
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRev}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		last := int64(0)
		for it.Seek(revKey(from, 0)); it.Valid(); it.Next() {
			item := it.Item()
			main, _ := parseRevKey(item.Key())
			if main > to || (len(evs) >= limit && main != last) {
				break
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			rec, err := decodeRecord(item.KeyCopy(nil), v)
			if err != nil {
				return err
			}
			ev := Event{Type: rec.typ, KV: rec.kv}
			// The previous state of an event at exactly the compacted revision is
			// gone; like etcd, such an event carries no prev_kv.
			if rec.prevRev.main != 0 {
				prev, err := readRecordIn(txn, rec.prevRev)
				switch {
				case err == nil:
					ev.PrevKV = &prev.kv
				case !isNotFound(err):
					return err
				}
			}
			evs = append(evs, ev)
			last = main
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read events: %w", err)
	}
	return evs, nil
}

// PrevKV returns ev's prev_kv: ev.PrevKV, or, for an event published
// without it (its state was not in memory at commit; see Event), that state
// read now. It is nil if the key did not exist before ev, or if that state
// has been compacted away since, as etcd, which reads a watcher's prev_kv
// when it sends the event, leaves it out then.
func (s *Store) PrevKV(ev Event) (*KeyValue, error) {
	if ev.PrevKV != nil || ev.prev.main == 0 {
		return ev.PrevKV, nil
	}
	kv, err := s.kvOf(&version{rev: ev.prev})
	switch {
	case isNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &kv, nil
}

func readRecordIn(txn *badger.Txn, r revision) (record, error) {
	k := revKey(r.main, r.sub)
	item, err := txn.Get(k)
	if err != nil {
		return record{}, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return record{}, err
	}
	return decodeRecord(k, v)
}

// HashKV hashes every key-value change from the compacted revision up to rev
// (0: newest). Equal stores have equal hashes.
func (s *Store) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	s.mu.RLock()
	compactRev = s.compactRev
	s.mu.RUnlock()
	cur := s.committed.Load()
	switch {
	case rev <= 0:
		rev = cur
	case rev > cur:
		return 0, 0, 0, ErrFutureRev
	case rev < compactRev:
		return 0, 0, 0, ErrCompacted
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRev}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			main, _ := parseRevKey(it.Item().Key())
			if main > rev {
				break
			}
			h.Write(it.Item().Key())
			if err := it.Item().Value(func(v []byte) error { h.Write(v); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	return h.Sum32(), rev, compactRev, err
}

// Update runs fn as one atomic write. fn reads and writes through tx; if it made any
// change, the changes commit as the next revision, and Update returns once they are
// durable and visible. fn must validate before it writes: an error returned after a
// write stops the store, because a half-applied request cannot be undone.
func (s *Store) Update(ctx context.Context, fn func(tx *WriteTxn) error) (int64, error) {
	return s.submit(ctx, &request{fns: []func(*WriteTxn) error{fn}, done: make(chan struct{})})
}

// submit queues one request and waits for it (submitAll); it returns the
// request's revision.
func (s *Store) submit(ctx context.Context, r *request) (int64, error) {
	err := s.submitAll(ctx, []*request{r})
	return r.rev, err
}

// submitAll queues requests in order, so the committer may take several in
// one commit, and waits for each as submit does; it returns the first error.
// What was queued is applied whatever ctx says.
func (s *Store) submitAll(ctx context.Context, rs []*request) error {
	queued := 0
	var err error
	for _, r := range rs {
		select {
		case s.reqs <- r:
			queued++
			continue
		case <-s.closing:
			err = ErrClosed
		case <-ctx.Done():
			err = ctx.Err()
		}
		break
	}
	// Once queued, a request will be applied; wait for it whatever ctx says, so
	// the caller never reports failure for a write that then commits. Only a
	// request queued after the committer's last drain is never applied.
	for _, r := range rs[:queued] {
		select {
		case <-r.done:
		case <-s.stopped:
			select {
			case <-r.done:
			default:
				return ErrClosed
			}
		}
		if err == nil {
			err = r.err
		}
	}
	return err
}

type badgerTxn = badger.Txn

func isNotFound(err error) bool { return errors.Is(err, badger.ErrKeyNotFound) }

type write struct {
	key, value []byte
	delete     bool
}
