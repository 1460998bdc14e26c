package watch

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/store"
)

// Source is the event log behind the hub: the store.
type Source interface {
	Events(from, to int64, limit int) ([]store.Event, error)
	// PrevKV returns an event's prev_kv, reading it if the event was
	// published without it (store.Event); it may block on the disk.
	PrevKV(ev store.Event) (*store.KeyValue, error)
	Rev() int64
	CompactRev() int64
}

// Config configures a Hub.
type Config struct {
	// Window is how many recent events are kept in memory for watchers to share
	// (up to twice as many between trims).
	Window int
	// WindowBytes bounds the same window by the bytes of the events' keys and
	// values (prev_kv included), so large objects do not multiply its memory:
	// up to twice as many between trims. A watcher further behind reads the
	// store's event log.
	WindowBytes int
	// ReadBatch bounds the events a lagging watcher reads from the store at once.
	ReadBatch int
	// Registerer, when set, receives the watcher gauges (see the package doc).
	Registerer prometheus.Registerer
}

// DefaultConfig returns the hub's defaults: a window of 2 MiB (about 700
// events of a pod with its previous value), as each MiB in it costs about two
// of a site's resident memory; a watcher further behind reads the store.
func DefaultConfig() Config { return Config{Window: 8192, WindowBytes: 2 << 20, ReadBatch: 1000} }

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	if c.Window < 1 || c.WindowBytes < 1 || c.ReadBatch < 1 {
		return errors.New("watch: config: Window, WindowBytes and ReadBatch must be at least 1")
	}
	return nil
}

// Hub receives committed events and wakes the watchers.
type Hub struct {
	cfg Config
	src Source

	mu     sync.Mutex
	rev    int64         // newest published revision
	window []store.Event // recent events, oldest first, whole revisions only
	bytes  int           // of the window's events (eventBytes)
	subs   map[*sub]struct{}

	// woken counts the wake-ups Publish sent (for tests).
	woken atomic.Int64

	// Gauges: streams open, watchers delivering, and those of them reading
	// from the store because they are behind the window.
	streams, watchers, slow atomic.Int64
}

// NewHub returns a hub over src, starting at its current revision.
func NewHub(cfg Config, src Source) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, src: src, rev: src.Rev(), subs: make(map[*sub]struct{})}
	if cfg.Registerer != nil {
		if err := h.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// register adds the hub's gauges, with etcd's names where etcd has the same one.
func (h *Hub) register(reg prometheus.Registerer) error {
	gauges := []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"rhizome_watch_watchers", "Watchers open on this site.", &h.watchers},
		{"etcd_debugging_mvcc_watcher_total", "Total number of watchers.", &h.watchers},
		{"etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers (behind the hub's window of recent events, reading the store's event log).", &h.slow},
		{"etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.", &h.streams},
	}
	for _, g := range gauges {
		v := g.v
		f := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help}, func() float64 { return float64(v.Load()) })
		if err := reg.Register(f); err != nil {
			return fmt.Errorf("watch: metrics: %w", err)
		}
	}
	return nil
}

// Publish implements store.Publisher.
func (h *Hub) Publish(rev int64, events []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.window = append(h.window, events...)
	for _, ev := range events {
		h.bytes += eventBytes(ev)
	}
	// Trim to Window and WindowBytes once it holds twice either: amortised,
	// copying is O(1) a publish.
	if len(h.window) > 2*h.cfg.Window || h.bytes > 2*h.cfg.WindowBytes {
		h.trim()
	}
	prev := h.rev
	h.rev = rev
	for w := range h.subs {
		// A watcher that had delivered everything before and sees none of
		// these events has delivered everything now; any other must read.
		if w.selects(events) || !w.next.CompareAndSwap(prev+1, rev+1) {
			w.signal()
			h.woken.Add(1)
		}
	}
}

// sub is a watcher as the hub sees it: the keys it selects, how far it has
// delivered, and how to wake it. Publish wakes only the watchers its events
// concern, as etcd's watchable store notifies only the watchers of a key; it
// moves the others past the events itself, so that a watcher no event
// concerns still counts as caught up (progress notifications).
type sub struct {
	key, end []byte
	// next is the next revision the watcher delivers: every event before it
	// was delivered, or is not one it selects. Its goroutine moves it as it
	// delivers; Publish moves it past events it does not select while it is
	// caught up.
	next atomic.Int64
	wake chan struct{} // one wake-up pending at most
}

// selects reports whether any of events is under the watcher's keys.
func (w *sub) selects(events []store.Event) bool {
	for _, ev := range events {
		if inRange(ev.KV.Key, w.key, w.end) {
			return true
		}
	}
	return false
}

// signal wakes the watcher's goroutine, or leaves a wake-up pending for it.
func (w *sub) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// subscribe registers a watcher of keys [key, end) that delivers from next on.
// Its goroutine must check the hub's revision against next before its first
// wait: a publish before subscribe returns does not wake it.
func (h *Hub) subscribe(key, end []byte, next int64) *sub {
	w := &sub{key: key, end: end, wake: make(chan struct{}, 1)}
	w.next.Store(next)
	h.mu.Lock()
	h.subs[w] = struct{}{}
	h.mu.Unlock()
	return w
}

// unsubscribe forgets a watcher subscribe registered.
func (h *Hub) unsubscribe(w *sub) {
	h.mu.Lock()
	delete(h.subs, w)
	h.mu.Unlock()
}

// trim drops the oldest events down to Window and WindowBytes, whole revisions
// only, so a read from the window never splits one. Called with mu held.
func (h *Hub) trim() {
	cut := 0
	for cut < len(h.window) && (len(h.window)-cut > h.cfg.Window || h.bytes > h.cfg.WindowBytes ||
		cut > 0 && h.window[cut].KV.ModRevision == h.window[cut-1].KV.ModRevision) {
		h.bytes -= eventBytes(h.window[cut])
		cut++
	}
	// A new array (readers may hold parts of the old one), with room to
	// double before the next trim, so publishes do not regrow it meanwhile.
	kept := h.window[cut:]
	h.window = append(make([]store.Event, 0, 2*len(kept)+1), kept...)
}

// eventBytes is what an event holds in memory, roughly: keys and values.
func eventBytes(ev store.Event) int {
	n := len(ev.KV.Key) + len(ev.KV.Value)
	if ev.PrevKV != nil {
		n += len(ev.PrevKV.Key) + len(ev.PrevKV.Value)
	}
	return n
}

// Rev returns the newest published revision.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

// read returns the events with revisions in [from, to], whole revisions, from the
// window when it reaches back far enough and from the store otherwise (slow).
func (h *Hub) read(from, to int64) (evs []store.Event, slow bool, err error) {
	if from < h.src.CompactRev() {
		return nil, false, store.ErrCompacted
	}
	h.mu.Lock()
	if len(h.window) > 0 && h.window[0].KV.ModRevision <= from {
		// The window is in revision order: find the start by binary search.
		i := sort.Search(len(h.window), func(k int) bool { return h.window[k].KV.ModRevision >= from })
		j := i
		for j < len(h.window) && h.window[j].KV.ModRevision <= to && j-i < h.cfg.ReadBatch {
			j++
		}
		for j < len(h.window) && j > i && h.window[j].KV.ModRevision == h.window[j-1].KV.ModRevision {
			j++
		}
		evs := h.window[i:j:j]
		h.mu.Unlock()
		return evs, false, nil
	}
	h.mu.Unlock()
	evs, err = h.src.Events(from, to, h.cfg.ReadBatch)
	return evs, true, err
}

// inRange reports whether key is selected by etcd's (key, end) convention.
func inRange(key, start, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(key, start)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(key, start) >= 0
	default:
		return bytes.Compare(key, start) >= 0 && bytes.Compare(key, end) < 0
	}
}
