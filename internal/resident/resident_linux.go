package resident

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mappings returns the process's memory mappings that match keeps, in address
// order.
func Mappings(keep func(Mapping) bool) ([]Mapping, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("resident: %w", err)
	}
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		if m, ok := ParseMapsLine(sc.Text()); ok && keep(m) {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resident: /proc/self/maps: %w", err)
	}
	return out, nil
}

// Bytes sums the resident pages (smaps' Rss) of the process's mappings that
// keep keeps.
func Bytes(keep func(Mapping) bool) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("resident: %w", err)
	}
	defer f.Close()
	var total int64
	counted := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if field, _, _ := strings.Cut(line, " "); !strings.HasSuffix(field, ":") {
			m, ok := ParseMapsLine(line) // a mapping's first line
			counted = ok && keep(m)
			continue
		}
		if kb, found := strings.CutPrefix(line, "Rss:"); found && counted {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(kb, "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("resident: smaps: %q: %w", line, err)
			}
			total += n << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("resident: /proc/self/smaps: %w", err)
	}
	return total, nil
}

// DontNeed drops the pages of runs from the process's page tables. For a
// shared file mapping they stay in the page cache (and a later touch maps
// them again); a private anonymous mapping's read back as zeros.
//
// Each madvise that clears pages makes the kernel flush the other CPUs' TLBs
// (an interrupt to each, costly in a virtual machine), so it advises all runs
// in one process_madvise(2) call per 1024 where the kernel allows (Linux 6.13
// for MADV_DONTNEED; it batches the flushes into one per call since 6.16),
// else, or if that fails, one madvise(2) a run (dropping pages twice is
// harmless).
func DontNeed(runs []Range) error { return advise(runs, unix.MADV_DONTNEED) }

// PageOut asks the kernel to reclaim the pages of runs now: a file page only
// this process maps, that is clean and whose file the process owns or may
// write, leaves the page cache (the next touch reads it from the file again);
// others are left as they are (Linux 5.4, process_madvise 5.10).
func PageOut(runs []Range) error { return advise(runs, unix.MADV_PAGEOUT) }

func advise(runs []Range, advice int) error {
	if len(runs) == 0 || processAdvise(runs, advice) == nil {
		return nil
	}
	for _, r := range runs {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.Start, r.Len(), uintptr(advice)); errno != 0 {
			return fmt.Errorf("resident: madvise %#x-%#x: %w", r.Start, r.End, errno)
		}
	}
	return nil
}

// iovec is the kernel's struct iovec.
type iovec struct{ base, len uintptr }

// processAdvise is advise by process_madvise(2) on the process itself.
func processAdvise(runs []Range, advice int) error {
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
			iov = append(iov, iovec{r.Start, r.Len()})
			want += r.Len()
		}
		done, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n), uintptr(advice), 0, 0)
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

// ReleaseExecutable pages out the read-only mappings of the process's own
// executable (its code and read-only data; see the package comment) and
// returns the resident bytes that released. It syncs the file first: a binary
// just built can still be dirty in the page cache, and reclaim leaves dirty
// pages where they are.
//
// Call it once the process has started up: the pages evicted that are still
// in use are read from the file again at their next touch (a major fault),
// one page at a time (read-ahead is turned off for these mappings), a cost
// paid once, like a cold start's.
func ReleaseExecutable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("resident: %w", err)
	}
	if f, err := os.Open("/proc/self/exe"); err == nil {
		f.Sync() // nothing to do for a file already written back; best effort
		f.Close()
	}
	ofExe := func(m Mapping) bool { return m.Path == exe && m.ReadOnly() }
	before, err := Bytes(ofExe)
	if err != nil {
		return 0, err
	}
	maps, err := Mappings(ofExe)
	if err != nil {
		return 0, err
	}
	var runs []Range
	for _, m := range maps {
		runs = AppendRange(runs, m.Range)
	}
	// No read-ahead: a page touched later is read alone, not with the 128
	// KiB around it (what is read is mapped whole: 29 instead of 19 MiB
	// resident after 50,000 pod writes and updates).
	for _, r := range runs {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.Start, r.Len(), unix.MADV_RANDOM); errno != 0 {
			return 0, fmt.Errorf("resident: madvise %#x-%#x random: %w", r.Start, r.End, errno)
		}
	}
	if err := PageOut(runs); err != nil {
		return 0, err
	}
	after, err := Bytes(ofExe)
	if err != nil {
		return 0, err
	}
	return before - after, nil
}
