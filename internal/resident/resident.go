package resident

import (
	"strconv"
	"strings"
)

// Range is the address range [Start, End) of one memory mapping, or of
// adjacent ones.
type Range struct{ Start, End uintptr }

// Len is the range's length in bytes.
func (r Range) Len() uintptr { return r.End - r.Start }

// Mapping is one line of /proc/PID/maps: a range, its permissions ("r-xp"),
// and the path of the file it maps ("" for an anonymous mapping).
type Mapping struct {
	Range
	Perms string
	Path  string
}

// ReadOnly reports whether the mapping cannot be written: its pages are the
// file's, never the process's own.
func (m Mapping) ReadOnly() bool { return !strings.Contains(m.Perms, "w") }

// ParseMapsLine reads a line of /proc/PID/maps, "start-end perms offset dev
// inode path", the path absent for anonymous mappings. ok is false for a line
// of another form.
func ParseMapsLine(line string) (m Mapping, ok bool) {
	rng, rest, _ := strings.Cut(line, " ")
	lo, hi, found := strings.Cut(rng, "-")
	if !found {
		return Mapping{}, false
	}
	rest = strings.TrimLeft(rest, " ")
	m.Perms, rest, _ = strings.Cut(rest, " ")
	for range 3 { // offset, dev, inode
		rest = strings.TrimLeft(rest, " ")
		_, rest, _ = strings.Cut(rest, " ")
	}
	m.Path = strings.TrimLeft(rest, " ")
	s, err1 := strconv.ParseUint(lo, 16, 64)
	e, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return Mapping{}, false
	}
	m.Start, m.End = uintptr(s), uintptr(e)
	return m, true
}

// AppendRange adds r to runs, ranges seen so far in address order (as
// /proc/self/maps lists mappings), joining it to the last when they are
// adjacent, so one call can advise a run of mappings.
func AppendRange(runs []Range, r Range) []Range {
	if n := len(runs); n > 0 && runs[n-1].End == r.Start {
		runs[n-1].End = r.End
		return runs
	}
	return append(runs, r)
}
