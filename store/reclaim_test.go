package store

import (
	"testing"
	"time"
)

// TestIdleSchedule checks when an idle store returns memory: at 2, 4, 8, 16
// and 32 s without a write, never again until the next write, and the count
// starts over after one.
func TestIdleSchedule(t *testing.T) {
	want := map[time.Duration]bool{2 * time.Second: true, 4 * time.Second: true,
		8 * time.Second: true, 16 * time.Second: true, 32 * time.Second: true}
	for round, rev := range []int64{7, 9} {
		s := newIdleSchedule(5)
		if round > 0 {
			s.due(6) // a write after some idle time
		}
		if s.due(rev) {
			t.Fatalf("round %d: due at the tick that saw a write", round)
		}
		for idle := reclaimIdle; idle <= 2*time.Minute; idle += reclaimIdle {
			if got := s.due(rev); got != want[idle] {
				t.Fatalf("round %d: due after %v idle = %v, want %v", round, idle, got, want[idle])
			}
		}
	}
}

// TestTableReleases checks when the tables' pages are dropped while writes go
// on: only after writes, and only once a table was built since the last drop.
func TestTableReleases(t *testing.T) {
	r := tableReleases{rev: 10, newest: 3}
	for i, tick := range []struct {
		rev    int64
		newest uint64
		want   bool
	}{
		{10, 3, false}, // nothing happened
		{12, 3, false}, // writes, no table built: reads' pages stay
		{12, 4, true},  // a flush
		{12, 5, false}, // a compaction, no write since: the idle schedule's
		{13, 5, true},
		{14, 5, false},
		{15, 7, true},
	} {
		if got := r.due(tick.rev, tick.newest); got != tick.want {
			t.Fatalf("tick %d (rev %d, newest table %d): due = %v, want %v", i, tick.rev, tick.newest, got, tick.want)
		}
	}
}
