package checker

import "sync"

// visitedShards must be a power of two; 256 keeps lock contention negligible
// for the handful of cores this runs on.
const visitedShards = 256

// visited is a sharded open-addressing hash set of fingerprints that also
// remembers, per fingerprint, the fingerprint it was first reached from. That
// parent link is all a counterexample needs: the path is rebuilt by replay.
type visited struct {
	shards [visitedShards]shard
}

// slot keeps a fingerprint next to its parent, so that an insert touches one
// cache line.
type slot struct {
	key    uint64 // 0 marks an empty slot; fingerprints are never 0
	parent uint64
}

type shard struct {
	mu    sync.Mutex
	slots []slot
	n     int
	_     [24]byte // keep hot shards on separate cache lines
}

func newVisited() *visited {
	v := &visited{}
	for i := range v.shards {
		v.shards[i].slots = make([]slot, 1024)
	}
	return v
}

// normFP maps the reserved empty marker to another value.
func normFP(fp uint64) uint64 {
	if fp == 0 {
		return 1
	}
	return fp
}

// insert adds fp with its parent and reports whether fp was new.
func (v *visited) insert(fp, parent uint64) bool {
	s := &v.shards[fp>>56&(visitedShards-1)]
	s.mu.Lock()
	if (s.n+1)*2 > len(s.slots) {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch s.slots[i].key {
		case fp:
			s.mu.Unlock()
			return false
		case 0:
			s.slots[i] = slot{key: fp, parent: parent}
			s.n++
			s.mu.Unlock()
			return true
		}
	}
}

func (s *shard) grow() {
	old := s.slots
	s.slots = make([]slot, len(old)*2)
	mask := uint64(len(s.slots) - 1)
	for _, e := range old {
		if e.key == 0 {
			continue
		}
		i := e.key & mask
		for s.slots[i].key != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = e
	}
}

// parent returns the fingerprint fp was first reached from (0 for initial
// states) and whether fp is known.
func (v *visited) parent(fp uint64) (uint64, bool) {
	s := &v.shards[fp>>56&(visitedShards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	mask := uint64(len(s.slots) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch s.slots[i].key {
		case fp:
			return s.slots[i].parent, true
		case 0:
			return 0, false
		}
	}
}

func (v *visited) len() uint64 {
	var n uint64
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		n += uint64(s.n)
		s.mu.Unlock()
	}
	return n
}

// pathTo follows parent links back from fp to an initial state.
func (v *visited) pathTo(fp uint64) []uint64 {
	var rev []uint64
	for fp != 0 && len(rev) < 1<<20 {
		rev = append(rev, fp)
		p, ok := v.parent(fp)
		if !ok {
			break
		}
		fp = p
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}
