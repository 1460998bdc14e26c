package peer

import (
	"testing"
	"time"
)

func TestVVLog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := vvLog{max: 4, merge: 100 * time.Millisecond}
	for i := range uint64(10) {
		l.add(t0.Add(time.Duration(i)*time.Second), map[string]uint64{"a": i + 1})
	}
	if len(l.samples) > 4 {
		t.Fatalf("%d samples kept, max 4", len(l.samples))
	}
	cases := []struct {
		row   uint64
		want  time.Duration
		found bool
	}{
		{0, 0, true},               // lacks everything: since the first sample, which thinning keeps
		{10, 0, false},             // holds all
		{8, 8 * time.Second, true}, // lacks the 9th and 10th change: the newest samples are kept
	}
	for _, c := range cases {
		at, ok := l.since("b", map[string]uint64{"a": c.row})
		if ok != c.found || ok && at.Sub(t0) > c.want {
			t.Errorf("row a=%d: since %v %v, want %v %v", c.row, at.Sub(t0), ok, c.want, c.found)
		}
	}
	// The site's own changes are never lacked by it.
	if _, ok := l.since("a", nil); ok {
		t.Error("site a lacks its own changes")
	}
	// Samples closer than merge: the later vector, the earlier time.
	m := vvLog{max: 4, merge: time.Second}
	m.add(t0, map[string]uint64{"a": 1})
	m.add(t0.Add(10*time.Millisecond), map[string]uint64{"a": 2})
	if at, ok := m.since("b", map[string]uint64{"a": 1}); !ok || !at.Equal(t0) || len(m.samples) != 1 {
		t.Errorf("merged samples: %v %v (%d samples)", at, ok, len(m.samples))
	}
}
