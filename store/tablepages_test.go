//go:build linux

package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/resident"
)

// TestTablePagesReleased: the pages of the tables reads touched are resident
// until releaseTablePages drops them, and every value reads back whole after
// it, and after a reopen, which leaves recovery's pages released.
func TestTablePagesReleased(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.MemoryBudget = t.TempDir(), "test", MinMemoryBudget
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	value := func(i int) string { return strings.Repeat(fmt.Sprintf("value %04d;", i), 1500) }
	const keys = 300
	for i := range keys {
		put(t, s, fmt.Sprintf("k%04d", i), value(i))
	}
	if len(s.db.Tables()) == 0 {
		t.Fatal("no table was flushed")
	}
	dir, err := resolvedDir(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		for i := range keys {
			if kv, ok := get(t, s, fmt.Sprintf("k%04d", i), 0); !ok || string(kv.Value) != value(i) {
				t.Fatalf("%s: k%04d reads %d bytes, want %d", what, i, len(kv.Value), len(value(i)))
			}
		}
	}
	// Reads map the pages they touch (the reclaimer may have released those
	// written meanwhile), once badger's flushes and compactions are done:
	// tables they make or drop meanwhile are not the release's to drop.
	settleTables(t, s)
	check("before the release")
	before := residentTableBytes(t, dir)
	if before < 1<<20 {
		t.Fatalf("only %d bytes of tables resident after writing them", before)
	}
	released, err := releaseTablePages(s.db, dir)
	if err != nil {
		t.Fatal(err)
	}
	after := residentTableBytes(t, dir)
	if released == 0 || after > before/2 {
		t.Fatalf("released %d bytes of mappings: %d resident before, %d after", released, before, after)
	}
	t.Logf("table pages resident: %d bytes before the release, %d after (%d bytes of mappings released)", before, after, released)
	check("after the release")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	// Recovery read every revision record; Open releases those pages
	// before it returns, so a store is small when it starts serving.
	if opened := residentTableBytes(t, dir); opened > before/2 {
		t.Fatalf("%d bytes of tables resident when Open returned (%d after the first writes)", opened, before)
	}
	check("after a reopen")
}

// settleTables waits until the store's tables stay the same for half a second.
func settleTables(t *testing.T, s *Store) {
	t.Helper()
	ids := func() string { return fmt.Sprint(s.db.Tables()) }
	last := ids()
	for range 40 {
		time.Sleep(500 * time.Millisecond)
		now := ids()
		if now == last {
			return
		}
		last = now
	}
	t.Fatal("badger's tables kept changing for 20 s")
}

// residentTableBytes sums the resident pages of this process's mappings of
// table files in dir.
func residentTableBytes(t *testing.T, dir string) int64 {
	t.Helper()
	n, err := resident.Bytes(func(m resident.Mapping) bool {
		_, isTable := tableID(filepath.Base(m.Path))
		return isTable && filepath.Dir(m.Path) == dir
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
