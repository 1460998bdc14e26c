package crdt

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/automerge/automerge-go"
)

// TestBatchedSavedFormLoadsAlike checks that a saved form with batches holds
// the history automerge made: pods edited by two sites, each write by a Doc
// decoded from the last record. At every edit, the saved form with its
// batches unpacked loads into automerge with the fields held and the
// history's head, and reads as the same changes as unpacked; batches do form
// and keep it shorter than the changes deflated one by one.
func TestBatchedSavedFormLoadsAlike(t *testing.T) {
	d := &Doc{}
	loose := 0 // the saved form's length without batches
	for gen := range 60 {
		c, _, err := d.Put(benchPod(t, gen), Stamp{uint64(gen + 1), []string{"a", "b"}[gen%5/4]})
		if err != nil {
			t.Fatal(err)
		}
		if gen == 0 {
			continue
		}
		if gen == 1 {
			loose = len(d.amBytes)
		} else {
			deflated, err := compressChanges(c.Data)
			if err != nil {
				t.Fatal(err)
			}
			loose += len(deflated)
		}
		raw := unbatchedOrFail(t, d.amBytes)
		am, err := automerge.Load(raw)
		if err != nil {
			t.Fatalf("gen %d: load: %v", gen, err)
		}
		fields, err := readFields(am)
		h, ok := d.history()
		if err != nil || !ok || !maps.Equal(fields, d.fields) || !slices.Equal(am.Heads(), []automerge.ChangeHash{h.head}) {
			t.Fatalf("gen %d: loaded document differs (%v, one branch %t)", gen, err, ok)
		}
		if !sameChanges(t, d.amBytes, raw) {
			t.Fatalf("gen %d: batches read as other changes", gen)
		}
		if d, err = DecodeDoc(d.Encode(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(d.amBytes, batchMagic) || 2*len(d.amBytes) > loose {
		t.Fatalf("saved form %d bytes, its changes deflated one by one %d", len(d.amBytes), loose)
	}
}

// sameChanges reports whether a and b read as the same changes.
func sameChanges(t *testing.T, a, b []byte) bool {
	t.Helper()
	ra, err := readChanges(a)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := readChanges(b)
	if err != nil {
		t.Fatal(err)
	}
	return slices.EqualFunc(ra, rb, func(x, y changeRef) bool {
		return x.hash == y.hash && bytes.Equal(x.contents, y.contents) && slices.Equal(x.deps, y.deps)
	})
}

// TestBatchDamageDetected checks that a batch whose dependencies do not
// restore to the changes it was made of fails to read: a batch's first
// change, whose dependency is never elided, written as elided.
func TestBatchDamageDetected(t *testing.T) {
	d := &Doc{}
	for gen := range 12 {
		if _, _, err := d.Put(benchPod(t, gen), Stamp{uint64(gen + 1), "a"}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := uncompressedChanges(d.amBytes)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := chunkAt(raw)
	changes := raw[first:]
	if _, err := mapDeps(changes, false); err != nil {
		t.Fatalf("changes as they are: %v", err)
	}
	// The first change after the body, its one dependency elided.
	damaged := bytes.Clone(changes)
	_, w := readUvarintAt(damaged[9:])
	copy(damaged[9+w+1:], noHash[:])
	if _, err := mapDeps(damaged, false); err == nil {
		t.Fatal("a first change's elided dependency restored")
	}
	// The second, its one dependency another hash.
	damaged = bytes.Clone(changes)
	second, _, _ := chunkAt(damaged)
	_, w = readUvarintAt(damaged[second+9:])
	copy(damaged[second+9+w+1:], bytes.Repeat([]byte{7}, 32))
	if _, err := mapDeps(damaged, false); err == nil {
		t.Fatal("a change with another dependency read back")
	}
}

// readUvarintAt reads a uvarint at the start of b: its value and length.
func readUvarintAt(b []byte) (uint64, int) {
	r := reader{b: b}
	v := r.uvarint()
	return v, len(b) - len(r.b)
}
