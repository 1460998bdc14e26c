package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/crdt"
)

// heldCommits makes the commits begun while hold is set wait at
// FailpointBeforeCommit until release, then fail with fail (nil: go on).
type heldCommits struct {
	hold    atomic.Bool
	held    chan struct{} // a commit is waiting
	release chan struct{}
	fail    error
}

func newHeldCommits(fail error) *heldCommits {
	return &heldCommits{held: make(chan struct{}, 1), release: make(chan struct{}), fail: fail}
}

func (h *heldCommits) failpoint(name string) error {
	if name != FailpointBeforeCommit || !h.hold.Load() {
		return nil
	}
	h.held <- struct{}{}
	<-h.release
	return h.fail
}

// writeSignalled puts value at key through Write (so the value is prepared
// first) and closes applied when the committer runs the write; the result
// arrives on the returned channel.
func writeSignalled(s *Store, key, value string, applied chan struct{}) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(context.Background(), func(tx TxnWrite) error {
			if _, real := tx.(*WriteTxn); real {
				close(applied)
			}
			return tx.Put([]byte(key), []byte(value), 0)
		})
		done <- err
	}()
	return done
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// openHeld opens a store in a fresh directory whose commits h holds.
func openHeld(t *testing.T, h *heldCommits) (*Store, Config) {
	t.Helper()
	cfg := DefaultConfig()
	// Replicated: its documents are edited field by field, which the
	// tests follow through batches in flight.
	cfg.Dir, cfg.Site, cfg.Failpoint, cfg.Replicated = t.TempDir(), "a", h.failpoint, true
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg
}

// reopenPlain closes s and opens its directory again, without failpoints.
func reopenPlain(t *testing.T, s *Store, cfg Config) *Store {
	t.Helper()
	s.Close()
	cfg.Failpoint = nil
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// overlap writes first, holds its commit, then writes second and waits until
// the committer has applied it; it returns both writes' results, which
// arrive once h is released.
func (h *heldCommits) overlap(t *testing.T, s *Store, first, second [2]string) (<-chan error, <-chan error) {
	t.Helper()
	h.hold.Store(true)
	a := writeSignalled(s, first[0], first[1], make(chan struct{}))
	waitFor(t, h.held, "the first commit")
	h.hold.Store(false)
	applied := make(chan struct{})
	b := writeSignalled(s, second[0], second[1], applied)
	waitFor(t, applied, "the second write applied while the first commit is held")
	return a, b
}

// TestNextBatchAppliedDuringFlight: while a batch's commit is under way, the
// committer applies the next batch on top of it (a write prepared before the
// first landed keeps the first's edit), Range answers at once from what has
// landed, and both writes land in order.
func TestNextBatchAppliedDuringFlight(t *testing.T) {
	h := newHeldCommits(nil)
	s, cfg := openHeld(t, h)
	defer func() { s.Close() }()
	base := put(t, s, "k", `{"a":"0","b":"0"}`)
	first, second := h.overlap(t, s, [2]string{"k", `{"a":"1","b":"0"}`}, [2]string{"k", `{"a":"1","b":"2"}`})

	read := make(chan KeyValue, 1)
	go func() { kv, _ := get(t, s, "k", 0); read <- kv }()
	select {
	case kv := <-read:
		if string(kv.Value) != `{"a":"0","b":"0"}` || kv.ModRevision != base {
			t.Fatalf("Range during the flight: %s at %d, want the landed value at %d", kv.Value, kv.ModRevision, base)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Range waited for the commit under way")
	}

	close(h.release)
	for i, done := range []<-chan error{first, second} {
		if err := <-done; err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		kv, _ := get(t, s, "k", 0)
		if string(kv.Value) != `{"a":"1","b":"2"}` || kv.ModRevision != base+2 {
			t.Fatalf("k = %s at %d, want the second write at %d", kv.Value, kv.ModRevision, base+2)
		}
		raw, err := s.getRaw(docKey([]byte("k")))
		if err != nil {
			t.Fatal(err)
		}
		d, err := crdt.DecodeDoc(raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.Edits() != 2 {
			t.Fatalf("stored document holds %d edits, want 2 (the second applied on the first)", d.Edits())
		}
	}
	check(s)
	s = reopenPlain(t, s, cfg)
	check(s)
}

// TestFailedFlightFailsNextBatch: a batch applied on top of a commit that
// then fails is not committed either, its writer learns so, and the store
// reopens with neither.
func TestFailedFlightFailsNextBatch(t *testing.T) {
	h := newHeldCommits(ErrFailpoint)
	s, cfg := openHeld(t, h)
	base := put(t, s, "k", "v0")
	first, second := h.overlap(t, s, [2]string{"k", "v1"}, [2]string{"j", "v2"})
	close(h.release)
	if err := <-first; !errors.Is(err, ErrFailpoint) {
		t.Fatalf("first write: %v, want ErrFailpoint", err)
	}
	if err := <-second; err == nil {
		t.Fatal("second write, applied on a commit that failed, succeeded")
	}
	if s.Rev() != base {
		t.Fatalf("readers see revision %d, want %d", s.Rev(), base)
	}
	s = reopenPlain(t, s, cfg)
	defer s.Close()
	if kv, _ := get(t, s, "k", 0); string(kv.Value) != "v0" || s.Rev() != base {
		t.Fatalf("after reopening: k = %s at revision %d, want v0 at %d", kv.Value, s.Rev(), base)
	}
	if _, ok := get(t, s, "j", 0); ok {
		t.Fatal("after reopening: j, written on the failed commit, exists")
	}
}

// eventLog is a Publisher that keeps every event.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) Publish(_ int64, evs []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
}

// TestPublishedPrevKV: every published event's prev_kv (Store.PrevKV, which
// reads it when the event was published without it) is the key's whole state
// at the revision before, or none when the key did not exist then, under
// concurrent writers (so batches apply on commits under way) of documents,
// registers, leases, deletes and Txns that write a key twice; with the
// record cache and without it (so most prev_kvs are read after the commit).
func TestPublishedPrevKV(t *testing.T) {
	for _, cache := range []int64{DefaultRecordCacheBytes, 0} {
		t.Run(fmt.Sprint("cache=", cache), func(t *testing.T) {
			for _, replicated := range []bool{false, true} {
				cfg := DefaultConfig()
				cfg.Dir, cfg.Site, cfg.Replicated, cfg.RecordCacheBytes = t.TempDir(), "test", replicated, cache
				s, err := Open(cfg)
				if err != nil {
					t.Fatal(err)
				}
				checkPublishedPrevKV(t, s)
				s.Close()
			}
		})
	}
}

func checkPublishedPrevKV(t *testing.T, s *Store) {
	t.Helper()
	var log eventLog
	s.SetPublisher(&log)
	lease, _, err := s.GrantLease(t.Context(), 7, 3600)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 150 {
				key := []byte(fmt.Sprintf("k%d", rng.IntN(5)))
				doc := []byte(fmt.Sprintf(`{"a":"%d","b":"%d"}`, rng.IntN(3), i))
				var err error
				switch rng.IntN(7) {
				case 0:
					_, err = s.Write(t.Context(), func(tx TxnWrite) error { return tx.Put(key, doc, 0) })
				case 1:
					_, err = s.Update(t.Context(), func(tx *WriteTxn) error { return tx.Put(key, []byte(fmt.Sprint("r", i)), lease) })
				case 2:
					_, err = s.Update(t.Context(), func(tx *WriteTxn) error { _, err := tx.DeleteRange(key, nil); return err })
				case 5:
					// A Txn reading what it overwrites (the committer's reads).
					_, err = s.Update(t.Context(), func(tx *WriteTxn) error {
						if _, err := tx.Range([]byte("k"), RangeOptions{End: []byte("l")}); err != nil {
							return err
						}
						return tx.Put(key, doc, 0)
					})
				case 3:
					_, err = s.Update(t.Context(), func(tx *WriteTxn) error {
						if err := tx.Put(key, doc, 0); err != nil {
							return err
						}
						return tx.Put(key, []byte(fmt.Sprint("twice", i)), 0)
					})
				default:
					_, err = s.Write(t.Context(), func(tx TxnWrite) error { return tx.Put(key, doc, lease) })
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	log.mu.Lock()
	defer log.mu.Unlock()
	checked, read := 0, 0
	for _, ev := range log.events {
		prev, err := s.PrevKV(ev)
		if err != nil {
			t.Fatal(err)
		}
		rev := ev.KV.ModRevision
		before, err := s.Range(ev.KV.Key, RangeOptions{Rev: rev - 1})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(before.KVs) == 0 && prev != nil:
			t.Fatalf("revision %d: %q's prev_kv %+v, but it did not exist at %d", rev, ev.KV.Key, *prev, rev-1)
		case len(before.KVs) == 0:
			continue
		case prev == nil && ev.KV.CreateRevision != rev:
			t.Fatalf("revision %d: %q has no prev_kv, want the state at %d: %+v", rev, ev.KV.Key, rev-1, before.KVs[0])
		case prev != nil && !reflect.DeepEqual(*prev, before.KVs[0]):
			t.Fatalf("revision %d: %q's prev_kv %+v, want the state at %d: %+v", rev, ev.KV.Key, *prev, rev-1, before.KVs)
		}
		if prev != nil {
			checked++
		}
		if ev.PrevKV == nil && prev != nil {
			read++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d events with a prev_kv checked", checked)
	}
	t.Logf("%d events with a prev_kv, %d of them read after the commit", checked, read)
}

// TestBatchReadsSeeFlight: the committer's reads, through a view taken before
// a flight was synced, find the flight's documents and revision records among
// its writes once the index has let their states go (and no record cache
// holds them).
func TestBatchReadsSeeFlight(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.RecordCacheBytes, cfg.Replicated = t.TempDir(), "test", 0, true
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, "k", `{"a":"1"}`)
	reads := &batchReads{s: s}
	reads.view() // a view before the next commit, as a batch applied meanwhile holds
	defer reads.close()
	rev := put(t, s, "k", `{"a":"2"}`)
	landed(t, s)
	recKey, dKey := revKey(rev, 0), docKey([]byte("k"))
	wrote := map[string][]byte{}
	for _, k := range [][]byte{recKey, dKey} {
		raw, err := s.getRaw(k)
		if err != nil || raw == nil {
			t.Fatalf("%q: %v", k, err)
		}
		wrote[string(k)] = raw
	}
	s.mu.RLock()
	v, _ := s.idx.get([]byte("k")).live()
	s.mu.RUnlock()
	if v.kv != nil || v.rev.main != rev {
		t.Fatalf("the live version: revision %d, state kept %v; want %d, let go", v.rev.main, v.kv != nil, rev)
	}
	if _, err := reads.kv(v); err == nil {
		t.Fatal("the old view found a revision committed after it: the test reads nothing")
	}
	reads.wrote = wrote
	kv, err := reads.kv(v)
	if err != nil || string(kv.Value) != `{"a":"2"}` || kv.ModRevision != rev {
		t.Fatalf("through the flight's writes: %s at %d, %v; want the second value at %d", kv.Value, kv.ModRevision, err, rev)
	}
	if doc, err := reads.get(dKey); err != nil || !bytes.Equal(doc, wrote[string(dKey)]) {
		t.Fatalf("the document through the flight's writes: %v", err)
	}
}
