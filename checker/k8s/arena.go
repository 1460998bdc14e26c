package k8s

import "github.com/rhizome-kv/rhizome/checker/consistency"

// arena hands out the parts of short-lived states from reusable blocks. In
// a compact BFS (codec.go) a decoded state lives until the next decode, and
// a successor only until the checker has fingerprinted, checked and encoded
// it, so a worker can build them all in the same few blocks instead of
// allocating a kilobyte per state from the heap. A nil *arena allocates
// from the heap, which is what every other caller gets.
type arena struct {
	states block[State]
	snaps  block[Snapshot]
	objs   block[Object]
	ids    block[uint32]
	ptrs   block[*Snapshot]
	par    block[int32]
	locs   block[Local]
	reps   block[Replica]
	repPtr block[*Replica]
	docBlk block[consistency.Doc]
}

// block is a bump allocator. Memory handed out before reset stays valid
// until the next reset; a block that runs out is replaced by a larger one
// (what was handed out from the old one stays where it is).
type block[T any] struct {
	buf []T
	n   int
}

// take returns n elements with whatever they held before: callers
// overwrite them.
func (b *block[T]) take(n int) []T {
	if b.n+n > len(b.buf) {
		b.buf = make([]T, max(2*len(b.buf), 4*n, 64))
		b.n = 0
	}
	s := b.buf[b.n : b.n+n : b.n+n]
	b.n += n
	return s
}

// reset makes every element handed out so far available again.
func (a *arena) reset() {
	a.states.n, a.snaps.n, a.objs.n, a.ids.n, a.ptrs.n, a.par.n, a.locs.n = 0, 0, 0, 0, 0, 0, 0
	a.reps.n, a.repPtr.n, a.docBlk.n = 0, 0, 0
}

func (a *arena) replica() *Replica {
	if a == nil {
		return new(Replica)
	}
	return &a.reps.take(1)[0]
}

func (a *arena) replicas(n int) []*Replica {
	if a == nil {
		return make([]*Replica, n)
	}
	return a.repPtr.take(n)
}

func (a *arena) docs(n int) []consistency.Doc {
	if a == nil {
		return make([]consistency.Doc, n)
	}
	return a.docBlk.take(n)
}

func (a *arena) state() *State {
	if a == nil {
		return new(State)
	}
	return &a.states.take(1)[0]
}

func (a *arena) snapshot() *Snapshot {
	if a == nil {
		return new(Snapshot)
	}
	return &a.snaps.take(1)[0]
}

func (a *arena) objects(n int) []Object {
	if a == nil {
		return make([]Object, n)
	}
	return a.objs.take(n)
}

func (a *arena) uint32s(n int) []uint32 {
	if a == nil {
		return make([]uint32, n)
	}
	return a.ids.take(n)
}

func (a *arena) snapshots(n int) []*Snapshot {
	if a == nil {
		return make([]*Snapshot, n)
	}
	return a.ptrs.take(n)
}

func (a *arena) int32s(n int) []int32 {
	if a == nil {
		return make([]int32, n)
	}
	return a.par.take(n)
}

func (a *arena) locals(n int) []Local {
	if a == nil {
		return make([]Local, n)
	}
	return a.locs.take(n)
}

// clone starts a successor of s.
func (a *arena) clone(s *State) *State {
	n := a.state()
	*n = *s
	return n
}

// appendSnapshot returns vs with v appended, in new memory (vs is shared).
func (a *arena) appendSnapshot(vs []*Snapshot, v *Snapshot) []*Snapshot {
	out := a.snapshots(len(vs) + 1)
	copy(out, vs)
	out[len(vs)] = v
	return out
}

// appendInt32 returns ps with p appended, in new memory (ps is shared).
func (a *arena) appendInt32(ps []int32, p int32) []int32 {
	out := a.int32s(len(ps) + 1)
	copy(out, ps)
	out[len(ps)] = p
	return out
}
