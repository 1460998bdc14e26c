package k8s

import (
	"sync"
	"sync/atomic"
)

// A run meets few distinct objects, documents and controller-state vectors
// (hundreds to thousands) but millions of states built from them, so the
// compact frontier encoding (codec.go) names them by small ids. An internTable
// hands out those ids: the same value always gets the same id, and a value
// is stored once, for the life of the Model.

const (
	internShards    = 64
	internChunkBits = 10
	internChunk     = 1 << internChunkBits
)

type internEntry[T any] struct {
	v   T
	h   uint64 // the value's hash, the table key
	aux uint64 // a second value the owner keeps beside it
}

type internShard struct {
	mu   sync.Mutex
	ids  map[uint64]uint32 // hash -> first id with that hash
	coll []uint32          // later ids whose hash was already taken
	_    [32]byte
}

// internTable is safe for concurrent use. Ids start at 1; 0 means "no id".
// Values live in fixed chunks that never move; a reader finds a chunk
// through the current directory, which is replaced (never changed) when it
// fills up.
type internTable[T any] struct {
	eq     func(a, b *T) bool
	own    func(v T) T // copies what v refers to (nil: v is a plain value)
	shards [internShards]internShard
	grow   sync.Mutex
	n      atomic.Uint32
	dir    atomic.Pointer[[]*[internChunk]internEntry[T]]
}

func newInternTable[T any](eq func(a, b *T) bool, own func(T) T) *internTable[T] {
	t := &internTable[T]{eq: eq, own: own}
	for i := range t.shards {
		t.shards[i].ids = map[uint64]uint32{}
	}
	dir := make([]*[internChunk]internEntry[T], 1, 16)
	dir[0] = new([internChunk]internEntry[T])
	t.dir.Store(&dir)
	return t
}

// get returns the entry of id, which must have been handed out by id (any
// goroutine that learnt id did so after the entry was written).
func (t *internTable[T]) get(id uint32) *internEntry[T] {
	return &(*t.dir.Load())[id>>internChunkBits][id&(internChunk-1)]
}

// valid reports whether id names a stored value.
func (t *internTable[T]) valid(id uint32) bool { return id != 0 && id <= t.n.Load() }

// id returns the id of v, whose hash is h, storing v (with aux) if it is new.
func (t *internTable[T]) id(v *T, h, aux uint64) uint32 {
	s := &t.shards[h%internShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	first, ok := s.ids[h]
	if ok {
		if e := t.get(first); t.eq(&e.v, v) {
			return first
		}
		for _, id := range s.coll {
			if e := t.get(id); e.h == h && t.eq(&e.v, v) {
				return id
			}
		}
	}
	id := t.n.Add(1)
	if c := int(id >> internChunkBits); c >= len(*t.dir.Load()) {
		t.grow.Lock()
		for c >= len(*t.dir.Load()) {
			dir := append(*t.dir.Load(), new([internChunk]internEntry[T]))
			t.dir.Store(&dir)
		}
		t.grow.Unlock()
	}
	e := internEntry[T]{v: *v, h: h, aux: aux}
	if t.own != nil {
		e.v = t.own(e.v)
	}
	*t.get(id) = e
	if ok {
		s.coll = append(s.coll, id)
	} else {
		s.ids[h] = id
	}
	return id
}
