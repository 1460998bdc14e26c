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

// version is one entry of a key's history. Like etcd's key index it keeps where
// the state lives, not the state: a durable entry's value is read from its
// revision record in badger (block cache), so the memory a key costs does not
// grow with its value. An entry not yet durable keeps its state (kv) until its
// batch commits, as no read transaction can see it before then.
type version struct {
	rev     revision
	tomb    bool
	size    int32     // bytes of the value (0 for a tombstone)
	created int64     // the key's create revision (0 for a tombstone)
	ver     int64     // the key's version: writes since its creation
	kv      *KeyValue // state of an entry not yet durable; nil once durable
}

// newVersion returns the index entry of an event, without its state.
func newVersion(r revision, typ EventType, kv KeyValue) version {
	if typ == EventDelete {
		return version{rev: r, tomb: true}
	}
	return version{rev: r, size: int32(len(kv.Value)), created: kv.CreateRevision, ver: kv.Version}
}

// keyOnly returns the state of key the entry names without its value and
// lease: what the index alone knows of it.
func (v *version) keyOnly(key []byte) KeyValue {
	return KeyValue{Key: bytes.Clone(key), CreateRevision: v.created, ModRevision: v.rev.main, Version: v.ver}
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
