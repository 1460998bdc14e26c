package resident

import (
	"fmt"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Mapping
		ok   bool
	}{
		{"00400000-00452000 r-xp 00000000 fd:01 1234   /usr/bin/rhizome",
			Mapping{Range{0x400000, 0x452000}, "r-xp", "/usr/bin/rhizome"}, true},
		{"7f0000000000-7f0000001000 rw-p 00000000 00:00 0", Mapping{Range{0x7f0000000000, 0x7f0000001000}, "rw-p", ""}, true},
		{"7ffd0000-7ffd1000 r--p 00000000 00:00 0                          [vvar]", Mapping{Range{0x7ffd0000, 0x7ffd1000}, "r--p", "[vvar]"}, true},
		{"00400000-00452000 r-xp 00000000 fd:01 1234 /tmp/a b (deleted)", Mapping{Range{0x400000, 0x452000}, "r-xp", "/tmp/a b (deleted)"}, true},
		{"garbage", Mapping{}, false},
		{"2000-1000 r--p 0 0:0 0 /x", Mapping{}, false},
	} {
		got, ok := ParseMapsLine(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseMapsLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	if (Mapping{Perms: "r-xp"}).ReadOnly() != true || (Mapping{Perms: "rw-p"}).ReadOnly() != false {
		t.Error("ReadOnly misreads the permissions")
	}
}

// TestAppendRangeJoinsAdjacent checks that mappings are advised in runs of
// adjacent ones only: a gap (another mapping, or none) ends a run.
func TestAppendRangeJoinsAdjacent(t *testing.T) {
	var runs []Range
	for _, r := range []Range{{0x1000, 0x3000}, {0x3000, 0x4000}, {0x5000, 0x6000}, {0x6000, 0x9000}, {0xa000, 0xb000}} {
		runs = AppendRange(runs, r)
	}
	want := []Range{{0x1000, 0x4000}, {0x5000, 0x9000}, {0xa000, 0xb000}}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Fatalf("runs %x, want %x", runs, want)
	}
}
