package peer

import (
	"reflect"
	"testing"

	"github.com/rhizome-kv/rhizome/store"
)

func TestWireRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: KindPull, From: "a", VV: map[string]uint64{"a": 3, "b": 1 << 40}},
		{Kind: KindPull, From: "fresh"},
		{Kind: KindPull, From: "c", VV: map[string]uint64{"c": 1}, Skip: []string{"a", "b"}, Rows: map[string]map[string]uint64{"a": {"a": 2, "b": 1}, "b": nil}},
		{Kind: KindBatch, From: "b", VV: map[string]uint64{"a": 7, "b": 2}},
		{Kind: KindSnapshot, From: "a", SnapID: 3, Part: 1, Parts: 2, Snap: &store.Snapshot{VV: map[string]uint64{"a": 9},
			Leases: [][]byte{{1, 2}}, Docs: []store.SnapshotDoc{{Key: []byte("/k"), Lease: 5, Doc: []byte{1}}}}},
		{Kind: KindBatch, From: "b", Changes: []store.Change{{Origin: "a", Seq: 7, Key: []byte("/k\x00"), Lease: 42, Body: []byte{1, 2}}}, More: true},
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
