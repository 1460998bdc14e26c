package watch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rhizome-kv/rhizome/store"
)

// Request creates a watcher.
type Request struct {
	ID             int64 // 0: pick the next free id
	Key, End       []byte
	StartRev       int64 // 0: from the next revision
	PrevKV         bool
	NoPut          bool
	NoDelete       bool
	ProgressNotify bool
}

// Response is what a stream sends. Exactly one of Created, Canceled, Events or a
// progress notification (no events) is meaningful per response.
type Response struct {
	WatchID         int64 // -1 for a stream-wide progress notification
	Revision        int64 // the header revision
	Created         bool
	Canceled        bool
	CancelReason    string
	CompactRevision int64
	Events          []store.Event
}

// ErrWatchIDExists is returned when a client asks for an id already in use.
var ErrWatchIDExists = errors.New("watch: watch id already exists")

// Stream is one client stream's set of watchers. Its send function is called from
// several goroutines, never concurrently (the stream serialises calls).
type Stream struct {
	hub              *Hub
	progressInterval time.Duration
	ctx              context.Context
	cancel           context.CancelFunc

	sendMu sync.Mutex
	send   func(Response) error

	mu              sync.Mutex
	watchers        map[int64]*watcher
	nextID          int64
	pendingProgress bool
	wg              sync.WaitGroup
}

type watcher struct {
	req    Request
	cancel context.CancelFunc
	sub    *sub // its registration with the hub, which holds its next revision
	slow   bool // its last read came from the store; owned by its goroutine
}

// NewStream starts a stream whose responses go to send. progressInterval is how
// often watchers that asked for progress notifications get one (0: never).
func (h *Hub) NewStream(ctx context.Context, progressInterval time.Duration, send func(Response) error) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	h.streams.Add(1)
	return &Stream{hub: h, progressInterval: progressInterval, ctx: ctx, cancel: cancel, send: send, watchers: make(map[int64]*watcher)}
}

func (s *Stream) emit(r Response) error { return s.emitFor(s.ctx, r) }

// emitFor sends unless ctx (a watcher's, or the stream's) has ended, so nothing of a
// watcher follows its Canceled response.
func (s *Stream) emitFor(ctx context.Context, r Response) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err := s.send(r)
	if err != nil {
		s.cancel()
	}
	return err
}

// Watch creates a watcher, sends its Created response and starts delivering.
func (s *Stream) Watch(req Request) error {
	s.mu.Lock()
	if req.ID == 0 {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		req.ID = s.nextID
		s.nextID++
	} else if req.ID < 0 || s.watchers[req.ID] != nil {
		s.mu.Unlock()
		return ErrWatchIDExists
	}
	rev := s.hub.Rev()
	next := req.StartRev
	if next <= 0 {
		next = rev + 1
	}
	ctx, cancel := context.WithCancel(s.ctx)
	w := &watcher{req: req, cancel: cancel, sub: s.hub.subscribe(req.Key, req.End, next)}
	s.watchers[req.ID] = w
	s.wg.Add(1)
	// Created goes out before any event: the goroutine starts after it is sent,
	// and the stream lock keeps a concurrent progress reply from overtaking it.
	err := s.emit(Response{WatchID: req.ID, Revision: rev, Created: true})
	s.mu.Unlock()
	if err != nil {
		s.hub.unsubscribe(w.sub)
		s.wg.Done()
		return err
	}
	go s.run(ctx, w)
	return nil
}

// Cancel stops a watcher and sends its Canceled response. It reports whether the
// watcher existed.
func (s *Stream) Cancel(id int64) bool {
	s.mu.Lock()
	w, ok := s.watchers[id]
	if ok {
		delete(s.watchers, id)
		w.cancel()
	}
	s.mu.Unlock()
	if ok {
		s.emit(Response{WatchID: id, Revision: s.hub.Rev(), Canceled: true})
		s.maybeProgress()
	}
	return ok
}

// RequestProgress asks for a stream-wide progress notification. It is sent, with
// watch id -1 and revision R, as soon as every event up to R has been delivered to
// every watcher of the stream.
func (s *Stream) RequestProgress() {
	s.mu.Lock()
	s.pendingProgress = true
	s.mu.Unlock()
	s.maybeProgress()
}

func (s *Stream) maybeProgress() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.pendingProgress {
		return
	}
	if len(s.watchers) == 0 {
		s.pendingProgress = false // like etcd: no watchers, no notification
		return
	}
	rev := s.hub.Rev()
	for _, w := range s.watchers {
		if w.sub.next.Load() <= rev {
			return
		}
	}
	s.pendingProgress = false
	s.emit(Response{WatchID: -1, Revision: rev})
}

// Close stops every watcher and waits for them. Call it once.
func (s *Stream) Close() {
	s.cancel()
	s.wg.Wait()
	s.hub.streams.Add(-1)
}

// run delivers a watcher's events until it is cancelled or the stream ends.
func (s *Stream) run(ctx context.Context, w *watcher) {
	defer s.wg.Done()
	defer s.hub.unsubscribe(w.sub)
	s.hub.watchers.Add(1)
	defer s.hub.watchers.Add(-1)
	defer s.setSlow(w, false)
	var tick <-chan time.Time
	if w.req.ProgressNotify && s.progressInterval > 0 {
		t := time.NewTicker(s.progressInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		rev := s.hub.Rev()
		if next := w.sub.next.Load(); next <= rev {
			if !s.deliver(ctx, w, next, rev) {
				return
			}
			continue
		}
		s.setSlow(w, false) // caught up
		s.maybeProgress()
		select {
		case <-ctx.Done():
			return
		case <-w.sub.wake:
		case <-tick:
			// Only a caught-up watcher may claim progress.
			if cur := s.hub.Rev(); w.sub.next.Load() > cur {
				s.emitFor(ctx, Response{WatchID: w.req.ID, Revision: cur})
			}
		}
	}
}

// deliver sends the watcher's events from next up to at most rev and advances it.
// It returns false when the watcher is finished.
func (s *Stream) deliver(ctx context.Context, w *watcher, next, rev int64) bool {
	evs, slow, err := s.hub.read(next, rev)
	s.setSlow(w, slow)
	if errors.Is(err, store.ErrCompacted) {
		s.mu.Lock()
		delete(s.watchers, w.req.ID)
		s.mu.Unlock()
		// etcd leaves the header revision of this response at 0.
		s.emit(Response{WatchID: w.req.ID, Canceled: true, CompactRevision: s.hub.src.CompactRev(),
			CancelReason: "mvcc: required revision has been compacted"})
		s.maybeProgress()
		return false
	}
	if err != nil {
		s.fail(w, rev, err)
		return false
	}
	if len(evs) == 0 {
		// Only the initial revision of a fresh store has no events.
		w.sub.next.Store(rev + 1)
		return ctx.Err() == nil
	}
	var out []store.Event
	compact := s.hub.src.CompactRev()
	for _, ev := range evs {
		if !inRange(ev.KV.Key, w.req.Key, w.req.End) ||
			(ev.Type == store.EventPut && w.req.NoPut) || (ev.Type == store.EventDelete && w.req.NoDelete) {
			continue
		}
		// Like etcd, prev_kv is the key at the previous revision, which is gone
		// once that revision is compacted, and is read when the event is sent
		// if the store did not have it in memory at commit.
		if !w.req.PrevKV || ev.KV.ModRevision-1 < compact {
			ev.PrevKV = nil
		} else if ev.PrevKV, err = s.hub.src.PrevKV(ev); err != nil {
			s.fail(w, rev, err)
			return false
		}
		out = append(out, ev)
	}
	last := evs[len(evs)-1].KV.ModRevision
	if len(out) > 0 {
		if s.emitFor(ctx, Response{WatchID: w.req.ID, Revision: max(rev, last), Events: out}) != nil {
			return false
		}
	}
	w.sub.next.Store(last + 1)
	return ctx.Err() == nil
}

// fail cancels a watcher whose events could not be read, with err as the
// reason.
func (s *Stream) fail(w *watcher, rev int64, err error) {
	s.mu.Lock()
	delete(s.watchers, w.req.ID)
	s.mu.Unlock()
	s.emit(Response{WatchID: w.req.ID, Revision: rev, Canceled: true, CancelReason: err.Error()})
}

// setSlow records whether a watcher reads from the store (behind the window).
func (s *Stream) setSlow(w *watcher, slow bool) {
	if w.slow != slow {
		w.slow = slow
		if slow {
			s.hub.slow.Add(1)
		} else {
			s.hub.slow.Add(-1)
		}
	}
}
