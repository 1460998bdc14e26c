package crdt

import (
	"bytes"
	"maps"
	"slices"
	"testing"
)

// TestStoredHistoryAlike checks that the history a Doc stores is the one its
// saved form gives: pods edited by two sites, each edit written by a Doc
// decoded from the last one's record, as the store does for a document it
// does not cache. The stored history read back equals readHistory's, and the
// edit written from it is the change written from readHistory's, byte for
// byte, and a record of the format before (no stored history) writes it too.
func TestStoredHistoryAlike(t *testing.T) {
	var d Doc
	if _, _, err := d.Put(benchPod(t, 0), Stamp{1, "a"}); err != nil {
		t.Fatal(err)
	}
	stored := d.Encode()
	for gen := 1; gen < 40; gen++ {
		site := []string{"a", "b"}[gen%3/2]
		st := Stamp{uint64(gen + 1), site}
		fromStored, c := edited(t, stored, gen, st)
		if gen > 1 && fromStored.storedHist != nil {
			t.Fatalf("gen %d: stored history not read", gen)
		}
		for _, old := range [][]byte{withoutHistory(t, stored), withHistory(stored, nil)} {
			_, oc := edited(t, old, gen, st)
			if !bytes.Equal(oc.Data, c.Data) {
				t.Fatalf("gen %d: edit differs without the stored history", gen)
			}
		}
		stored = fromStored.Encode()
		back, err := DecodeDoc(stored, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := back.currentHistory()
		want, fields, ok := readHistory(back.amBytes)
		if got == nil || !ok || got.head != want.head || got.maxOp != want.maxOp ||
			!maps.Equal(got.seqs, want.seqs) || !maps.Equal(got.at, want.at) || !maps.Equal(fields, back.fields) {
			t.Fatalf("gen %d: stored history differs from the saved form's (read %t)", gen, ok)
		}
	}
}

// edited decodes stored and puts the pod of generation gen as st.
func edited(t *testing.T, stored []byte, gen int, st Stamp) (*Doc, Change) {
	t.Helper()
	d, err := DecodeDoc(stored, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, ok, err := d.Put(benchPod(t, gen), st)
	if err != nil || !ok {
		t.Fatalf("gen %d: put: %t %v", gen, ok, err)
	}
	return d, c
}

// withoutHistory returns a record as the format before the stored history
// wrote it.
func withoutHistory(t *testing.T, stored []byte) []byte {
	t.Helper()
	d, err := DecodeDoc(stored, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := len(appendBytes(nil, d.storedHist))
	old := bytes.Clone(stored[:len(stored)-n])
	old[0] = 3
	return old
}

// withHistory returns stored with its history replaced by hist.
func withHistory(stored, hist []byte) []byte {
	d, _ := DecodeDoc(stored, nil)
	n := len(appendBytes(nil, d.storedHist))
	return appendBytes(bytes.Clone(stored[:len(stored)-n]), hist)
}

// TestStoredHistoryNotTheDocs checks that a stored history is used only for
// the Doc it was stored with: one written at another edit count, or mapping
// other fields, is ignored and the history is read from the saved form.
func TestStoredHistoryNotTheDocs(t *testing.T) {
	var d Doc
	for gen := range 4 {
		if _, _, err := d.Put(benchPod(t, gen), Stamp{uint64(gen + 1), "a"}); err != nil {
			t.Fatal(err)
		}
		if gen == 2 {
			d2, _ := DecodeDoc(d.Encode(), nil)
			d = *d2
		}
	}
	earlier, _ := DecodeDoc(d.Encode(), nil)
	if _, _, err := d.Put(benchPod(t, 4), Stamp{5, "a"}); err != nil {
		t.Fatal(err)
	}
	later := d.Encode()
	stale := withHistory(later, earlier.storedHist)
	r, err := DecodeDoc(stale, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.currentHistory() != nil {
		t.Fatal("a history stored at another edit count was taken")
	}
	if h, ok := r.history(); !ok || h.edits != r.edits {
		t.Fatal("history not read from the saved form")
	}
	fresh, _ := DecodeDoc(later, nil)
	other := maps.Clone(fresh.fields)
	other["/zz"] = "1"
	delete(other, "/kind")
	if _, ok := readStoredHistory(fresh.storedHist, other); ok {
		t.Fatal("a history read for other field names")
	}
	if _, ok := readStoredHistory(fresh.storedHist, fresh.fields); !ok {
		t.Fatal("a history not read for its own field names")
	}
}

// TestLinearRebaseAlike checks that a rebase of a one-branch history made
// and applied in Go (applyLinearRebase) is the one automerge makes: the same
// change, the same document after it, the same translation of an edit of the
// old history made concurrently at another site, and the same next edit.
func TestLinearRebaseAlike(t *testing.T) {
	d := &Doc{}
	for gen := range 20 {
		if _, _, err := d.Put(benchPod(t, gen), Stamp{uint64(gen + 1), "w"}); err != nil {
			t.Fatal(err)
		}
		d, _ = DecodeDoc(d.Encode(), nil)
	}
	stored := d.Encode()
	open := func() *Doc {
		r, err := DecodeDoc(stored, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	fast, slow, other := open(), open(), open()
	// Not one branch, as far as slow knows: automerge rebases it.
	slow.hist = &history{none: true, epoch: slow.epoch, edits: slow.edits, saved: len(slow.amBytes)}
	cf, ok1, err1 := fast.Rebase("w", 1, nil)
	cs, ok2, err2 := slow.Rebase("w", 1, nil)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || !bytes.Equal(cf.Encode(), cs.Encode()) {
		t.Fatalf("rebases differ (%t %v, %t %v)", ok1, err1, ok2, err2)
	}
	if fast.am != nil || slow.am == nil {
		t.Fatal("the one-branch rebase loaded automerge, or the other did not")
	}
	concurrent, _, err := other.Put(benchPod(t, 40), Stamp{30, "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Doc{fast, slow} {
		if _, err := r.Apply(concurrent); err != nil {
			t.Fatal(err)
		}
	}
	if fast.Digest() != slow.Digest() || !maps.Equal(fast.fields, slow.fields) || fast.clean != slow.clean ||
		len(fast.prior.moved) != 1 || !maps.Equal(fast.prior.moved, slow.prior.moved) {
		t.Fatal("documents differ after the rebase and a translated edit")
	}
	nf, _, err1 := fast.Put(benchPod(t, 41), Stamp{31, "w"})
	ns, _, err2 := slow.Put(benchPod(t, 41), Stamp{31, "w"})
	if err1 != nil || err2 != nil || !bytes.Equal(nf.Data, ns.Data) || fast.Digest() != slow.Digest() {
		t.Fatalf("next edits differ (%v, %v)", err1, err2)
	}
}

// TestHistoryKeysFollowFields checks that a history's sorted keys stay its
// fields' names while edits add and remove fields, in a Doc carried forward
// and in one decoded from each record.
func TestHistoryKeysFollowFields(t *testing.T) {
	values := []string{`{"m":1}`, `{"m":1,"c":2,"x":{"y":1}}`, `{"b":3,"c":2}`, `{"a":0,"b":3,"z":[1]}`, `{"z":[1],"q":{"r":{"s":2}}}`, `{"m":2}`}
	carried, stored, checked := new(Doc), []byte(nil), 0
	for i, v := range values {
		st := Stamp{uint64(i + 1), "a"}
		if _, _, err := carried.Put([]byte(v), st); err != nil {
			t.Fatal(err)
		}
		decoded := new(Doc)
		if stored != nil {
			var err error
			if decoded, err = DecodeDoc(stored, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := decoded.Put([]byte(v), st); err != nil {
			t.Fatal(err)
		}
		stored = decoded.Encode()
		for name, d := range map[string]*Doc{"carried": carried, "decoded": decoded} {
			h, ok := d.history()
			if !ok {
				continue // a create: no edit yet
			}
			if want := slices.Sorted(maps.Keys(h.at)); !slices.Equal(h.keys, want) {
				t.Fatalf("value %d, %s: keys %q, want %q", i, name, h.keys, want)
			}
			checked++
		}
	}
	if checked < 2*(len(values)-1) {
		t.Fatalf("%d histories checked, want %d", checked, 2*(len(values)-1))
	}
}
