package watch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.InMemory, cfg.Site = true, "t"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s *store.Store, k string) {
	t.Helper()
	if _, err := s.Update(context.Background(), func(tx *store.WriteTxn) error { return tx.Put([]byte(k), []byte("v"), 0) }); err != nil {
		t.Fatal(err)
	}
}

// TestSlowWatcherCatchesUpFromTheStore: a watcher that cannot keep up holds no
// buffer of its own; the hub keeps only its window, and the watcher later reads
// what the window lost from the store, every event once and in order.
func TestSlowWatcherCatchesUpFromTheStore(t *testing.T) {
	st := newStore(t)
	hub, err := NewHub(Config{Window: 16, WindowBytes: 1 << 20, ReadBatch: 10}, st)
	if err != nil {
		t.Fatal(err)
	}
	st.SetPublisher(hub)

	release := make(chan struct{})
	var mu sync.Mutex
	var got []int64
	var progress []int64
	stream := hub.NewStream(context.Background(), 0, func(r Response) error {
		if r.Created {
			return nil
		}
		if r.WatchID == -1 {
			mu.Lock()
			progress = append(progress, r.Revision)
			mu.Unlock()
			return nil
		}
		<-release // a stuck client
		mu.Lock()
		for _, ev := range r.Events {
			got = append(got, ev.KV.ModRevision)
		}
		mu.Unlock()
		return nil
	})
	defer stream.Close()
	if err := stream.Watch(Request{Key: []byte("k"), End: []byte{0}}); err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := range n {
		put(t, st, fmt.Sprintf("k%03d", i))
	}
	hub.mu.Lock()
	window := len(hub.window)
	hub.mu.Unlock()
	if window > 2*16 {
		t.Fatalf("the hub holds %d events for a stuck watcher, window is 16 (trimmed at twice that)", window)
	}
	stream.RequestProgress() // must wait: the watcher has not caught up
	mu.Lock()
	early := len(progress)
	mu.Unlock()
	if early != 0 {
		t.Fatal("progress notified before the watcher caught up")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(got) == n && len(progress) == 1
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher got %d of %d events, %d progress notifications", len(got), n, len(progress))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, rev := range got {
		if rev != int64(i+2) { // the first write of a fresh store is revision 2
			t.Fatalf("event %d has revision %d", i, rev)
		}
	}
	if progress[0] != int64(n+1) {
		t.Fatalf("progress at revision %d, want %d", progress[0], n+1)
	}
}

// TestWatcherGauges: the watcher gauges count open watchers and streams, and a
// watcher stuck behind the window counts as slow until it has caught up.
func TestWatcherGauges(t *testing.T) {
	st := newStore(t)
	reg := prometheus.NewRegistry()
	hub, err := NewHub(Config{Window: 4, WindowBytes: 1 << 20, ReadBatch: 2, Registerer: reg}, st)
	if err != nil {
		t.Fatal(err)
	}
	st.SetPublisher(hub)
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	waitGauge := func(name string, want float64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); gauge(name) != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v, want %v", name, gauge(name), want)
			}
		}
	}
	release := make(chan struct{})
	stream := hub.NewStream(context.Background(), 0, func(r Response) error {
		if !r.Created {
			<-release
		}
		return nil
	})
	for _, id := range []int64{1, 2} {
		if err := stream.Watch(Request{ID: id, Key: []byte("k"), End: []byte{0}}); err != nil {
			t.Fatal(err)
		}
	}
	waitGauge("rhizome_watch_watchers", 2)
	waitGauge("etcd_debugging_mvcc_watcher_total", 2)
	waitGauge("etcd_debugging_mvcc_watch_stream_total", 1)
	for i := range 20 {
		put(t, st, fmt.Sprintf("k%d", i))
	}
	release <- struct{}{} // each watcher's first response: then they read on, from the store
	release <- struct{}{}
	waitGauge("etcd_debugging_mvcc_slow_watcher_total", 2)
	close(release)
	waitGauge("etcd_debugging_mvcc_slow_watcher_total", 0)
	stream.Cancel(1)
	waitGauge("rhizome_watch_watchers", 1)
	stream.Close()
	waitGauge("etcd_debugging_mvcc_watcher_total", 0)
	waitGauge("etcd_debugging_mvcc_watch_stream_total", 0)
}

// TestWindowBoundedByBytes: large events shrink the window to its byte budget
// (twice it at most between trims), whole revisions kept.
func TestWindowBoundedByBytes(t *testing.T) {
	st := newStore(t)
	hub, err := NewHub(Config{Window: 1000, WindowBytes: 4 << 10, ReadBatch: 10}, st)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1000)
	for i := range 50 {
		hub.Publish(int64(i+2), []store.Event{{Type: store.EventPut, KV: store.KeyValue{Key: []byte("k"), Value: big, ModRevision: int64(i + 2)}}})
		hub.mu.Lock()
		n, b := len(hub.window), hub.bytes
		hub.mu.Unlock()
		if b > 2*(4<<10) || n > 9 {
			t.Fatalf("after %d publishes the window holds %d events, %d bytes", i+1, n, b)
		}
	}
}

// TestPublishWakesOnlyItsWatchers: of many watchers of distinct keys, a write
// wakes the one it concerns; the others are moved past it, so a progress
// request is answered at once, at the newest revision, and each watcher still
// receives its own key's events and nothing else.
func TestPublishWakesOnlyItsWatchers(t *testing.T) {
	st := newStore(t)
	hub, err := NewHub(DefaultConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	st.SetPublisher(hub)
	const watchers, writes = 40, 50
	var mu sync.Mutex
	got := map[int64][]string{}
	progress := make(chan int64, 100)
	stream := hub.NewStream(context.Background(), 0, func(r Response) error {
		switch {
		case r.Created:
		case r.WatchID == -1:
			progress <- r.Revision
		default:
			mu.Lock()
			for _, ev := range r.Events {
				got[r.WatchID] = append(got[r.WatchID], string(ev.KV.Key))
			}
			mu.Unlock()
		}
		return nil
	})
	defer stream.Close()
	for i := range int64(watchers) {
		if err := stream.Watch(Request{ID: i + 1, Key: fmt.Appendf(nil, "k%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	before := hub.woken.Load()
	for range writes {
		put(t, st, "k00")
	}
	if woken := hub.woken.Load() - before; woken > 2*writes {
		t.Errorf("%d writes of one key woke watchers %d times (%d watchers)", writes, woken, watchers)
	}
	// Every watcher is caught up: the progress request is answered at the
	// newest revision.
	stream.RequestProgress()
	select {
	case rev := <-progress:
		if rev != st.Rev() {
			t.Errorf("progress at %d, want %d", rev, st.Rev())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no progress notification")
	}
	put(t, st, "k07")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n0, n7, all := len(got[1]), len(got[8]), len(got)
		mu.Unlock()
		if n0 == writes && n7 == 1 {
			if all != 2 {
				t.Errorf("events reached %d watchers, want 2", all)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher of k00 got %d events (want %d), of k07 %d (want 1)", n0, writes, n7)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPrevKVReadWhenSent: a watcher asking for prev_kv gets each event's
// previous state, also when the store published the event without it (no
// record cache, so a state committed earlier is not in memory; the stream
// reads it as it sends the event, as etcd does); one not asking gets none.
func TestPrevKVReadWhenSent(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.InMemory, cfg.Site, cfg.RecordCacheBytes = true, "t", 0
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hub, err := NewHub(DefaultConfig(), st)
	if err != nil {
		t.Fatal(err)
	}
	st.SetPublisher(hub)
	write := func(fn func(tx *store.WriteTxn) error) {
		t.Helper()
		if _, err := st.Update(context.Background(), fn); err != nil {
			t.Fatal(err)
		}
	}
	write(func(tx *store.WriteTxn) error { return tx.Put([]byte("k"), []byte("v1"), 0) })

	var mu sync.Mutex
	got := map[int64][]store.Event{} // by watch ID
	stream := hub.NewStream(context.Background(), 0, func(r Response) error {
		mu.Lock()
		defer mu.Unlock()
		got[r.WatchID] = append(got[r.WatchID], r.Events...)
		return nil
	})
	defer stream.Close()
	for id, prev := range []bool{true, false} {
		if err := stream.Watch(Request{ID: int64(id), Key: []byte("k"), PrevKV: prev}); err != nil {
			t.Fatal(err)
		}
	}
	write(func(tx *store.WriteTxn) error { return tx.Put([]byte("k"), []byte("v2"), 0) })
	write(func(tx *store.WriteTxn) error { _, err := tx.DeleteRange([]byte("k"), nil); return err })

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		with, without := slices.Clone(got[0]), slices.Clone(got[1])
		mu.Unlock()
		if len(with) == 2 && len(without) == 2 {
			for i, want := range []string{"v1", "v2"} {
				if p := with[i].PrevKV; p == nil || string(p.Value) != want {
					t.Errorf("event %d's prev_kv %+v, want %s", i, p, want)
				}
				if without[i].PrevKV != nil {
					t.Errorf("event %d has a prev_kv it was not asked for", i)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d and %d events, want 2 each", len(with), len(without))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
