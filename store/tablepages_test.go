//go:build linux

package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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
// table files in dir (/proc/self/smaps).
func residentTableBytes(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if field, _, _ := strings.Cut(line, " "); !strings.HasSuffix(field, ":") {
			// A mapping's first line; anonymous ones have no path.
			_, _, path, ok := parseMapsLine(line)
			_, isTable := tableID(filepath.Base(path))
			inTable = ok && isTable && filepath.Dir(path) == dir
			continue
		}
		if kb, found := strings.CutPrefix(line, "Rss:"); found && inTable {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(kb, "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += n << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestAppendRangeJoinsAdjacent checks that mappings are released in runs of
// adjacent ones only: a gap (another mapping, or none) ends a run.
func TestAppendRangeJoinsAdjacent(t *testing.T) {
	var runs []mapRange
	for _, r := range []mapRange{{0x1000, 0x3000}, {0x3000, 0x4000}, {0x5000, 0x6000}, {0x6000, 0x9000}, {0xa000, 0xb000}} {
		runs = appendRange(runs, r)
	}
	want := []mapRange{{0x1000, 0x4000}, {0x5000, 0x9000}, {0xa000, 0xb000}}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Fatalf("runs %x, want %x", runs, want)
	}
}

// TestProcessDontNeed checks the process_madvise path of dontNeed: dropping
// the pages of a private anonymous mapping zeroes them, so a byte written
// before reads back as zero.
func TestProcessDontNeed(t *testing.T) {
	const page = 4096
	mem, err := unix.Mmap(-1, 0, 4*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[0], mem[3*page] = 1, 1
	start := uintptr(unsafe.Pointer(&mem[0]))
	err = processDontNeed([]mapRange{{start, start + page}, {start + 3*page, start + 4*page}})
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("this kernel does not let a process advise itself MADV_DONTNEED by process_madvise (Linux 6.13): %v; dontNeed falls back to madvise", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if mem[0] != 0 || mem[3*page] != 0 {
		t.Fatalf("pages kept their contents: %d %d", mem[0], mem[3*page])
	}
}
