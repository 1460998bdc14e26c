package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestQuota fills a store past a small quota: the write that would cross it raises
// the NOSPACE alarm and is refused, as is every write that adds data while the
// alarm holds; reads and deletes go on, nothing acknowledged is lost, the alarm
// survives a restart, and deleting, compacting, defragmenting and disarming make
// writes work again.
func TestQuota(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site = dir, "test"
	cfg.SizeCheckInterval = 10 * time.Millisecond
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QuotaBackendBytes = s.Size() + 2<<20
	s.Close()
	if s, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()

	value := bytes.Repeat([]byte("v"), 16<<10)
	putQuota := func(k string, v []byte) (int64, error) {
		return s.Update(ctx, func(tx *WriteTxn) error {
			if err := tx.Reserve(int64(256 + len(k) + len(v))); err != nil {
				return err
			}
			return tx.Put([]byte(k), v, 0)
		})
	}
	var acked []string
	for i := 0; ; i++ {
		k := fmt.Sprintf("k%04d", i)
		_, err := putQuota(k, value)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil || i > 2000 {
			t.Fatalf("put %d: %v (size %d, quota %d)", i, err, s.Size(), s.Quota())
		}
		acked = append(acked, k)
	}
	if !s.NoSpace() || len(acked) == 0 {
		t.Fatalf("alarm %v after %d puts", s.NoSpace(), len(acked))
	}
	if _, err := putQuota("small", []byte("x")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("small put under the alarm: %v", err)
	}
	if _, _, err := s.GrantLease(ctx, 0, 60); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("lease grant under the alarm: %v", err)
	}
	checkAcked := func() {
		t.Helper()
		res, err := s.Range([]byte("k"), RangeOptions{End: []byte("l"), CountOnly: true})
		if err != nil || res.Count != len(acked) {
			t.Fatalf("%d keys read (%v), %d acknowledged", res.Count, err, len(acked))
		}
	}
	checkAcked()
	s.Close()
	if s, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	if !s.NoSpace() {
		t.Fatal("the alarm did not survive a restart")
	}
	checkAcked()

	rev, err := s.Update(ctx, func(tx *WriteTxn) error { _, err := tx.DeleteRange([]byte("k"), []byte("l")); return err })
	if err != nil {
		t.Fatalf("delete under the alarm: %v", err)
	}
	if err := s.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.Defragment(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Size() >= s.Quota() {
		t.Fatalf("after delete, compact and defragment: size %d, quota %d", s.Size(), s.Quota())
	}
	if _, err := putQuota("small", []byte("x")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put before the alarm is disarmed: %v", err)
	}
	if was, err := s.DisarmNoSpace(); !was || err != nil {
		t.Fatalf("disarm: %v %v", was, err)
	}
	if _, err := putQuota("small", []byte("x")); err != nil {
		t.Fatalf("put after disarming: %v", err)
	}
}
