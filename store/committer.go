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
// transaction is written and synced (a flight), batch N+1 is applied, reading
// N's writes from the flight and older state from a view of the last durable
// commit (batchReads). N+1's transaction is begun only once N's has ended, so
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
	done   chan error        // the commit's result, sent once
}

// result is the channel the flight's result arrives on; nil for no flight.
func (f *flight) result() <-chan error {
	if f == nil {
		return nil
	}
	return f.done
}

func (s *Store) runCommitter() {
	defer s.wg.Done()
	defer close(s.stopped)
	var f *flight // the batch whose commit is under way, if any
	land := func() {
		if f != nil {
			s.land(f, <-f.done)
			f = nil
		}
	}
	defer land()
	for {
		var batch []*request
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case err := <-f.result():
			s.land(f, err)
			f = nil
			continue
		case <-s.closing:
			// Drain what was queued before the close.
			for {
				select {
				case r := <-s.reqs:
					batch = []*request{r}
				default:
					return
				}
				for len(batch) > 0 {
					land()
					f, batch = s.takeOff(batch)
				}
			}
		}
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		for len(batch) > 0 {
			if batch[0].alone {
				land() // it reads what is durable
			}
			next, rest := s.apply(batch, f)
			land()
			f, batch = s.start(next), rest
		}
		if len(s.reqs) > 0 {
			// The callers just acknowledged wait to run on this P, behind the
			// next batch's apply and encode; let them reply first.
			runtime.Gosched()
		}
	}
}

// takeOff applies requests of a batch, no commit being under way, and starts
// their commit; it returns the flight and the requests it left (see apply).
func (s *Store) takeOff(batch []*request) (*flight, []*request) {
	f, rest := s.apply(batch, nil)
	return s.start(f), rest
}

// apply applies requests of a batch in memory, reading the writes of prev (the
// flight under way, or nil) where they are not yet durable: it stops taking
// requests once their writes near what a transaction holds (batchBytes) and
// returns those it left. The flight it returns holds the batch's writes,
// documents encoded, and is not yet started.
func (s *Store) apply(batch []*request, prev *flight) (f *flight, rest []*request) {
	f = &flight{done: make(chan error, 1)}
	dirty := make(map[string]*crdt.Doc)
	reads := &batchReads{s: s}
	if prev != nil {
		reads.wrote = prev.wrote
	}
	defer reads.close()
	for i, r := range batch {
		if f.size > s.batchBytes() || i > 0 && (r.alone || batch[0].alone) {
			batch, rest = batch[:i], batch[i:]
			break
		}
		s.applyRequest(f, r, dirty, reads)
	}
	f.batch = batch
	for key, doc := range dirty {
		enc := doc.Encode()
		s.metrics.document(len(enc))
		f.writes = append(f.writes, write{key: docKey([]byte(key)), value: enc})
	}
	f.rev = s.rev
	if len(f.writes) == 0 || s.fail != nil {
		return f, rest
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
	return f, rest
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

// start begins f's commit, which sends its result on f.done: at once when
// there is nothing to write or the store has failed, else once badger has
// made the writes durable and they are shown (show). The flight before f must
// have landed.
func (s *Store) start(f *flight) *flight {
	switch {
	case s.fail != nil:
		f.done <- s.fail
	case f.wrote == nil:
		s.show(f)
		f.done <- nil
	default:
		s.unmeasured.Add(f.size)
		go func() {
			timer := s.metrics.commitDuration()
			err := s.persist(f.writes)
			timer()
			if err == nil {
				s.show(f)
			}
			f.done <- err
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

// land ends a flight whose commit returned err, in the committer: a durable
// one, already shown, has its documents settle in the cache; on failure the
// store refuses further writes and the flight's requests are answered with
// the failure.
func (s *Store) land(f *flight, err error) {
	s.metrics.batch(len(f.batch))
	if err != nil { // not shown
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
