package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// releaseTablePages drops the pages of the memory mappings of db's tables in
// dir from the process's resident memory (see tablepages.go). dir must be
// the absolute path the kernel shows (resolvedDir). It returns the bytes of
// mappings released.
func releaseTablePages(db *badger.DB, dir string) (int64, error) {
	var released int64
	err := heldTables(db, func(held map[uint64]bool) error {
		maps, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(maps))
		for sc.Scan() {
			start, end, path, ok := parseMapsLine(sc.Text())
			if !ok || filepath.Dir(path) != dir {
				continue
			}
			if id, ok := tableID(filepath.Base(path)); !ok || !held[id] {
				continue
			}
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_DONTNEED); errno != 0 {
				return fmt.Errorf("madvise %s: %w", path, errno)
			}
			released += int64(end - start)
		}
		return sc.Err()
	})
	if err != nil {
		return released, fmt.Errorf("store: release table pages: %w", err)
	}
	return released, nil
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
