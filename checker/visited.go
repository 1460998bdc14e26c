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

type shard struct {
	mu      sync.Mutex
	keys    []uint64 // 0 marks an empty slot; fingerprints are never 0
	parents []uint64
	n       int
	_       [24]byte // keep hot shards on separate cache lines
}

func newVisited() *visited {
	v := &visited{}
	for i := range v.shards {
		v.shards[i].keys = make([]uint64, 1024)
		v.shards[i].parents = make([]uint64, 1024)
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
	if (s.n+1)*2 > len(s.keys) {
		s.grow()
	}
	mask := uint64(len(s.keys) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch s.keys[i] {
		case fp:
			s.mu.Unlock()
			return false
		case 0:
			s.keys[i] = fp
			s.parents[i] = parent
			s.n++
			s.mu.Unlock()
			return true
		}
	}
}

func (s *shard) grow() {
	oldK, oldP := s.keys, s.parents
	s.keys = make([]uint64, len(oldK)*2)
	s.parents = make([]uint64, len(oldK)*2)
	mask := uint64(len(s.keys) - 1)
	for j, k := range oldK {
		if k == 0 {
			continue
		}
		i := k & mask
		for s.keys[i] != 0 {
			i = (i + 1) & mask
		}
		s.keys[i] = k
		s.parents[i] = oldP[j]
	}
}

// parent returns the fingerprint fp was first reached from (0 for initial
// states) and whether fp is known.
func (v *visited) parent(fp uint64) (uint64, bool) {
	s := &v.shards[fp>>56&(visitedShards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	mask := uint64(len(s.keys) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		switch s.keys[i] {
		case fp:
			return s.parents[i], true
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
