package crdt

import (
	"fmt"
	"strings"
)

// Stamp orders writes across sites: a Lamport counter, ties broken by site name.
// A write that causally follows another always carries a greater Counter.
type Stamp struct {
	Counter uint64
	Site    string
}

// Compare returns -1, 0 or +1 as a orders before, equal to or after b.
func (a Stamp) Compare(b Stamp) int {
	switch {
	case a.Counter < b.Counter:
		return -1
	case a.Counter > b.Counter:
		return 1
	}
	return strings.Compare(a.Site, b.Site)
}

// IsZero reports whether the stamp names no write.
func (a Stamp) IsZero() bool { return a.Counter == 0 && a.Site == "" }

func (a Stamp) String() string { return fmt.Sprintf("%d@%s", a.Counter, a.Site) }
