package peer

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"testing"

	"github.com/rhizome-kv/rhizome/store"
)

func TestWireRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: KindPull, From: "a", Origin: "a~0001", VV: map[string]uint64{"a~0001": 3, "b": 1 << 40}},
		{Kind: KindPull, From: "fresh"},
		{Kind: KindPull, From: "gap", Resend: true},
		{Kind: KindPull, From: "c", VV: map[string]uint64{"c": 1}, Skip: []string{"a", "b"}, Rows: map[string]map[string]uint64{"a": {"a": 2, "b": 1}, "b": nil}},
		{Kind: KindBatch, From: "b", VV: map[string]uint64{"a": 7, "b": 2}},
		{Kind: KindSnapshot, From: "a", SnapID: 3, Part: 1, Parts: 2, Snap: &store.Snapshot{VV: map[string]uint64{"a": 9},
			Leases: [][]byte{{1, 2}}, Docs: []store.SnapshotDoc{{Key: []byte("/k"), Lease: 5, Doc: []byte{1}}}}},
		{Kind: KindBatch, From: "b", Changes: []store.Change{{Origin: "a", Seq: 7, Key: []byte("/k\x00"), Lease: 42, Body: []byte{1, 2}}}, More: true},
		{Kind: KindBatch, From: "b", PullID: 9, Continued: true},
	} {
		var got Message
		if err := got.decode(m.encode()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: %+v, want %+v", got, m)
		}
	}
}

// BenchmarkEncodeBatch encodes a catch-up's batch: 500 changes of 300-byte
// bodies. The encoding must fit the size hint, so it takes one allocation.
//
//	go test -run '^$' -bench EncodeBatch ./sync/peer/
func BenchmarkEncodeBatch(b *testing.B) {
	m := &Message{Kind: KindBatch, From: "a", Origin: "a~0001", VV: map[string]uint64{"a~0001": 500, "b~0002": 7}}
	for i := range 500 {
		m.Changes = append(m.Changes, store.Change{Origin: "a~0001", Seq: uint64(i + 1), Key: fmt.Appendf(nil, "/bench/key-%08d", i), Body: make([]byte, 300)})
	}
	b.ReportAllocs()
	for b.Loop() {
		if n := len(m.encode()); n > m.sizeHint() {
			b.Fatalf("%d bytes encoded, %d hinted", n, m.sizeHint())
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Message{Kind: KindBatch, From: "x", Changes: []store.Change{{Origin: "a", Seq: 1, Key: []byte("k")}}}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if m.decode(b) == nil {
			var again Message
			if err := again.decode(m.encode()); err != nil {
				t.Fatalf("re-decode: %v", err)
			}
		}
	})
}

// FuzzHandle hands arbitrary messages, as a peer might send them, to an Engine
// over a real store: nothing may panic, and a message the engine refuses (an
// error) must leave the store as it was.
func FuzzHandle(f *testing.F) {
	ctx := context.Background()
	src := openStore(f, "a")
	for i := range 3 {
		if _, err := src.Update(ctx, func(tx *store.WriteTxn) error {
			return tx.Put([]byte(fmt.Sprint("/k/", i)), []byte(fmt.Sprintf(`{"n":%d}`, i)), 0)
		}); err != nil {
			f.Fatal(err)
		}
	}
	changes, err := src.Changes(src.Origin(), 0, 10)
	if err != nil {
		f.Fatal(err)
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		f.Fatal(err)
	}
	f.Add((&Message{Kind: KindBatch, From: "a", Origin: src.Origin(), VV: src.VersionVector(), Changes: changes}).encode())
	f.Add((&Message{Kind: KindPull, From: "a", Origin: src.Origin(), VV: src.VersionVector()}).encode())
	f.Add((&Message{Kind: KindSnapshot, From: "a", Origin: src.Origin(), SnapID: 1, Parts: 1, Snap: &snap}).encode())
	st := openStore(f, "b")
	e := NewEngine(st, 50)
	e.SetCounted([]string{"a", "b"})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if m.decode(b) != nil {
			return
		}
		vv, before := st.VersionVector(), digest(t, st)
		if _, err := e.Handle(ctx, m); err != nil {
			if after := digest(t, st); after != before || !maps.Equal(vv, st.VersionVector()) {
				t.Fatalf("a refused message (%v) changed the store", err)
			}
		}
	})
}

func digest(t *testing.T, st *store.Store) [32]byte {
	d, err := st.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
