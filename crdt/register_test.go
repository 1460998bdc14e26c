package crdt

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestPutRegister: a replica alone writes every value whole, as a register,
// whatever it holds; the same bytes again are no change.
func TestPutRegister(t *testing.T) {
	d := &Doc{}
	for i, v := range []string{`{"a":"1"}`, `{"a":"2"}`, "plain", `{"a":"3"}`} {
		c, ok, err := d.PutRegister([]byte(v), Stamp{uint64(i + 1), "a"})
		if err != nil || !ok {
			t.Fatalf("put %s: %v %v", v, ok, err)
		}
		if want := map[bool]Op{true: OpCreate, false: OpReplace}[i == 0]; c.Op != want || c.Kind != Register {
			t.Fatalf("put %s: op %d kind %d, want op %d of a register", v, c.Op, c.Kind, want)
		}
		if d.Kind() != Register || value(d) != v {
			t.Fatalf("after put %s: kind %d value %s", v, d.Kind(), value(d))
		}
	}
	if _, ok, err := d.PutRegister([]byte(`{"a":"3"}`), Stamp{9, "a"}); ok || err != nil {
		t.Fatalf("the same bytes again: ok %v, %v; want no change", ok, err)
	}
	// Over a document: the document ends, the register holds the value.
	doc := &Doc{}
	doc.Put([]byte(`{"a":"1"}`), Stamp{1, "a"})
	doc.Put([]byte(`{"a":"2"}`), Stamp{2, "a"})
	if _, ok, err := doc.PutRegister([]byte(`{"a":"3"}`), Stamp{3, "a"}); !ok || err != nil || doc.Kind() != Register || doc.Edits() != 0 {
		t.Fatalf("over a document: ok %v, %v, kind %d, %d edits", ok, err, doc.Kind(), doc.Edits())
	}
}

// TestRegisterWrittenAlonePromotedAlike: a document a replica wrote alone (a
// register), copied to another replica, is edited at both concurrently: each
// promotes it to the document a create of it makes before editing, so each
// applies the other's edit and both hold both edits. A register holding no
// document is replaced whole, as before.
func TestRegisterWrittenAlonePromotedAlike(t *testing.T) {
	base := `{"metadata":{"name":"web","labels":{"app":"web"}},"status":{"phase":"Pending"}}`
	a := &replica{site: "a"}
	if _, _, err := a.doc.PutRegister([]byte(base), a.stamp()); err != nil {
		t.Fatal(err)
	}
	copyOf := func(r *replica, site string) *replica {
		d, err := DecodeDoc(r.doc.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return &replica{site: site, clock: r.clock, doc: *d}
	}
	b := copyOf(a, "b")
	a.put(t, strings.Replace(base, `"app":"web"`, `"app":"web","tier":"front"`, 1))
	b.put(t, strings.Replace(base, "Pending", "Running", 1))
	for _, r := range []*replica{a, b} {
		if r.doc.Kind() != Document || len(r.changes) != 1 || r.changes[0].Op != OpUpdate {
			t.Fatalf("%s's edit of the register: kind %d, changes %+v; want one field edit of a document", r.site, r.doc.Kind(), r.changes)
		}
	}
	aOwn, bOwn := a.changes, b.changes
	a.receive(t, &replica{changes: bOwn})
	b.receive(t, &replica{changes: aOwn})
	want := `{"metadata":{"labels":{"app":"web","tier":"front"},"name":"web"},"status":{"phase":"Running"}}`
	for _, r := range []*replica{a, b} {
		if got := canonical(t, value(&r.doc)); got != canonical(t, want) {
			t.Fatalf("%s after both edits: %s, want %s", r.site, got, want)
		}
	}
	if a.doc.Digest() != b.doc.Digest() {
		t.Fatal("replicas differ")
	}

	// A register that holds no document is not promoted: a document put on
	// it replaces it whole.
	p := &replica{site: "a"}
	p.doc.PutRegister([]byte("plain"), p.stamp())
	p.put(t, base)
	if c := p.changes[0]; c.Op != OpReplace || c.Kind != Document {
		t.Fatalf("a document put on a plain register: op %d kind %d, want a replace by a document", c.Op, c.Kind)
	}
}

// canonical is the JSON value v with its members sorted.
func canonical(t *testing.T, v string) string {
	t.Helper()
	var x any
	if err := json.Unmarshal([]byte(v), &x); err != nil {
		t.Fatalf("%s: %v", v, err)
	}
	out, _ := json.Marshal(x)
	return string(out)
}
