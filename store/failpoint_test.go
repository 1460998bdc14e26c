package store

import (
	"errors"
	"testing"
)

func TestParseFailpoints(t *testing.T) {
	var crashed []string
	fp, err := ParseFailpoints("commit/after=error@2, sync/apply-remote=crash", func(name string) { crashed = append(crashed, name) })
	if err != nil {
		t.Fatal(err)
	}
	if err := fp(FailpointAfterCommit); err != nil {
		t.Fatalf("first pass of %s: %v, want nil (@2)", FailpointAfterCommit, err)
	}
	if err := fp(FailpointAfterCommit); !errors.Is(err, ErrFailpoint) {
		t.Fatalf("second pass of %s: %v, want ErrFailpoint", FailpointAfterCommit, err)
	}
	if err := fp(FailpointAfterCommit); err != nil {
		t.Fatalf("third pass of %s: %v, want nil", FailpointAfterCommit, err)
	}
	if err := fp(FailpointBeforeCommit); err != nil || len(crashed) != 0 {
		t.Fatalf("a point not in the spec: %v, crashed %v", err, crashed)
	}
	_ = fp(FailpointApplyRemote)
	if len(crashed) != 1 || crashed[0] != FailpointApplyRemote {
		t.Fatalf("crashed at %v, want [%s]", crashed, FailpointApplyRemote)
	}
	for _, bad := range []string{"nosuch=crash", "commit/before", "commit/before=boom", "commit/before=crash@0", "commit/before=crash@x"} {
		if _, err := ParseFailpoints(bad, nil); err == nil {
			t.Errorf("ParseFailpoints(%q) accepted", bad)
		}
	}
}

// TestFailpointStopsStore: an error at a point of the commit path fails that
// commit and every later write; the store reopens with what was durable.
func TestFailpointStopsStore(t *testing.T) {
	for _, point := range []string{FailpointBeforeCommit, FailpointAfterCommit} {
		t.Run(point, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir, cfg.Site = t.TempDir(), "a"
			fp, err := ParseFailpoints(point+"=error@2", nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Failpoint = fp
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, "k1", "v1")
			if _, err := s.Update(t.Context(), func(tx *WriteTxn) error { return tx.Put([]byte("k2"), []byte("v2"), 0) }); !errors.Is(err, ErrFailpoint) {
				t.Fatalf("write at the failpoint: %v, want ErrFailpoint", err)
			}
			if _, err := s.Update(t.Context(), func(tx *WriteTxn) error { return tx.Put([]byte("k3"), []byte("v3"), 0) }); err == nil {
				t.Fatal("a write after the failpoint succeeded: the store did not stop")
			}
			s.Close()
			cfg.Failpoint = nil
			if s, err = Open(cfg); err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer s.Close()
			want := int64(2) // k1 only
			if point == FailpointAfterCommit {
				want = 3 // k2 was durable before the point
			}
			if s.Rev() != want {
				t.Fatalf("revision %d after reopening, want %d", s.Rev(), want)
			}
		})
	}
}
