package crdt

import (
	"bytes"
	"testing"
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
