package crdt

import (
	"bytes"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// TestPutPreparedAlike checks that a value cut ahead (PrepareValue) is put
// exactly as the value itself: the same changes and the same document, for a
// create, an edit and a replacement by a register, and that a Prepared used
// once more is cut again rather than reused.
func TestPutPreparedAlike(t *testing.T) {
	values := [][]byte{
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"1"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}`),
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"2"}},"spec":{"containers":[{"name":"c","image":"i:2"}]}}`),
		[]byte(`{"apiVersion":"example.com/v1","kind":"Widget","spec":{"n":1}}`),
		[]byte("opaque"),
	}
	var plain, prepared Doc
	for i, v := range values {
		st := Stamp{uint64(i + 1), "a"}
		c1, ok1, err1 := plain.Put(v, st)
		p := PrepareValue(v, nil)
		c2, ok2, err2 := prepared.PutPrepared(p, st)
		if err1 != nil || err2 != nil || ok1 != ok2 || !bytes.Equal(c1.Encode(), c2.Encode()) {
			t.Fatalf("put %d: plain (%v, %v), prepared (%v, %v), changes equal %v", i, ok1, err1, ok2, err2, bytes.Equal(c1.Encode(), c2.Encode()))
		}
		if !bytes.Equal(plain.Encode(), prepared.Encode()) {
			t.Fatalf("put %d: the documents differ", i)
		}
		if i == 0 {
			// Used again: cut again, not the fields the Doc now holds.
			if _, _, err := prepared.PutPrepared(p, st); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain.Encode(), prepared.Encode()) {
				t.Fatal("a Prepared used twice changed the document")
			}
		}
	}
}

// TestPrepareNewAlike checks that a value prepared for a create (PrepareNew),
// whose fields a document cuts only when first needed, is put exactly as the
// value itself, whether it meets a key that holds nothing, a document (cut
// then) or a register; that another replica applying the same changes holds
// the same document; and that what strictDocument calls a document every
// schema cuts as one.
func TestPrepareNewAlike(t *testing.T) {
	values := [][]byte{
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"1"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}`),
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"2"}},"spec":{"containers":[{"name":"c","image":"i:2"}]}}` + "\n"),
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"status":{"phase":"Running","phase":"Pending"}}`), // a duplicate inside a unit kept whole
		[]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}, "spec":{}}`),                                     // white space: a register
		[]byte("opaque"),
		[]byte(`{"apiVersion":"example.com/v1","kind":"Widget","spec":{"n":1,"list":[{"k":"a"},{"k":"a"}]}}`),
		[]byte(`{"apiVersion":"example.com/v1","kind":"Widget","spec":{"n":2,"list":[]}}`),
	}
	for _, v := range values {
		if strictDocument(v) {
			for _, schemas := range []Schemas{nil, func(string, string) (n kube.Node, ok bool) { return n, false }} {
				if _, ok := flatten(v, schemas); !ok {
					t.Fatalf("%s: strictly a document, but flatten refuses it", v)
				}
			}
		}
	}
	var plain, prepared, remote Doc
	for i, v := range values {
		st := Stamp{uint64(i + 1), "a"}
		c1, ok1, err1 := plain.Put(v, st)
		c2, ok2, err2 := prepared.PutPrepared(PrepareNew(v, nil), st)
		if err1 != nil || err2 != nil || ok1 != ok2 || !bytes.Equal(c1.Encode(), c2.Encode()) {
			t.Fatalf("put %d: plain (%v, %v), prepared (%v, %v), changes equal %v", i, ok1, err1, ok2, err2, bytes.Equal(c1.Encode(), c2.Encode()))
		}
		if !bytes.Equal(plain.Encode(), prepared.Encode()) {
			t.Fatalf("put %d: the documents differ", i)
		}
		if ok2 {
			if _, err := remote.Apply(c2); err != nil {
				t.Fatalf("put %d: apply at another replica: %v", i, err)
			}
		}
		pv, _ := prepared.Value()
		rv, _ := remote.Value()
		if !bytes.Equal(pv, rv) || prepared.Digest() != remote.Digest() {
			t.Fatalf("put %d: the replica holds %s, the writer %s", i, rv, pv)
		}
		// Decoded copies (a never-edited body's fields cut when first
		// needed) take the next write alike too.
		plain, prepared = decoded(t, plain), decoded(t, prepared)
	}
}

func decoded(t *testing.T, d Doc) Doc {
	t.Helper()
	c, err := DecodeDoc(d.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *c
}
