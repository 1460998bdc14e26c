package resident

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestProcessAdviseDontNeed checks the process_madvise path of DontNeed:
// dropping the pages of a private anonymous mapping zeroes them, so a byte
// written before reads back as zero.
func TestProcessAdviseDontNeed(t *testing.T) {
	const page = 4096
	mem, err := unix.Mmap(-1, 0, 4*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[0], mem[3*page] = 1, 1
	start := uintptr(unsafe.Pointer(&mem[0]))
	err = processAdvise([]Range{{start, start + page}, {start + 3*page, start + 4*page}}, unix.MADV_DONTNEED)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("this kernel does not let a process advise itself MADV_DONTNEED by process_madvise (Linux 6.13): %v; DontNeed falls back to madvise", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if mem[0] != 0 || mem[3*page] != 0 {
		t.Fatalf("pages kept their contents: %d %d", mem[0], mem[3*page])
	}
}

// TestReleaseExecutable pages out this test binary's code and read-only data
// while it runs: its resident pages fall, it reports what it released, and
// the process goes on running code (this test's own, the runtime's) and
// reading data from the pages it evicted.
func TestReleaseExecutable(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	ofExe := func(m Mapping) bool { return m.Path == exe && m.ReadOnly() }
	before, err := Bytes(ofExe)
	if err != nil {
		t.Fatal(err)
	}
	if before == 0 {
		t.Fatalf("none of %s is resident", exe)
	}
	released, err := ReleaseExecutable()
	if err != nil {
		t.Fatal(err)
	}
	after, err := Bytes(ofExe)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d KiB resident, %d KiB released, %d KiB after (and what this test touched since)", exe, before>>10, released>>10, after>>10)
	if released <= 0 || after >= before {
		t.Fatalf("released %d bytes: %d resident before, %d after", released, before, after)
	}
	// Code and read-only data come back from the file.
	if _, ok := ParseMapsLine("00400000-00452000 r-xp 00000000 fd:01 1 /x"); !ok {
		t.Fatal("ParseMapsLine failed after the release")
	}
	if maps, err := Mappings(ofExe); err != nil || len(maps) == 0 {
		t.Fatalf("after the release: %d mappings of %s, %v", len(maps), exe, err)
	}
}
