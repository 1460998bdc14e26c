package crdt_test

import (
	"fmt"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt"
)

// The fuzz targets of what crdt reads from other sites and from disk: a change
// (sync messages carry them) and a document (the store keeps them; snapshots
// carry them). Bad bytes must give an error, never a panic; what decodes must
// survive being applied, read and encoded again. `make fuzz` runs them.

func seedDoc(tb testing.TB) (*crdt.Doc, crdt.Change) {
	tb.Helper()
	var d crdt.Doc
	c, ok, err := d.Put([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":"1"}},"data":{"k":"v"}}`), crdt.Stamp{Counter: 1, Site: "a"})
	if err != nil || !ok {
		tb.Fatalf("put: %v %v", ok, err)
	}
	return &d, c
}

func FuzzDecodeChange(f *testing.F) {
	d, c := seedDoc(f)
	f.Add(c.Encode())
	c2, _, err := d.Put([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"w"}}`), crdt.Stamp{Counter: 2, Site: "a"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c2.Encode())
	del, _, err := d.Delete()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(del.Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := crdt.DecodeChange(b)
		if err != nil {
			return
		}
		if _, err := crdt.DecodeChange(c.Encode()); err != nil {
			t.Fatalf("a decoded change does not decode again: %v", err)
		}
		var fresh crdt.Doc
		fresh.Apply(c) // an error is fine; a panic is not
		fresh.Value()
		seeded, _ := seedDoc(t)
		seeded.Apply(c)
		seeded.Value()
	})
}

func FuzzDecodeDoc(f *testing.F) {
	d, _ := seedDoc(f)
	f.Add(d.Encode())
	var reg crdt.Doc
	if _, _, err := reg.Put([]byte("opaque"), crdt.Stamp{Counter: 1, Site: "b"}); err != nil {
		f.Fatal(err)
	}
	f.Add(reg.Encode())
	f.Add(longHistory(f).Encode())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := crdt.DecodeDoc(b, nil)
		if err != nil {
			return
		}
		v, ok := d.Value()
		d2, err := crdt.DecodeDoc(d.Encode(), nil)
		if err != nil {
			t.Fatalf("a decoded doc does not decode again: %v", err)
		}
		if v2, ok2 := d2.Value(); string(v2) != string(v) || ok2 != ok {
			t.Fatalf("value %q %v after a round trip, was %q %v", v2, ok2, v, ok)
		}
		d.Put([]byte(`{"a":1}`), crdt.Stamp{Counter: d.Clock() + 1, Site: "z"})
	})
}

// longHistory returns a document edited 40 times, each edit by the document
// decoded from the last one's record: its record holds a stored history and
// batches of changes.
func longHistory(f *testing.F) *crdt.Doc {
	d := &crdt.Doc{}
	for i := range 40 {
		v := fmt.Appendf(nil, `{"a":%d,"b":"x","c":{"d":"%d"}}`, i, i%3)
		if _, _, err := d.Put(v, crdt.Stamp{Counter: uint64(i + 1), Site: []string{"c", "d"}[i%2]}); err != nil {
			f.Fatal(err)
		}
		var err error
		if d, err = crdt.DecodeDoc(d.Encode(), nil); err != nil {
			f.Fatal(err)
		}
	}
	return d
}
