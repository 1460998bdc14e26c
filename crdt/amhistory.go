package crdt

import (
	"bytes"
	"encoding/hex"
	"slices"

	"github.com/automerge/automerge-go"
)

// Writing a later edit in Go.
//
// A document whose history is one branch (every change depends on the one
// before it, the first on nothing) of root-map string writes and deletes —
// what this package writes — has at most one visible operation on each
// field. An edit of it is then known in full without automerge: it depends on
// the last change and on its actor's own last change (automerge names both),
// its actor's sequence number is one past that actor's last,
// its operations are numbered from one past the greatest so far, and each
// overwrites (names as its predecessor) the field's visible operation. A
// history is that state, read from the saved form's changes (readHistory) or
// a never-saved body's fields (bodyHistory), and carried forward edit by
// edit. Anything else — a fork (concurrent edits), a document saved whole,
// an operation of another kind — is not a history, and automerge writes and
// merges the edit as before.

// opRef names an operation: its counter and its actor (hex).
type opRef struct {
	ctr   uint64
	actor string
}

// history is what a one-branch history of field writes ends in.
type history struct {
	head  automerge.ChangeHash
	maxOp uint64
	seqs  map[string]lastChange // each actor's last change
	at    map[string]opRef      // each field's visible operation
	keys  []string              // at's keys, sorted
	// body is the saved form of a never-saved body's change (bodyHistory):
	// the change packed as packChanges makes it, until an edit saves it.
	// It is made with the history, so that Doc.Prepare pays for the packing
	// ahead of the edit.
	body []byte
	// What the history was read from: Doc.history reads it again when the Doc
	// moved on otherwise. none: the Doc's history is not one branch.
	epoch        Stamp
	edits, saved int
	none         bool
}

// lastChange is an actor's last change: its sequence number and hash.
type lastChange struct {
	seq  uint64
	hash automerge.ChangeHash
}

// deps is what automerge makes a change by actor depend on: the head, and
// the actor's own last change (sorted, once).
func (h *history) deps(actor string) []automerge.ChangeHash {
	deps := []automerge.ChangeHash{h.head}
	if own, ok := h.seqs[actor]; ok && own.hash != h.head {
		deps = append(deps, own.hash)
		slices.SortFunc(deps, func(a, b automerge.ChangeHash) int { return bytes.Compare(a[:], b[:]) })
	}
	return deps
}

// bodyHistory is the history of a never-edited body of fields written by
// site: its one change (bodyChange).
func bodyHistory(fields map[string]string, site string) *history {
	c := bodyChange(fields, site)
	raw, hash := c.encode()
	saved, err := packChanges(raw)
	if err != nil {
		return nil // not a change this package can read: no history
	}
	h := &history{seqs: map[string]lastChange{}, at: make(map[string]opRef, len(fields)), keys: make([]string, 0, len(fields)), body: saved}
	h.take(c, hash)
	return h
}

// readHistory reads the history of a saved form made of changes (chunks, as
// appendSaved and this file append them), and the fields it ends with. ok is
// false unless it is one branch of root-map string writes and deletes, each
// overwriting the field's visible operation, numbered as automerge numbers
// them. A change held twice counts once.
func readHistory(saved []byte) (h *history, fields map[string]string, ok bool) {
	refs, err := readChanges(saved)
	if err != nil || len(refs) == 0 {
		return nil, nil, false
	}
	h = &history{seqs: map[string]lastChange{}, at: map[string]opRef{}}
	fields = map[string]string{}
	seen := make(map[automerge.ChangeHash]bool, len(refs))
	for _, ref := range refs {
		if seen[ref.hash] {
			continue
		}
		c, ok := parseChange(ref.contents)
		if !ok || !h.continuedBy(c, len(seen) == 0) {
			return nil, nil, false
		}
		for _, op := range c.ops {
			if op.del {
				delete(fields, op.key)
			} else {
				fields[op.key] = op.value
			}
		}
		h.take(c, ref.hash)
		seen[ref.hash] = true
	}
	return h, fields, true
}

// continuedBy reports whether c is the next change of the history as
// automerge would write it (first: the history is empty).
func (h *history) continuedBy(c *amChange, first bool) bool {
	switch {
	case first != (len(c.deps) == 0), !first && !slices.Equal(c.deps, h.deps(c.actor)),
		c.seq != h.seqs[c.actor].seq+1, c.startOp != h.maxOp+1, len(c.ops) == 0:
		return false
	}
	written := make(map[string]bool, len(c.ops))
	for _, op := range c.ops {
		prev, visible := h.at[op.key]
		switch {
		case written[op.key], visible != (op.pred != 0),
			visible && (prev.ctr != op.pred || prev.actor != c.actorAt(op.predActor)):
			return false
		}
		written[op.key] = true
	}
	return true
}

// take moves the history past c, whose hash is hash.
func (h *history) take(c *amChange, hash automerge.ChangeHash) {
	for i, op := range c.ops {
		_, held := h.at[op.key]
		switch {
		case op.del && held:
			delete(h.at, op.key)
			j, _ := slices.BinarySearch(h.keys, op.key)
			h.keys = slices.Delete(h.keys, j, j+1)
		case !op.del:
			switch {
			case held:
			case len(h.keys) == 0 || h.keys[len(h.keys)-1] < op.key:
				h.keys = append(h.keys, op.key) // a body's ops come sorted
			default:
				j, _ := slices.BinarySearch(h.keys, op.key)
				h.keys = slices.Insert(h.keys, j, op.key)
			}
			h.at[op.key] = opRef{ctr: c.startOp + uint64(i), actor: c.actor}
		}
	}
	h.head, h.seqs[c.actor] = hash, lastChange{seq: c.seq, hash: hash}
	h.maxOp = max(h.maxOp, c.startOp+uint64(len(c.ops))-1)
}

// edit is the change automerge commits for set and del (deletes in the order
// given, after the sets, as writeFields writes them) as actor with message,
// on the history's head.
func (h *history) edit(set map[string]string, del []string, actor, message string) *amChange {
	c := &amChange{deps: h.deps(actor), actor: actor, seq: h.seqs[actor].seq + 1,
		startOp: h.maxOp + 1, message: message, ops: make([]fieldOp, 0, len(set)+len(del))}
	for _, k := range sortedKeys(set) {
		c.ops = append(c.ops, fieldOp{key: k, value: set[k]})
	}
	for _, k := range del {
		c.ops = append(c.ops, fieldOp{key: k, del: true})
	}
	// automerge lists the author first, then every other actor the change
	// names, in byte order (hex keeps it).
	for _, op := range c.ops {
		if p, ok := h.at[op.key]; ok && p.actor != actor && !slices.Contains(c.others, p.actor) {
			c.others = append(c.others, p.actor)
		}
	}
	slices.Sort(c.others)
	for i := range c.ops {
		if p, ok := h.at[c.ops[i].key]; ok {
			c.ops[i].pred = p.ctr
			if p.actor != actor {
				c.ops[i].predActor = uint64(slices.Index(c.others, p.actor)) + 1
			}
		}
	}
	return c
}

// actorAt is the actor of index i in the change (0: its author).
func (c *amChange) actorAt(i uint64) string {
	if i == 0 {
		return c.actor
	}
	if i > uint64(len(c.others)) {
		return ""
	}
	return c.others[i-1]
}

// fieldEdit returns what c writes, as edit takes it: the fields set and the
// fields deleted (in order). ok is false when c writes a field twice or puts
// a delete before a set, which edit would not write.
func (c *amChange) fieldEdit() (set map[string]string, del []string, ok bool) {
	set = make(map[string]string, len(c.ops))
	for _, op := range c.ops {
		if _, dup := set[op.key]; dup || (op.del && slices.Contains(del, op.key)) {
			return nil, nil, false
		}
		if op.del {
			del = append(del, op.key)
			continue
		}
		if len(del) > 0 {
			return nil, nil, false
		}
		set[op.key] = op.value
	}
	return set, del, true
}

// Column ids a field-edit change may hold; any other makes it not one.
var fieldEditColumns = []uint64{colKeyStr, colInsert, colAction, colValLen, colValRaw, colPredGroup, colPredActor, colPredCtr}

// parseChange reads a change's contents (uncompressed) if it holds only
// root-map string writes and deletes, each with at most one predecessor, and
// no timestamp. ok is false for anything else, or anything malformed.
func parseChange(contents []byte) (c *amChange, ok bool) {
	r := reader{b: contents}
	c = &amChange{deps: r.hashes()}
	c.actor = hex.EncodeToString(r.bytes())
	c.seq, c.startOp = r.uvarint(), r.uvarint()
	if sleb(&r) != 0 {
		return nil, false
	}
	c.message = string(r.bytes())
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		if n > uint64(len(r.b)) {
			return nil, false
		}
		c.others = append(c.others, hex.EncodeToString(r.bytes()))
	}
	cols, ok := readColumns(&r)
	if !ok {
		return nil, false
	}
	c.ops, ok = readFieldOps(cols)
	return c, ok
}

// readColumns reads a change's column metadata and data: only columns of
// fieldEditColumns, in ascending order, and nothing after them.
func readColumns(r *reader) (map[uint64][]byte, bool) {
	n := r.uvarint()
	if n > uint64(len(fieldEditColumns)) {
		return nil, false
	}
	ids, lens := make([]uint64, n), make([]uint64, n)
	for i := range ids {
		ids[i], lens[i] = r.uvarint(), r.uvarint()
		if !slices.Contains(fieldEditColumns, ids[i]) || (i > 0 && ids[i] <= ids[i-1]) {
			return nil, false
		}
	}
	cols := make(map[uint64][]byte, n)
	for i, id := range ids {
		if r.err != nil || lens[i] > uint64(len(r.b)) {
			return nil, false
		}
		cols[id], r.b = r.b[:lens[i]], r.b[lens[i]:]
	}
	return cols, r.err == nil && len(r.b) == 0
}

// readFieldOps reads the operations of a field-edit change's columns.
func readFieldOps(cols map[uint64][]byte) ([]fieldOp, bool) {
	keys := readRLE(cols[colKeyStr], (*reader).bytes)
	actions := readRLE(cols[colAction], (*reader).uvarint)
	valLens := readRLE(cols[colValLen], (*reader).uvarint)
	groups := readRLE(cols[colPredGroup], (*reader).uvarint)
	predActors := readRLE(cols[colPredActor], (*reader).uvarint)
	predCtrs := readDelta(cols[colPredCtr])
	n := len(keys)
	if n == 0 || len(actions) != n || len(valLens) != n || len(groups) != n || !noInserts(cols[colInsert], n) ||
		len(predActors) != len(predCtrs) {
		return nil, false
	}
	raw, preds := cols[colValRaw], 0
	ops := make([]fieldOp, n)
	for i, k := range keys {
		op := &ops[i]
		op.key = string(k)
		size, typ := valLens[i]>>4, valLens[i]&0xf
		switch {
		case actions[i] == actionSet && typ == valueString && size <= uint64(len(raw)):
			op.value, raw = string(raw[:size]), raw[size:]
		case actions[i] == actionDelete && valLens[i] == 0:
			op.del = true
		default:
			return nil, false
		}
		switch {
		case groups[i] > 1 || (groups[i] == 1 && preds >= len(predCtrs)):
			return nil, false
		case groups[i] == 1:
			op.pred, op.predActor = predCtrs[preds], predActors[preds]
			preds++
		}
		if op.pred == 0 && (groups[i] == 1 || op.del) {
			return nil, false // no op 0; a delete deletes something
		}
	}
	return ops, len(raw) == 0 && preds == len(predCtrs)
}

// readDelta reads a column of automerge's delta encoding (nil when malformed
// or holding a value below 1).
func readDelta(col []byte) []uint64 {
	deltas := readRLE(col, sleb)
	out := make([]uint64, len(deltas))
	var v int64
	for i, d := range deltas {
		if v += d; v < 1 {
			return nil
		}
		out[i] = uint64(v)
	}
	return out
}

// noInserts reports whether a boolean column holds n values, all false.
func noInserts(col []byte, n int) bool {
	r := reader{b: col}
	falses := r.uvarint()
	return r.err == nil && len(r.b) == 0 && falses == uint64(n)
}
