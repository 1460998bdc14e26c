package crdt

import (
	"encoding/binary"
	"encoding/hex"
	"hash/fnv"
	"slices"
)

// The history in the Doc's durable form.
//
// A Doc whose history is one branch (amhistory.go) stores, beside its saved
// form, what an edit of it needs: the head, each actor's last change, the
// greatest op counter and each field's visible operation. An edit of a Doc
// read back from storage then costs the same however long its history is: it
// reads neither the saved form's changes again nor needs the saved form to be
// changes at all, so a saved form automerge saved whole goes on being edited
// in Go.
//
// It is a cache of what the saved form says, never more: it is written in the
// same record as the saved form (a crash keeps both or neither), and names the
// epoch, edit count and saved-form length it was written at and a digest of the field
// names it maps. A Doc whose record says otherwise, or holds none (a Doc stored
// before this was kept, or whose history is not one branch), reads its history
// from the saved form as before.
//
// Form: epoch, edits, saved length; the field names' digest (8 bytes);
// head (32 bytes); greatest op counter; the actors in byte order, each its id,
// last sequence number and last change's hash (a 0 for the head, else a 1
// and the hash); then the fields' visible
// operations in field-name order, as runs of consecutive counters by one
// actor (length, first counter, actor index): a body's fields, which an edit
// mostly leaves alone, are one run.

// appendHistory appends h, a one-branch history, in the form above.
func appendHistory(b []byte, h *history) []byte {
	keys := h.keys
	b = appendStamp(b, h.epoch)
	b = binary.AppendUvarint(b, uint64(h.edits))
	b = binary.AppendUvarint(b, uint64(h.saved))
	b = binary.LittleEndian.AppendUint64(b, namesDigest(keys))
	b = append(b, h.head[:]...)
	b = binary.AppendUvarint(b, h.maxOp)
	actors := sortedActors(h.seqs)
	b = binary.AppendUvarint(b, uint64(len(actors)))
	for _, a := range actors {
		raw, _ := hex.DecodeString(a)
		b = appendBytes(b, raw)
		last := h.seqs[a]
		b = binary.AppendUvarint(b, last.seq)
		if last.hash == h.head {
			b = append(b, 0) // the head, the last change of one actor
			continue
		}
		b = append(append(b, 1), last.hash[:]...)
	}
	return appendRuns(b, h.at, keys, actors)
}

// appendRuns appends the visible operations of keys (at's keys, sorted) as
// runs of consecutive counters by one actor, actors naming them by index.
func appendRuns(b []byte, at map[string]opRef, keys, actors []string) []byte {
	type run struct{ n, ctr, actor uint64 }
	var runs []run
	for _, k := range keys {
		op := at[k]
		idx := uint64(slices.Index(actors, op.actor))
		if n := len(runs); n > 0 && runs[n-1].actor == idx && runs[n-1].ctr+runs[n-1].n == op.ctr {
			runs[n-1].n++
			continue
		}
		runs = append(runs, run{n: 1, ctr: op.ctr, actor: idx})
	}
	b = binary.AppendUvarint(b, uint64(len(runs)))
	for _, r := range runs {
		b = binary.AppendUvarint(b, r.n)
		b = binary.AppendUvarint(b, r.ctr)
		b = binary.AppendUvarint(b, r.actor)
	}
	return b
}

// storedAt reports the epoch, edit count and saved-form length a stored
// history was written at (ok false when b is not one).
func storedAt(b []byte) (epoch Stamp, edits, saved int, ok bool) {
	r := reader{b: b}
	epoch = r.stamp()
	edits, saved = int(r.uvarint()), int(r.uvarint())
	return epoch, edits, saved, r.err == nil
}

// readStoredHistory reads a history appendHistory wrote for fields. ok is
// false when b is malformed or maps other field names.
func readStoredHistory(b []byte, fields map[string]string) (h *history, ok bool) {
	r := reader{b: b}
	h = &history{seqs: map[string]lastChange{}}
	h.epoch = r.stamp()
	h.edits, h.saved = int(r.uvarint()), int(r.uvarint())
	keys := sortedKeys(fields)
	if len(r.b) < 8 || binary.LittleEndian.Uint64(r.b) != namesDigest(keys) {
		return nil, false
	}
	r.b = r.b[8:]
	h.head, h.maxOp = r.hash(), r.uvarint()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return nil, false
	}
	actors := make([]string, 0, n)
	for range n {
		a := hex.EncodeToString(r.bytes())
		last := lastChange{seq: r.uvarint(), hash: h.head}
		if r.byte() == 1 {
			last.hash = r.hash()
		}
		h.seqs[a], actors = last, append(actors, a)
	}
	if r.err != nil || !h.headIsLast() {
		return nil, false
	}
	if h.at, ok = readRuns(&r, keys, actors, h.maxOp); !ok {
		return nil, false
	}
	h.keys = keys
	return h, r.err == nil && len(r.b) == 0
}

// readRuns reads what appendRuns wrote for keys and actors, every counter
// at most maxOp.
func readRuns(r *reader, keys, actors []string, maxOp uint64) (map[string]opRef, bool) {
	at := make(map[string]opRef, len(keys))
	next := 0
	for runs := r.uvarint(); runs > 0 && r.err == nil; runs-- {
		n, ctr, actor := r.uvarint(), r.uvarint(), r.uvarint()
		if n == 0 || n > uint64(len(keys)-next) || ctr == 0 || ctr > maxOp || maxOp-ctr < n-1 || actor >= uint64(len(actors)) {
			return nil, false
		}
		for i := range n {
			at[keys[next]] = opRef{ctr: ctr + i, actor: actors[actor]}
			next++
		}
	}
	return at, r.err == nil && next == len(keys)
}

// headIsLast reports whether the head is some actor's last change, as it is
// in every history.
func (h *history) headIsLast() bool {
	for _, last := range h.seqs {
		if last.hash == h.head && last.seq > 0 {
			return true
		}
	}
	return false
}

// namesDigest is a digest of field names (sorted), naming which fields a
// stored history maps.
func namesDigest(keys []string) uint64 {
	f := fnv.New64a()
	for _, k := range keys {
		f.Write([]byte(k))
		f.Write([]byte{0})
	}
	return f.Sum64()
}

// sortedActors returns the actors of seqs in byte order (hex keeps it).
func sortedActors(seqs map[string]lastChange) []string {
	actors := make([]string, 0, len(seqs))
	for a := range seqs {
		actors = append(actors, a)
	}
	slices.Sort(actors)
	return actors
}

// keptHistory returns the history to store with the Doc: the one last read
// or carried forward, or else the one its record held, while either is still
// the Doc's; nil when neither is (or the history is not one branch, or is a
// never-saved body's, which its fields give again).
func (d *Doc) keptHistory() []byte {
	if h := d.currentHistory(); h != nil && !h.none && h.body == nil {
		return appendHistory(nil, h)
	}
	return nil
}

// currentHistory returns the history last read, or the one the Doc's record
// held (read now), while it is still the Doc's: same epoch, edit count and
// saved form; nil when neither is.
func (d *Doc) currentHistory() *history {
	if h := d.hist; h != nil && h.epoch == d.epoch && h.edits == d.edits && h.saved == len(d.amBytes) {
		return h
	}
	stored := d.storedHist
	d.storedHist = nil
	epoch, edits, saved, ok := storedAt(stored)
	if !ok || epoch != d.epoch || edits != d.edits || saved != len(d.amBytes) || d.fields == nil {
		return nil
	}
	h, ok := readStoredHistory(stored, d.fields)
	if !ok {
		return nil
	}
	d.hist = h
	return h
}
