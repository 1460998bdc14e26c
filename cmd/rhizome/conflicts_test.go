package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/site"
)

// TestPrintConflicts checks the table `rhizome conflicts` prints: a row per
// conflict with its sites, time and detail (an allocation repair says what
// was held twice), "unknown" for records without a time.
func TestPrintConflicts(t *testing.T) {
	var b strings.Builder
	printConflicts(&b, []site.Conflict{
		{Key: "/registry/services/specs/default/b", Kind: "allocation", Winner: "3@a", Loser: "4@b",
			Sites: []string{"a", "b"}, Time: time.Date(2026, 12, 5, 16, 0, 0, 0, time.UTC),
			Detail: "ClusterIP 10.0.0.10 held twice: reallocated 10.0.0.11"},
		{Key: "/k", Kind: "concurrent-create", Winner: "1@b", Loser: "1@a", Sites: []string{"b", "a"}},
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "DETAIL") {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, want := range [][]string{
		{"/registry/services/specs/default/b", "allocation", "a,b", "2026-12-05T16:00:00Z", "ClusterIP 10.0.0.10 held twice: reallocated 10.0.0.11"},
		{"/k", "concurrent-create", "b,a", "unknown"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}
	b.Reset()
	if printConflicts(&b, nil); b.String() != "no conflicts recorded\n" {
		t.Errorf("no conflicts: %q", b.String())
	}
}
