package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOpenRefusesDamagedTable damages one table of a closed store in different
// places and reopens it: Open must return ErrCorruptData naming the file, not
// panic (badger v4.9.6 does, in a goroutine of its Open, on a damaged data
// block) and not open without the table (badger drops a table whose index
// fails its checksum).
func TestOpenRefusesDamagedTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(n int) (from, to int)
	}{
		{"first block's entries", func(int) (int, int) { return 16, 24 }},
		{"middle half", func(n int) (int, int) { return n / 4, n * 3 / 4 }},
		{"index", func(n int) (int, int) { return n - 64, n - 56 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir)
			for i := range 300 {
				put(t, s, fmt.Sprintf("k%04d", i), strings.Repeat("v", 100))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("closing the store wrote no table")
			}
			b, err := os.ReadFile(ssts[0])
			if err != nil {
				t.Fatal(err)
			}
			from, to := tc.damage(len(b))
			for i := from; i < to; i++ {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(ssts[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Dir, cfg.Site = dir, "test"
			s, err = Open(cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open of a store with %s damaged (%d bytes of %s) succeeded", filepath.Base(ssts[0]), to-from, tc.name)
			}
			if !errors.Is(err, ErrCorruptData) || !strings.Contains(err.Error(), filepath.Base(ssts[0])) {
				t.Fatalf("Open: %v; want ErrCorruptData naming %s", err, filepath.Base(ssts[0]))
			}
			t.Log(err)
		})
	}
}

// BenchmarkReopen fills a store with 20,000 pod-shaped objects (OPEN_OBJECTS
// overrides), closes it, and then reopens it b.N times: it reports how long
// checkTables takes and how long the whole Open does (which includes it).
//
//	go test -run '^$' -bench Reopen -benchtime 5x ./store/
func BenchmarkReopen(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("OPEN_OBJECTS")); err == nil {
		n = v
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site = b.TempDir(), "bench"
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	fillPhase(b, s, n, 0)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var check, open time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := checkTables(badgerOptions(cfg)); err != nil {
			b.Fatal(err)
		}
		check += time.Since(start)
		start = time.Now()
		s, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		open += time.Since(start)
		s.Close()
	}
	b.ReportMetric(float64(check.Milliseconds())/float64(b.N), "check-ms")
	b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "open-ms")
}
