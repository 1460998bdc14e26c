package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// releaseTablePages drops the pages of the memory mappings of db's tables in
// dir from the process's resident memory (see tablepages.go). dir must be
// the absolute path the kernel shows (resolvedDir). It returns the bytes of
// mappings released.
//
// Each madvise that clears pages makes the kernel flush the other CPUs' TLBs
// (an interrupt to each, costly in a virtual machine: 5.6 % of a store's CPU
// under pod updates went to those flushes, one per table, every release). So
// the mappings are released in runs of adjacent ones (the kernel mostly places
// a new mapping next to the last), all in one call where the kernel allows
// (dontNeed).
func releaseTablePages(db *badger.DB, dir string) (int64, error) {
	var released int64
	err := heldTables(db, func(held map[uint64]bool) error {
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return err
		}
		var runs []mapRange
		sc := bufio.NewScanner(bytes.NewReader(maps))
		for sc.Scan() {
			start, end, path, ok := parseMapsLine(sc.Text())
			if !ok || filepath.Dir(path) != dir {
				continue
			}
			if id, ok := tableID(filepath.Base(path)); !ok || !held[id] {
				continue
			}
			runs = appendRange(runs, mapRange{start, end})
			released += int64(end - start)
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return dontNeed(runs)
	})
	if err != nil {
		return released, fmt.Errorf("store: release table pages: %w", err)
	}
	return released, nil
}

// dontNeed drops the pages of runs from the process's page tables: with
// process_madvise(2) on the process itself, 1024 runs a call, which Linux
// allows since 6.13 and whose TLB flushes it batches into one per call since
// 6.16; else, or if that fails, with one madvise(2) a run (dropping pages
// twice is harmless: they are clean, and stay in the page cache).
func dontNeed(runs []mapRange) error {
	if processDontNeed(runs) == nil {
		return nil
	}
	for _, r := range runs {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise %#x-%#x: %w", r.start, r.end, errno)
		}
	}
	return nil
}

// iovec is the kernel's struct iovec.
type iovec struct{ base, len uintptr }

// processDontNeed is dontNeed by process_madvise(2).
func processDontNeed(runs []mapRange) error {
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	const maxIov = 1024 // UIO_MAXIOV
	iov := make([]iovec, 0, min(len(runs), maxIov))
	for len(runs) > 0 {
		n := min(len(runs), maxIov)
		iov = iov[:0]
		var want uintptr
		for _, r := range runs[:n] {
			iov = append(iov, iovec{r.start, r.end - r.start})
			want += r.end - r.start
		}
		done, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n), unix.MADV_DONTNEED, 0, 0)
		if errno != 0 {
			return errno
		}
		if done != want {
			return fmt.Errorf("process_madvise: %d of %d bytes", done, want)
		}
		runs = runs[n:]
	}
	return nil
}

// mapRange is the address range [start, end) of one memory mapping or of
// adjacent ones.
type mapRange struct{ start, end uintptr }

// appendRange adds r to runs, the ranges of the mappings seen so far in
// address order (as /proc/self/maps lists them), joining it to the last when
// they are adjacent.
func appendRange(runs []mapRange, r mapRange) []mapRange {
	if n := len(runs); n > 0 && runs[n-1].end == r.start {
		runs[n-1].end = r.end
		return runs
	}
	return append(runs, r)
}

// parseMapsLine reads a line of /proc/PID/maps: "start-end perms offset dev
// inode path", the path absent for anonymous mappings.
func parseMapsLine(line string) (start, end uintptr, path string, ok bool) {
	rng, rest, _ := strings.Cut(line, " ")
	lo, hi, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, "", false
	}
	for range 4 { // perms, offset, dev, inode
		rest = strings.TrimLeft(rest, " ")
		_, rest, _ = strings.Cut(rest, " ")
	}
	path = strings.TrimLeft(rest, " ")
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s || path == "" {
		return 0, 0, "", false
	}
	return uintptr(s), uintptr(e), path, true
}

// tableID is the ID of badger's table file name ("000123.sst").
func tableID(name string) (uint64, bool) {
	digits, found := strings.CutSuffix(name, ".sst")
	if !found || digits == "" {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// resolvedDir is dir as the kernel names it in /proc/self/maps: absolute,
// symbolic links resolved.
func resolvedDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}
