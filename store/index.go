package store

import (
	"bytes"
	"sort"

	"github.com/google/btree"
)

// revision names one change: the store revision and its place within it.
type revision struct {
	main int64
	sub  int32
}

// version is one entry of a key's history.
type version struct {
	rev  revision
	tomb bool
	kv   *KeyValue // cached state; kept for the latest entry and entries not yet durable
}

// keyIndex is a key's history, oldest first, as far back as compaction left it.
type keyIndex struct {
	key      []byte
	versions []version
	lease    int64 // lease the key's live version is attached to
}

// at returns the newest entry at or before rev.
func (ki *keyIndex) at(rev int64) (*version, bool) {
	i := sort.Search(len(ki.versions), func(i int) bool { return ki.versions[i].rev.main > rev })
	if i == 0 {
		return nil, false
	}
	return &ki.versions[i-1], true
}

// live returns the latest entry when it is not a tombstone.
func (ki *keyIndex) live() (*version, bool) {
	if n := len(ki.versions); n > 0 && !ki.versions[n-1].tomb {
		return &ki.versions[n-1], true
	}
	return nil, false
}

func keyLess(a, b *keyIndex) bool { return bytes.Compare(a.key, b.key) < 0 }

// index maps keys to their histories, in key order. It is guarded by Store.mu.
type index struct {
	tree *btree.BTreeG[*keyIndex]
}

func newIndex() *index { return &index{tree: btree.NewG(32, keyLess)} }

func (x *index) get(key []byte) *keyIndex {
	ki, _ := x.tree.Get(&keyIndex{key: key})
	return ki
}

func (x *index) getOrCreate(key []byte) *keyIndex {
	if ki := x.get(key); ki != nil {
		return ki
	}
	ki := &keyIndex{key: bytes.Clone(key)}
	x.tree.ReplaceOrInsert(ki)
	return ki
}

// ascend visits the keys selected by etcd's (key, end) convention, in order.
func (x *index) ascend(key, end []byte, fn func(*keyIndex) bool) {
	switch {
	case len(end) == 0:
		if ki := x.get(key); ki != nil {
			fn(ki)
		}
	case len(end) == 1 && end[0] == 0:
		x.tree.AscendGreaterOrEqual(&keyIndex{key: key}, fn)
	default:
		x.tree.AscendRange(&keyIndex{key: key}, &keyIndex{key: end}, fn)
	}
}
