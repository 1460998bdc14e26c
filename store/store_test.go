package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	return openTestAs(t, dir, false)
}

// openReplicatedTest opens a store that other sites share (Config.Replicated):
// one that writes documents field by field rather than whole.
func openReplicatedTest(t *testing.T, dir string) *Store {
	t.Helper()
	return openTestAs(t, dir, true)
}

func openTestAs(t *testing.T, dir string, replicated bool) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.Replicated = dir, "test", replicated
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *Store, k, v string) int64 {
	t.Helper()
	rev, err := s.Update(context.Background(), func(tx *WriteTxn) error { return tx.Put([]byte(k), []byte(v), 0) })
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func get(t *testing.T, s *Store, k string, rev int64) (KeyValue, bool) {
	t.Helper()
	res, err := s.Range([]byte(k), RangeOptions{Rev: rev})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) == 0 {
		return KeyValue{}, false
	}
	return res.KVs[0], true
}

func TestRevisionsAndRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if s.Rev() != 1 {
		t.Fatalf("fresh store at revision %d", s.Rev())
	}
	for i := 1; i <= 5; i++ {
		if rev := put(t, s, "k", fmt.Sprintf(`{"v":%d}`, i)); rev != int64(i+1) {
			t.Fatalf("put %d committed as revision %d", i, rev)
		}
	}
	put(t, s, "other", "x")
	if _, err := s.Update(context.Background(), func(tx *WriteTxn) error { _, err := tx.DeleteRange([]byte("other"), nil); return err }); err != nil {
		t.Fatal(err)
	}
	kv, _ := get(t, s, "k", 0)
	if kv.Version != 5 || kv.CreateRevision != 2 || kv.ModRevision != 6 || string(kv.Value) != `{"v":5}` {
		t.Fatalf("latest %+v", kv)
	}
	if kv, _ := get(t, s, "k", 4); string(kv.Value) != `{"v":3}` || kv.Version != 3 {
		t.Fatalf("at rev 3: %+v", kv)
	}
	s.Close()

	s = openTest(t, dir)
	defer s.Close()
	if s.Rev() != 8 {
		t.Fatalf("reopened at revision %d, want 8", s.Rev())
	}
	if kv, _ := get(t, s, "k", 3); string(kv.Value) != `{"v":2}` {
		t.Fatalf("after reopen at rev 2: %+v", kv)
	}
	if _, ok := get(t, s, "other", 0); ok {
		t.Fatal("deleted key came back")
	}
	if rev := put(t, s, "k", `{"v":6}`); rev != 9 {
		t.Fatalf("next revision %d", rev)
	}
	if err := s.Compact(context.Background(), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Range([]byte("k"), RangeOptions{Rev: 4}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below compaction: %v", err)
	}
	if kv, _ := get(t, s, "k", 5); string(kv.Value) != `{"v":4}` {
		t.Fatalf("at compaction revision: %+v", kv)
	}
	evs, err := s.Events(5, 100, 100)
	if err != nil || len(evs) != 5 || evs[0].KV.ModRevision != 5 {
		t.Fatalf("events from 4: %d %v", len(evs), err)
	}
	if evs[1].PrevKV == nil || string(evs[1].PrevKV.Value) != `{"v":4}` {
		t.Fatalf("prev of rev 5: %+v", evs[1].PrevKV)
	}
}

func TestLeases(t *testing.T) {
	now := time.Unix(1000, 0)
	cfg := DefaultConfig()
	cfg.InMemory, cfg.Site = true, "test"
	cfg.LeaseCheckInterval = 10 * time.Millisecond
	clock := make(chan time.Time, 1)
	clock <- now
	cfg.Now = func() time.Time { t := <-clock; clock <- t; return t }
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, ttl, err := s.GrantLease(context.Background(), 0, 1)
	if err != nil || ttl != 2 {
		t.Fatalf("grant: ttl %d err %v", ttl, err)
	}
	if _, err := s.Update(context.Background(), func(tx *WriteTxn) error { return tx.Put([]byte("a"), []byte("1"), id) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), func(tx *WriteTxn) error { return tx.Put([]byte("b"), []byte("1"), 42) }); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("put with unknown lease: %v", err)
	}
	st, err := s.LeaseTimeToLive(id, true)
	if err != nil || len(st.Keys) != 1 || st.Remaining != 2 {
		t.Fatalf("ttl: %+v %v", st, err)
	}
	<-clock
	clock <- now.Add(3 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := get(t, s, "a", 0); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.LeaseTimeToLive(id, false); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("expired lease still there: %v", err)
	}
}

// TestRangeKeysOnly checks that a keys-only range, made from the index alone,
// says what a full range says of every key but its value and lease: at the
// newest revision, at an older one, with a limit, and inside a write that has
// changed keys it has not yet made durable.
func TestRangeKeysOnly(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	lease, _, err := s.GrantLease(ctx, 0, 60)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := s.Update(ctx, func(tx *WriteTxn) error {
			return tx.Put(fmt.Appendf(nil, "k%d", i%4), fmt.Appendf(nil, `{"v":%d}`, i), lease)
		}); err != nil {
			t.Fatal(err)
		}
	}
	middle := s.Rev() - 2
	put(t, s, "k9", `{"v":9}`)
	same := func(r ReadView, opts RangeOptions) {
		t.Helper()
		full, err := r.Range([]byte("k"), opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.KeysOnly = true
		keys, err := r.Range([]byte("k"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(full.KVs) == 0 || len(keys.KVs) != len(full.KVs) || keys.Count != full.Count || keys.Rev != full.Rev {
			t.Fatalf("%+v: keys-only %d KVs of %d at %d, full %d of %d at %d", opts, len(keys.KVs), keys.Count, keys.Rev, len(full.KVs), full.Count, full.Rev)
		}
		for i, kv := range full.KVs {
			kv.Value, kv.Lease = nil, 0
			if got := keys.KVs[i]; fmt.Sprint(got) != fmt.Sprint(kv) {
				t.Fatalf("%+v: keys-only %+v, full %+v", opts, got, kv)
			}
		}
	}
	end := []byte("l")
	same(s.Read(), RangeOptions{End: end})
	same(s.Read(), RangeOptions{End: end, Rev: middle})
	same(s.Read(), RangeOptions{End: end, Limit: 2})
	if _, err := s.Update(ctx, func(tx *WriteTxn) error {
		if err := tx.Put([]byte("k1"), []byte(`{"v":10}`), 0); err != nil {
			return err
		}
		same(tx, RangeOptions{End: end})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
