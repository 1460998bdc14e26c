package peer

import (
	"maps"
	"time"
)

// vvLog remembers when this site's version vector reached which values, so that
// how far a peer is behind can be told in seconds: since when this site has held a
// change the peer still lacks. It holds at most max samples: when full, every other
// one is dropped (the oldest stays), so old history coarsens but a lag is never
// under-reported by more than the gap between two samples. Not safe for concurrent
// use.
type vvLog struct {
	max int
	// merge is how close two samples may be: a vector newer than the last
	// sample by less replaces its vector and keeps its time (the lag is then
	// over-reported by less than merge rather than under-reported).
	merge   time.Duration
	samples []vvSample
}

type vvSample struct {
	at time.Time
	vv map[string]uint64
}

// add records that the site held vv at time at (times must not decrease).
func (l *vvLog) add(at time.Time, vv map[string]uint64) {
	n := len(l.samples)
	switch {
	case n > 0 && maps.Equal(l.samples[n-1].vv, vv):
		return
	case n > 0 && at.Sub(l.samples[n-1].at) < l.merge:
		l.samples[n-1].vv = maps.Clone(vv)
		return
	case n >= l.max:
		kept := l.samples[:0]
		for i := 0; i < n; i += 2 {
			kept = append(kept, l.samples[i])
		}
		l.samples = kept
	}
	l.samples = append(l.samples, vvSample{at: at, vv: maps.Clone(vv)})
}

// since returns the time of the oldest sample holding a change that a site holding
// row lacks (changes of origin self excepted: its own); false if there is none.
func (l *vvLog) since(self string, row map[string]uint64) (time.Time, bool) {
	for _, s := range l.samples {
		if lacking(row, s.vv, self) > 0 {
			return s.at, true
		}
	}
	return time.Time{}, false
}
