package store

import (
	"fmt"
	"maps"
	"runtime"
	"slices"

	"github.com/rhizome-kv/rhizome/crdt"
)

// The committer is one goroutine that applies batches of requests in memory,
// one after another, and makes each durable in one badger transaction. It
// does not wait for a batch's fsync before applying the next: while batch N's
// transaction is written and synced (a flight), batch N+1 is applied, taking
// requests as they arrive until N's commit ends (so one commit carries all
// that came during the one before: group commit), reading N's writes from the
// flight and older state from a view of the last durable commit
// (batchReads). N+1's transaction is begun only once N's has ended, so
// commits land in order and one at a time, and N+1 fails if N did. Nothing of
// a batch is shown before it is durable; once it is, the goroutine that wrote
// it shows it at once, while N+1 may still be applied: its revision becomes
// the one readers see, its events are published and its requests are
// answered (show). The committer then lands it, settling its documents in the
// cache it owns (land). A request that must read what is durable
// (request.alone) waits for the flight to land first.

// flight is a batch applied in memory whose commit may be under way.
type flight struct {
	batch  []*request
	events []Event
	cached []*keyIndex       // index entries whose states the commit makes durable
	logged bool              // the batch logged changes
	rev    int64             // the store's revision once the batch is durable
	vv     map[string]uint64 // the version vector once the batch is durable
	writes []write           // what the commit writes (none: nothing to make durable)
	wrote  map[string][]byte // writes by key, for the next batch's reads (nil value: deleted)
	size   int64             // bytes of the requests' own writes
	err    error             // the commit's result, once done is closed
	done   chan struct{}     // closed when the commit has ended
}

// ended is closed when the flight's commit has ended; nil for no flight.
func (f *flight) ended() <-chan struct{} {
	if f == nil {
		return nil
	}
	return f.done
}

// end records the commit's result.
func (f *flight) end(err error) {
	f.err = err
	close(f.done)
}

func (s *Store) runCommitter() {
	defer s.wg.Done()
	defer close(s.stopped)
	c := &committer{s: s}
	defer c.land()
	var carried *request // a request the last batch could not take
	for {
		r := carried
		if r == nil {
			select {
			case r = <-s.reqs:
			case <-c.f.ended():
				c.land()
				continue
			case <-s.closing:
				c.drain()
				return
			}
		}
		carried = c.commit(r)
		if len(s.reqs) > 0 {
			// The callers just acknowledged wait to run on this P, behind the
			// next batch's apply and encode; let them reply first.
			runtime.Gosched()
		}
	}
}

// committer is the committer goroutine's own state.
type committer struct {
	s *Store
	f *flight // the batch whose commit is under way, if any
}

// land waits for the flight under way, if any, to end, and lands it.
func (c *committer) land() {
	if c.f != nil {
		<-c.f.done
		c.s.land(c.f)
		c.f = nil
	}
}

// commit applies r and the requests queued behind it as the next batch
// (gather), lands the flight under way and starts the batch's commit. It
// returns the request the batch could not take, if any.
func (c *committer) commit(r *request) (carried *request) {
	if r.alone {
		c.land() // it reads what is durable
	}
	next, carried := c.s.gather(r, c.f)
	c.land()
	c.f = c.s.start(next)
	return carried
}

// drain commits, on close, what was queued before it.
func (c *committer) drain() {
	for {
		var r *request
		select {
		case r = <-c.s.reqs:
		default:
			return
		}
		for r != nil {
			r = c.commit(r)
		}
	}
}

// gather applies first and the requests queued behind it as one batch,
// reading the writes of prev (the flight under way, or nil) where they are not
// yet durable, and returns the batch's flight, not yet started. While prev is
// in the air the batch keeps taking requests as they come, so the next commit
// carries all that arrived during this one's (group commit); it stops once
// prev's result is in, or its writes near what a transaction holds
// (batchBytes), or it holds MaxBatch requests. A request it cannot take (one
// that must be alone, or any after such a one) is returned, to begin the
// next batch.
func (s *Store) gather(first *request, prev *flight) (*flight, *request) {
	b := s.newBatch(prev)
	defer b.reads.close()
	b.add(first)
	for !first.alone && len(b.f.batch) < s.cfg.MaxBatch && b.f.size <= s.batchBytes() {
		var r *request
		select {
		case r = <-s.reqs:
		default:
			if prev == nil {
				return b.finish(), nil
			}
			select {
			case r = <-s.reqs:
			case <-prev.done:
				return b.finish(), nil
			}
		}
		if r.alone {
			return b.finish(), r
		}
		b.add(r)
	}
	return b.finish(), nil
}

// batch is a flight being applied in memory.
type batch struct {
	s     *Store
	f     *flight
	dirty map[string]*crdt.Doc // documents the batch changed, by key
	reads *batchReads
}

func (s *Store) newBatch(prev *flight) *batch {
	b := &batch{s: s, f: &flight{done: make(chan struct{})},
		dirty: make(map[string]*crdt.Doc), reads: &batchReads{s: s}}
	if prev != nil {
		b.reads.wrote = prev.wrote
	}
	return b
}

// add applies one request to the batch.
func (b *batch) add(r *request) {
	b.f.batch = append(b.f.batch, r)
	b.s.applyRequest(b.f, r, b.dirty, b.reads)
}

// finish encodes the batch's documents and adds the store's own records to
// its writes: the flight is ready to start.
func (b *batch) finish() *flight {
	s, f := b.s, b.f
	for key, doc := range b.dirty {
		enc := doc.Encode()
		s.metrics.document(len(enc))
		f.writes = append(f.writes, write{key: docKey([]byte(key)), value: enc})
	}
	f.rev = s.rev
	if len(f.writes) == 0 || s.fail != nil {
		return f
	}
	f.writes = append(f.writes,
		write{key: metaRev, value: int64Bytes(s.rev)},
		write{key: metaClock, value: int64Bytes(int64(s.clock))})
	s.mu.RLock()
	f.vv = maps.Clone(s.vv)
	s.mu.RUnlock()
	for origin, seq := range f.vv {
		f.writes = append(f.writes, write{key: vvKey(origin), value: int64Bytes(int64(seq))})
		if !s.cfg.Replicated && f.logged {
			// Alone, what is logged counts as collected at once.
			f.writes = append(f.writes, write{key: collectedKey(origin), value: int64Bytes(int64(seq))})
		}
	}
	f.wrote = make(map[string][]byte, len(f.writes))
	for _, w := range f.writes {
		f.wrote[string(w.key)] = w.value
		if w.delete {
			f.wrote[string(w.key)] = nil
		}
	}
	return f
}

// applyRequest runs a request's functions, each its own revision, adding what
// they write to f.
func (s *Store) applyRequest(f *flight, r *request, dirty map[string]*crdt.Doc, reads *batchReads) {
	fns := slices.Clip(r.fns)
	for i := 0; i < len(fns); i++ {
		if s.fail != nil {
			r.err = s.fail
			break
		}
		tx := &WriteTxn{s: s, rev: s.rev + 1, dirty: dirty, reads: reads, prep: r.prep}
		s.mu.Lock()
		err := fns[i](tx)
		s.mu.Unlock()
		if err != nil {
			r.err = err
			if tx.mutated {
				s.fail = fmt.Errorf("store: stopped after a failed write: %w", err)
				s.log.Error("write failed after applying part of it; refusing further writes", "err", err)
			}
			break
		}
		if len(tx.events) > 0 {
			s.rev++
		}
		fns = slices.Insert(fns, i+1, tx.then...)
		r.rev = s.rev
		f.logged = f.logged || tx.logged
		f.events = append(f.events, tx.events...)
		f.writes = append(f.writes, tx.writes...)
		f.cached = append(f.cached, tx.cached...)
		for _, w := range tx.writes {
			f.size += int64(len(w.key) + len(w.value))
		}
	}
	for _, p := range r.prep {
		if p.doc != nil {
			s.docs.drop(p.doc) // prepared for a key the write did not change
		}
	}
	r.prep = nil
}

// start begins f's commit, which ends (flight.end) at once when
// there is nothing to write or the store has failed, else once badger has
// made the writes durable and they are shown (show). The flight before f must
// have landed.
func (s *Store) start(f *flight) *flight {
	switch {
	case s.fail != nil:
		f.end(s.fail)
	case f.wrote == nil:
		s.show(f)
		f.end(nil)
	default:
		s.unmeasured.Add(f.size)
		go func() {
			timer := s.metrics.commitDuration()
			err := s.persist(f.writes)
			timer()
			if err == nil {
				s.show(f)
			}
			f.end(err)
		}()
	}
	return f
}

// show makes a durable flight visible, as soon as it is durable, while the
// committer may be applying the next batch: its revision becomes the one
// readers see, the CRDs it wrote are observed (so a batch applied meanwhile
// may have cut custom resources by the schemas before it, as a site that
// learns the CRD later does), its events are published and its requests are
// answered. What it touches is the readers' (under mu, or safe for concurrent
// use), never the committer's own state; land does the rest.
func (s *Store) show(f *flight) {
	if f.wrote != nil {
		// A view of this commit first, then its revision: a reader of the
		// revision finds what it selects in the view (Range).
		s.prepViews.renew(s.newView())
	}
	s.mu.Lock()
	// Durable entries keep no state in the index: reads find it in the
	// record cache, which is offered it now, or in badger, or, the
	// committer's, in the flight's writes until it lands (batchReads).
	for _, ki := range f.cached {
		for i := range ki.versions {
			if v := &ki.versions[i]; v.rev.main <= f.rev && v.kv != nil {
				s.records.put(v.rev, *v.kv)
				v.kv = nil
			}
		}
	}
	s.committed.Store(f.rev)
	maps.Copy(s.durable, f.vv)
	s.mu.Unlock()
	s.observeCRDs(f.events)
	_ = s.failpoint(FailpointBeforePublish) // durable already: only a crash matters here
	if p := s.publisher.Load(); p != nil && len(f.events) > 0 {
		(*p).Publish(f.rev, f.events)
	}
	if f.logged {
		s.changes.notify()
	}
	for _, r := range f.batch {
		close(r.done)
	}
}

// land ends a flight whose commit has ended, in the committer: a durable
// one, already shown, has its documents settle in the cache; on failure the
// store refuses further writes and the flight's requests are answered with
// the failure.
func (s *Store) land(f *flight) {
	s.metrics.batch(len(f.batch))
	if err := f.err; err != nil { // not shown
		if s.fail == nil {
			s.fail = fmt.Errorf("store: commit: %w", err)
			s.log.Error("commit failed; refusing further writes", "err", err)
		}
		s.docs.reset() // cached documents may hold changes that never committed
		for _, r := range f.batch {
			if r.err == nil {
				r.err = s.fail // its writes were not made durable
			}
			close(r.done)
		}
		return
	}
	s.docs.settle()
}
