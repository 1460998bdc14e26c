package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"unicode/utf8"

	"github.com/automerge/automerge-go"
)

// Writing automerge changes in Go.
//
// automerge-go writes a field with several cgo calls and makes a document of
// a few hundred bytes' worth of C memory per field, so building a body field
// by field, or loading a document only to write one edit, costs more than the
// rest of a write. Two changes are known in full without automerge: a body
// (every field set, in sorted order, by the epoch's actor, on nothing) and an
// edit of a one-branch history (its field writes, each overwriting the
// field's visible operation; amhistory.go), a never-edited body's first edit
// being one. Those are written here, in automerge's
// binary change format (a chunk: magic, checksum, type, length, contents; the
// contents: dependencies, actor, sequence number, first operation's counter,
// time, message, other actors, then the operations in columns), byte for byte
// as automerge writes them, so that automerge loads them as its own: the same
// change hashes wherever they are written, and a document saved whole and
// loaded again finds them (TestChangeBytesAlike compares the bytes with
// automerge's). automerge still holds and merges every document whose
// history forks; this only writes the two changes' bytes.

// Column ids of a change's operation columns (automerge's binary format: the
// column's number, shifted by four, and its encoding).
const (
	colKeyStr    = 0x15 // key: string, RLE
	colInsert    = 0x34 // insert: boolean
	colAction    = 0x42 // action: uint, RLE
	colValLen    = 0x56 // value: length and type, uint RLE
	colValRaw    = 0x57 // value: bytes
	colPredGroup = 0x70 // predecessors: count per op, uint RLE
	colPredActor = 0x71 // predecessors: actor index, uint RLE
	colPredCtr   = 0x73 // predecessors: counter, delta
)

// Operation actions and value types of automerge's format.
const (
	actionSet    = 1
	actionDelete = 3
	valueString  = 6
)

// fieldOp is one operation on the root map: a string value set, or (del) the
// field deleted; pred, when not zero, is the counter of the operation it
// overwrites, whose actor is the change's actor of index predActor (0: the
// change's author).
type fieldOp struct {
	key, value string
	del        bool
	pred       uint64
	predActor  uint64
}

// amChange is a change of the root map's string fields.
type amChange struct {
	deps    []automerge.ChangeHash // sorted
	actor   string                 // hex
	seq     uint64
	startOp uint64
	message string
	others  []string // other actors (hex), referenced by predActor = 1...
	ops     []fieldOp
}

// encode returns the change's chunk, uncompressed, and its hash.
func (c *amChange) encode() ([]byte, automerge.ChangeHash) {
	size := chunkHeadroom + 64 + 33*len(c.deps) + 17*(len(c.others)+1) + len(c.message)
	for _, op := range c.ops {
		size += 2*len(op.key) + len(op.value) + 16 // key and value, columns, and the key again while sorting runs
	}
	buf := make([]byte, chunkHeadroom, size)
	b := binary.AppendUvarint(buf, uint64(len(c.deps)))
	for _, h := range c.deps {
		b = append(b, h[:]...)
	}
	b = appendActor(b, c.actor)
	b = binary.AppendUvarint(b, c.seq)
	b = binary.AppendUvarint(b, c.startOp)
	b = appendSLEB(b, 0) // no timestamp
	b = appendString(b, c.message)
	b = binary.AppendUvarint(b, uint64(len(c.others)))
	for _, a := range c.others {
		b = appendActor(b, a)
	}
	b = c.appendColumns(b)
	contents := b[chunkHeadroom:]

	// The header goes in the headroom, just before the contents.
	var head [chunkHeadroom]byte
	h := binary.AppendUvarint(append(head[:0], chunkChange), uint64(len(contents)))
	sum := sha256.New()
	sum.Write(h)
	sum.Write(contents)
	var hash automerge.ChangeHash
	sum.Sum(hash[:0])
	start := chunkHeadroom - len(h) - 8
	copy(b[start:], chunkMagic)
	copy(b[start+4:], hash[:4])
	copy(b[start+8:], h)
	return b[start:], hash
}

// chunkHeadroom is room for a chunk's header: magic, checksum, type and length.
const chunkHeadroom = 4 + 4 + 1 + binary.MaxVarintLen64

// appendColumns appends the operations' column metadata and data (the empty
// columns left out, as automerge does).
func (c *amChange) appendColumns(b []byte) []byte {
	var keys rle[string]
	var actions, valLens, groups, predActors rle[uint64]
	var predCtrs delta
	var inserts boolRun
	size, keySize := 0, 0
	for _, op := range c.ops {
		size += len(op.value)
		keySize += len(op.key) + 2
	}
	raw := make([]byte, 0, size)
	// Keys are distinct: one literal run of them all, sized once.
	keys.put, keys.out, keys.lit = appendString, make([]byte, 0, keySize+binary.MaxVarintLen64), make([]string, 0, len(c.ops))
	for _, r := range []*rle[uint64]{&actions, &valLens, &groups, &predActors} {
		r.put = binary.AppendUvarint
	}
	for _, op := range c.ops {
		keys.add(op.key)
		inserts.add(false)
		if op.del {
			actions.add(actionDelete)
			valLens.add(0)
		} else {
			actions.add(actionSet)
			valLens.add(uint64(len(op.value))<<4 | valueString)
			raw = append(raw, op.value...)
		}
		if op.pred == 0 {
			groups.add(0)
			continue
		}
		groups.add(1)
		predActors.add(op.predActor)
		predCtrs.add(op.pred)
	}
	cols := []struct {
		id   uint64
		data []byte
	}{
		{colKeyStr, keys.finish()}, {colInsert, inserts.finish()}, {colAction, actions.finish()},
		{colValLen, valLens.finish()}, {colValRaw, raw}, {colPredGroup, groups.finish()},
		{colPredActor, predActors.finish()}, {colPredCtr, predCtrs.finish()},
	}
	cols = slices.DeleteFunc(cols, func(col struct {
		id   uint64
		data []byte
	}) bool {
		return len(col.data) == 0
	})
	b = binary.AppendUvarint(b, uint64(len(cols)))
	for _, col := range cols {
		b = binary.AppendUvarint(b, col.id)
		b = binary.AppendUvarint(b, uint64(len(col.data)))
	}
	for _, col := range cols {
		b = append(b, col.data...)
	}
	return b
}

func appendActor(b []byte, actor string) []byte {
	b = binary.AppendUvarint(b, uint64(len(actor)/2))
	b, _ = hex.AppendDecode(b, []byte(actor)) // always hex: actorID, or read from a change
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendSLEB appends v as a signed LEB128 integer (not Go's zigzag varint).
func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// rle is automerge's run-length encoding (without nulls): a run of two or
// more equal values is its length and the value; other values go in literal
// runs, the negated length followed by the values.
type rle[T comparable] struct {
	put func([]byte, T) []byte
	out []byte
	lit []T // the literal run pending; its last value may start a run
	val T   // the run's value, while n > 0
	n   int // the run's length
}

func (r *rle[T]) add(v T) {
	switch {
	case r.n > 0 && v == r.val:
		r.n++
	case r.n > 0:
		r.flushRun()
		r.lit = append(r.lit, v)
	case len(r.lit) > 0 && r.lit[len(r.lit)-1] == v:
		r.lit = r.lit[:len(r.lit)-1]
		r.flushLit()
		r.val, r.n = v, 2
	default:
		r.lit = append(r.lit, v)
	}
}

func (r *rle[T]) flushRun() {
	r.out = appendSLEB(r.out, int64(r.n))
	r.out = r.put(r.out, r.val)
	r.n = 0
}

func (r *rle[T]) flushLit() {
	if len(r.lit) == 0 {
		return
	}
	r.out = appendSLEB(r.out, -int64(len(r.lit)))
	for _, v := range r.lit {
		r.out = r.put(r.out, v)
	}
	r.lit = r.lit[:0]
}

func (r *rle[T]) finish() []byte {
	if r.n > 0 {
		r.flushRun()
	}
	r.flushLit()
	return r.out
}

// delta is automerge's delta encoding: the differences between successive
// values, run-length encoded as signed integers.
type delta struct {
	r    rle[int64]
	last uint64
}

func (d *delta) add(v uint64) {
	if d.r.put == nil {
		d.r.put = appendSLEB
	}
	d.r.add(int64(v - d.last))
	d.last = v
}

func (d *delta) finish() []byte { return d.r.finish() }

// boolRun is automerge's boolean encoding: the lengths of alternating runs of
// false and true, starting with false.
type boolRun struct {
	out []byte
	cur bool
	n   uint64
	any bool
}

func (r *boolRun) add(v bool) {
	r.any = true
	if v != r.cur {
		r.out = binary.AppendUvarint(r.out, r.n)
		r.cur, r.n = v, 0
	}
	r.n++
}

func (r *boolRun) finish() []byte {
	if !r.any {
		return nil
	}
	return binary.AppendUvarint(r.out, r.n)
}

// encodable reports whether fields can be written as a Go-made change: each
// key and value valid UTF-8 (automerge's strings), at least one field.
func encodable(fields map[string]string) bool {
	if len(fields) == 0 {
		return false
	}
	for k, v := range fields {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return false
		}
	}
	return true
}

// bodyChange is the change newDocAM commits for fields as site: every field
// set, in sorted order, on nothing.
func bodyChange(fields map[string]string, site string) *amChange {
	keys := sortedKeys(fields)
	c := &amChange{actor: actorID(site), seq: 1, startOp: 1, ops: make([]fieldOp, len(keys))}
	for i, k := range keys {
		c.ops[i] = fieldOp{key: k, value: fields[k]}
	}
	return c
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// maxColumnValues bounds the values readRLE reads from one column (a run's
// length is read from the change, so a damaged one could ask for any).
const maxColumnValues = 1 << 20

// readRLE reads a column of automerge's run-length encoding without nulls (nil
// when it holds a null or is malformed).
func readRLE[T any](col []byte, read func(*reader) T) []T {
	r := reader{b: col}
	var out []T
	for len(r.b) > 0 && r.err == nil {
		switch n := sleb(&r); {
		case n > 0 && n <= maxColumnValues-int64(len(out)):
			v := read(&r)
			for range n {
				out = append(out, v)
			}
		case n < 0 && -n <= int64(len(r.b)):
			for range -n {
				out = append(out, read(&r))
			}
		default:
			return nil
		}
	}
	if r.err != nil {
		return nil
	}
	return out
}

// sleb reads a signed LEB128 integer.
func sleb(r *reader) int64 {
	var v int64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			if c&0x40 != 0 && shift+7 < 64 {
				v |= -1 << (shift + 7)
			}
			return v
		}
	}
	r.fail()
	return 0
}
