package crdt

import (
	"maps"
	"slices"

	"bytes"
	"encoding/json"
	"fmt"
	"github.com/automerge/automerge-go"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestChangeBytesAlike compares the changes written in Go (a body, a
// never-edited body's first edit) with those automerge writes for the same
// fields, byte for byte, over pods and random field sets: small and large
// values, runs of equal lengths, edits by the body's own site and another's,
// edits that only add fields or only delete them.
func TestChangeBytesAlike(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		body := randomFields(rnd)
		if i == 0 {
			body, _ = flatten(benchPod(t, 0), nil)
		}
		site := []string{"a", "b"}[rnd.IntN(2)]
		want, err := newDocAM(body, "a")
		if err != nil {
			t.Fatal(err)
		}
		wantBody := want.SaveIncremental()
		got, hash := bodyChange(body, "a").encode()
		if !bytes.Equal(got, wantBody) {
			t.Fatalf("case %d: body\n got %x\nwant %x", i, got, wantBody)
		}
		next := randomEdit(rnd, body)
		if i == 0 {
			next, _ = flatten(benchPod(t, 1), nil)
		}
		set, del := diffFields(body, next)
		if len(set)+len(del) == 0 {
			continue
		}
		msg := fmt.Sprintf("%d@%s", i+2, site)
		if err := want.SetActorID(actorID(site)); err != nil {
			t.Fatal(err)
		}
		if err := writeFields(want, set, del); err != nil {
			t.Fatal(err)
		}
		h, err := want.Commit(msg, commitOptions())
		if err != nil {
			t.Fatal(err)
		}
		ch, err := want.Change(h)
		if err != nil {
			t.Fatal(err)
		}
		hist := bodyHistory(body, "a")
		if hist.head != hash {
			t.Fatalf("case %d: body history's head %x, body's hash %x", i, hist.head, hash)
		}
		gotEdit, gotHash := hist.edit(set, del, actorID(site), msg).encode()
		if gotHash != h || !bytes.Equal(gotEdit, want.SaveIncremental()) {
			t.Fatalf("case %d: edit (set %d, del %d)\n got %x\nwant %x (saved %x)", i, len(set), len(del), gotEdit, ch.Save(), want.SaveIncremental())
		}
	}
}

// randomFields returns a few fields with short and long values, often of
// equal lengths, and keys that sort in runs.
func randomFields(rnd *rand.Rand) map[string]string {
	n := 1 + rnd.IntN(40)
	fields := make(map[string]string, n)
	for range n {
		k := fmt.Sprintf("=/f%d", rnd.IntN(60))
		fields[k] = randomValue(rnd)
	}
	return fields
}

func randomValue(rnd *rand.Rand) string {
	switch rnd.IntN(4) {
	case 0:
		return strings.Repeat("s", 1+rnd.IntN(2))
	case 1:
		return strings.Repeat("é", 100+rnd.IntN(900))
	}
	return fmt.Sprintf("%q", strings.Repeat("v", rnd.IntN(8)))
}

// randomEdit returns fields with some values changed, some removed and some
// added.
func randomEdit(rnd *rand.Rand, fields map[string]string) map[string]string {
	next := make(map[string]string, len(fields))
	mode := rnd.IntN(4) // 0: mixed, 1: only sets, 2: only deletes, 3: only additions
	for k, v := range fields {
		switch r := rnd.IntN(4); {
		case r == 0 && (mode == 0 || mode == 1):
			next[k] = randomValue(rnd)
		case r == 1 && (mode == 0 || mode == 2):
		default:
			next[k] = v
		}
	}
	if mode == 0 || mode == 3 {
		for range rnd.IntN(4) {
			next[fmt.Sprintf("=/g%d", rnd.IntN(10))] = randomValue(rnd)
		}
	}
	return next
}

// TestFirstEditAppliedAlike checks that a replica taking a never-edited body's
// first edit without building the body (applyLinearEdit) ends where one that
// builds it and lets automerge merge the edit does: the same value, fields
// and saved form; and that a change it cannot confirm goes to automerge.
func TestFirstEditAppliedAlike(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		v0, v1 := randomObject(rnd, 2), randomObject(rnd, 2)
		if i%2 == 0 {
			v1 = mutateObject(rnd, v0)
		}
		var w Doc
		create, _, err := w.Put(v0, Stamp{1, "a"})
		if err != nil {
			t.Fatal(err)
		}
		edit, ok, err := w.Put(v1, Stamp{2, []string{"a", "b"}[i%3%2]})
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		var fast, slow Doc
		for _, r := range []*Doc{&fast, &slow} {
			if _, err := r.Apply(create); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := slow.automerge(""); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*Doc{&fast, &slow} {
			if _, err := r.Apply(edit); err != nil {
				t.Fatal(err)
			}
		}
		if fast.am != nil || !bytes.Equal(fast.Encode(), slow.Encode()) || !bytes.Equal(fast.Encode(), w.Encode()) {
			t.Fatalf("case %d: the replicas differ (fast path taken: %t)\n%s\n%s", i, fast.am == nil, v0, v1)
		}
	}
	// A change that is not a field edit (a damaged one) is not taken.
	var w, r Doc
	create, _, _ := w.Put([]byte(`{"a":"1"}`), Stamp{1, "a"})
	edit, _, _ := w.Put([]byte(`{"a":"2"}`), Stamp{2, "a"})
	r.Apply(create)
	bad := bytes.Clone(edit.Data)
	bad[len(bad)-1] ^= 1
	h, ok := r.history()
	if !ok {
		t.Fatal("a never-edited body has no history")
	}
	if _, ok := r.applyLinearEdit(h, bad); ok || r.edits != 0 {
		t.Fatal("a damaged edit was applied")
	}
}

// randomObject returns a compact JSON object of a few members: strings,
// numbers, and objects nested up to depth.
func randomObject(rnd *rand.Rand, depth int) []byte {
	m := map[string]any{}
	for range 1 + rnd.IntN(6) {
		m[fmt.Sprintf("m%d", rnd.IntN(8))] = randomMember(rnd, depth)
	}
	b, _ := json.Marshal(m)
	return b
}

func randomMember(rnd *rand.Rand, depth int) any {
	switch rnd.IntN(4) {
	case 0:
		return rnd.IntN(3)
	case 1:
		if depth > 0 {
			return json.RawMessage(randomObject(rnd, depth-1))
		}
	case 2:
		return strings.Repeat("é", rnd.IntN(300))
	}
	return fmt.Sprint(rnd.IntN(5))
}

// mutateObject returns v with some top-level members changed, removed or added.
func mutateObject(rnd *rand.Rand, v []byte) []byte {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		panic(err)
	}
	for k := range m {
		switch rnd.IntN(4) {
		case 0:
			delete(m, k)
		case 1:
			b, _ := json.Marshal(randomMember(rnd, 1))
			m[k] = b
		}
	}
	b, _ := json.Marshal(randomMember(rnd, 1))
	m[fmt.Sprintf("n%d", rnd.IntN(3))] = b
	out, _ := json.Marshal(m)
	return out
}

// TestLaterEditBytesAlike compares later edits written in Go (history.edit)
// with those automerge commits, byte for byte, over one-branch histories of
// up to 12 edits by three sites: sets, deletes, fields deleted and written
// again, each site's own earlier writes overwritten. At every step the
// history read back from the changes saved so far (readHistory) is the one
// carried forward, and ends with automerge's fields.
func TestLaterEditBytesAlike(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := range 120 {
		body := randomFields(rnd)
		am, err := newDocAM(body, "a")
		if err != nil {
			t.Fatal(err)
		}
		h := bodyHistory(body, "a")
		saved, fields := bytes.Clone(h.body), body
		for step := range 1 + rnd.IntN(12) {
			next := randomEdit(rnd, fields)
			set, del := diffFields(fields, next)
			if len(set)+len(del) == 0 {
				continue
			}
			site, msg := []string{"a", "b", "c"}[rnd.IntN(3)], fmt.Sprintf("%d@x", step)
			if err := am.SetActorID(actorID(site)); err != nil {
				t.Fatal(err)
			}
			if err := writeFields(am, set, del); err != nil {
				t.Fatal(err)
			}
			hash, err := am.Commit(msg, commitOptions())
			if err != nil {
				t.Fatal(err)
			}
			want, err := am.Change(hash)
			if err != nil {
				t.Fatal(err)
			}
			c := h.edit(set, del, actorID(site), msg)
			got, gotHash := c.encode()
			if gotHash != hash || !bytes.Equal(got, want.Save()) {
				t.Fatalf("case %d step %d: edit by %s (set %d, del %d)\n got %x\nwant %x", i, step, site, len(set), len(del), got, want.Save())
			}
			h.take(c, hash)
			// Saved forms hold either compression (packed from format 5).
			if saved, err = appendCompressed(saved, got, []byte{chunkPackedChange, chunkCompressedChange}[step%2]); err != nil {
				t.Fatal(err)
			}
			fields = next
			read, readFields, ok := readHistory(saved)
			if !ok || read.head != h.head || read.maxOp != h.maxOp || !maps.Equal(read.seqs, h.seqs) ||
				!maps.Equal(read.at, h.at) || !maps.Equal(readFields, fields) {
				t.Fatalf("case %d step %d: history read back differs (ok %t)", i, step, ok)
			}
		}
	}
}

// TestLaterEditsAlike checks that a writer and a replica that write and take
// later edits in Go end where automerge does: each edit is applied to an
// automerge document too, and the fields, value and heads agree; neither
// loads automerge. An edit concurrent with the replica's own is merged by
// automerge, after which the history is not one branch.
func TestLaterEditsAlike(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 8))
	for i := range 60 {
		var w, r Doc
		v := randomObject(rnd, 2)
		create, _, err := w.Put(v, Stamp{1, "a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Apply(create); err != nil {
			t.Fatal(err)
		}
		var ref *automerge.Doc
		for n := range 2 + rnd.IntN(6) {
			v = mutateObject(rnd, v)
			c, ok, err := w.Put(v, Stamp{uint64(n + 2), []string{"a", "b"}[rnd.IntN(2)]})
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				continue
			}
			if _, err := r.Apply(c); err != nil {
				t.Fatal(err)
			}
			if ref == nil {
				if ref, err = automerge.Load(unbatchedOrFail(t, r.amBytes)); err != nil {
					t.Fatal(err)
				}
			} else if err := ref.LoadIncremental(c.Data); err != nil {
				t.Fatal(err)
			}
			want, err := readFields(ref)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(w.fields, want) || !maps.Equal(r.fields, want) || !bytes.Equal(w.value, r.value) ||
				!bytes.Equal(r.value, materialize(want, nil)) {
				t.Fatalf("case %d edit %d: fields or values differ from automerge's", i, n)
			}
			loaded, err := automerge.Load(unbatchedOrFail(t, r.amBytes))
			if err != nil || !slices.Equal(loaded.Heads(), ref.Heads()) {
				t.Fatalf("case %d edit %d: saved form's heads differ from automerge's (%v)", i, n, err)
			}
		}
	}
	// A concurrent edit: the replica writes its own, then takes the writer's.
	var w, r Doc
	create, _, _ := w.Put([]byte(`{"a":"1","b":"1"}`), Stamp{1, "a"})
	r.Apply(create)
	for gen := 2; gen <= 3; gen++ {
		e, _, _ := w.Put(fmt.Appendf(nil, `{"a":"%d","b":"1"}`, gen), Stamp{uint64(gen), "a"})
		if _, err := r.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	mine, _, err := r.Put([]byte(`{"a":"3","b":"r"}`), Stamp{4, "r"})
	if err != nil || r.am != nil {
		t.Fatalf("replica's own later edit: %v (automerge loaded: %t)", err, r.am != nil)
	}
	theirs, _, _ := w.Put([]byte(`{"a":"w","b":"1"}`), Stamp{4, "a"})
	for _, x := range []struct {
		d *Doc
		c Change
	}{{&r, theirs}, {&w, mine}} {
		if _, err := x.d.Apply(x.c); err != nil {
			t.Fatal(err)
		}
	}
	if w.Digest() != r.Digest() || string(value(&r)) != `{"a":"w","b":"r"}` {
		t.Fatalf("after concurrent edits: %s and %s", value(&w), value(&r))
	}
	if _, ok := r.history(); ok {
		t.Fatal("a history with concurrent edits read as one branch")
	}
}

// unbatchedOrFail returns saved with its batches unpacked, as automerge loads
// it.
func unbatchedOrFail(t *testing.T, saved []byte) []byte {
	t.Helper()
	raw, err := unbatched(saved)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
