package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"

	"github.com/automerge/automerge-go"
)

// Docs and Changes are stored and shipped in a small versioned binary form.
const (
	// 2: a prior epoch follows the conflicts; 3: conflicts are records (kind,
	// winner, loser) followed by their count, and fields follow Kubernetes'
	// merge units, so an older document's clean flag does not say its fields;
	// 4: the one-branch history follows the prior (histstore.go; empty: none);
	// 5: the saved form may hold packed changes (chunkPackedChange), which
	// an older reader would take for damage.
	docFormat    = 5
	changeFormat = 1
)

var errCorrupt = errors.New("crdt: corrupt encoding")

// Encode returns the Doc's durable form.
func (d *Doc) Encode() []byte {
	var am, hist []byte
	if d.kind == Document && !d.deleted {
		am, hist = d.amBytes, d.keptHistory()
	}
	// Sized for the long parts, so that appending them copies each once.
	b := make([]byte, 0, 128+len(d.value)+len(am)+len(hist)+34*len(d.conflicts)+d.prior.size())
	b = append(b, docFormat)
	b = appendStamp(b, d.inc)
	b = appendBool(b, d.deleted)
	b = appendStamp(b, d.epoch)
	b = append(b, byte(d.kind))
	b = appendBool(b, d.clean)
	b = binary.AppendUvarint(b, uint64(d.edits))
	b = appendBytes(b, d.value)
	b = appendBytes(b, am)
	b = binary.AppendUvarint(b, uint64(len(d.conflicts)))
	for _, c := range d.conflicts {
		b = append(b, byte(c.Kind))
		b = appendStamp(b, c.Winner)
		b = appendStamp(b, c.Loser)
	}
	b = binary.AppendUvarint(b, d.recorded)
	b = d.appendPrior(b)
	return appendBytes(b, hist)
}

// size is about how many bytes appendPrior writes of p (0 for none).
func (p *prior) size() int {
	if p == nil {
		return 0
	}
	return 64 + len(p.amBytes) + 33*len(p.base) + 64*len(p.moved)
}

// appendPrior appends the Doc's prior epoch (a 0 when it has none).
func (d *Doc) appendPrior(b []byte) []byte {
	p := d.prior
	if p == nil || d.deleted {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendStamp(b, p.epoch)
	b = binary.AppendUvarint(b, p.mark)
	b = appendStrings(b, p.sites)
	b = appendBytes(b, p.amBytes)
	b = appendHashes(b, p.base)
	b = binary.AppendUvarint(b, uint64(len(p.moved)))
	for from, to := range p.moved {
		b = append(b, from[:]...)
		b = append(b, to[:]...)
	}
	return b
}

// DecodeDoc reads a Doc written by Encode, whose fields follow schemas (see
// SetSchemas; nil: the built-in kinds').
func DecodeDoc(b []byte, schemas Schemas) (*Doc, error) {
	r := reader{b: b}
	format := r.byte()
	if format < 1 || format > docFormat {
		return nil, fmt.Errorf("crdt: unknown doc format: %w", errCorrupt)
	}
	d := &Doc{schemas: schemas}
	d.inc = r.stamp()
	d.deleted = r.byte() == 1
	d.epoch = r.stamp()
	d.kind = Kind(r.byte())
	d.clean = r.byte() == 1
	d.edits = int(r.uvarint())
	d.value = r.bytes()
	d.amBytes = r.bytes()
	// Not stored: the saved form's compacted part (a whole save or a body's
	// change, and the batches after it) is what the chunks appended to it
	// count against (appendSaved, bounded).
	d.savedLen = compactedLen(d.amBytes)
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		if format < 3 {
			d.conflicts = append(d.conflicts, Conflict{Kind: ConcurrentCreate, Winner: d.inc, Loser: r.stamp()})
			continue
		}
		c := Conflict{Kind: ConflictKind(r.byte())}
		c.Winner, c.Loser = r.stamp(), r.stamp()
		d.conflicts = append(d.conflicts, c)
	}
	if d.recorded = uint64(len(d.conflicts)); format >= 3 {
		d.recorded = r.uvarint()
	}
	if format >= 2 && r.byte() == 1 {
		p := &prior{epoch: r.stamp(), mark: r.uvarint(), sites: r.strings(), amBytes: r.bytes(), base: r.hashes()}
		n := r.uvarint()
		p.moved = make(map[automerge.ChangeHash]automerge.ChangeHash, min(n, 1<<16))
		for i := uint64(0); i < n && r.err == nil; i++ {
			from, to := r.hash(), r.hash()
			p.moved[from] = to
		}
		d.prior = p
	}
	if format >= 4 {
		if d.storedHist = r.bytes(); len(d.storedHist) == 0 {
			d.storedHist = nil
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if d.kind == Document && !d.deleted && !d.inc.IsZero() {
		// Field diffs need the flat view. A clean value rebuilds it without
		// loading automerge; after some merges only automerge knows it. The
		// value is kept as stored: the merge rules that made it need the
		// validator, which the caller sets after decoding. A clean value is
		// cut by the built-in kinds' schemas, as a body never shipped was
		// (setBody); a custom resource's shipped body is read.
		// A body never edited is cut when first needed (cutFields), as
		// below.
		if d.clean && format >= 3 && len(d.amBytes) == 0 {
			d.lazy = true
			return d, nil
		}
		flat, _ := flattenValid(d.value, nil)
		if d.clean && format >= 3 && !maybeCustom(flat) {
			d.fields = flat
		} else {
			am, err := d.automerge("")
			if err != nil {
				return nil, err
			}
			if d.fields, err = readFields(am); err != nil {
				return nil, err
			}
			flat, _ = flattenValid(d.value, schemas)
			d.clean = maps.Equal(flat, d.fields)
		}
	}
	return d, nil
}

// Encode returns the Change's wire form.
func (c Change) Encode() []byte {
	b := []byte{changeFormat, byte(c.Op)}
	b = appendStamp(b, c.Inc)
	b = appendStamp(b, c.Epoch)
	b = append(b, byte(c.Kind))
	b = appendBytes(b, c.Data)
	b = appendBytes(b, c.Value)
	if c.Op == OpRebase {
		b = appendStamp(b, c.From)
		b = appendHashes(b, c.Cut)
		b = binary.AppendUvarint(b, c.Mark)
		b = appendStrings(b, c.Sites)
	}
	return b
}

// DecodeChange reads a Change written by Encode.
func DecodeChange(b []byte) (Change, error) {
	r := reader{b: b}
	if r.byte() != changeFormat {
		return Change{}, fmt.Errorf("crdt: unknown change format: %w", errCorrupt)
	}
	c := Change{Op: Op(r.byte())}
	c.Inc = r.stamp()
	c.Epoch = r.stamp()
	c.Kind = Kind(r.byte())
	c.Data = r.bytes()
	c.Value = r.bytes()
	if len(c.Value) == 0 {
		c.Value = nil
	}
	if c.Op == OpRebase {
		c.From = r.stamp()
		c.Cut = r.hashes()
		c.Mark = r.uvarint()
		c.Sites = r.strings()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("crdt: trailing bytes in change: %w", errCorrupt)
	}
	if r.err == nil && (c.Op < OpCreate || c.Op > OpRebase) {
		r.err = fmt.Errorf("crdt: unknown op %d: %w", c.Op, errCorrupt)
	}
	return c, r.err
}

func appendStamp(b []byte, s Stamp) []byte {
	b = binary.AppendUvarint(b, s.Counter)
	return appendBytes(b, []byte(s.Site))
}

func appendHashes(b []byte, hs []automerge.ChangeHash) []byte {
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendBytes(b, []byte(s))
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// reader decodes sequentially and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) hash() automerge.ChangeHash {
	var h automerge.ChangeHash
	if len(r.b) < len(h) {
		r.fail()
		return h
	}
	copy(h[:], r.b)
	r.b = r.b[len(h):]
	return h
}

func (r *reader) hashes() []automerge.ChangeHash {
	n := r.uvarint()
	if n > uint64(len(r.b))/32 {
		r.fail()
		return nil
	}
	hs := make([]automerge.ChangeHash, n)
	for i := range hs {
		hs[i] = r.hash()
	}
	return hs
}

func (r *reader) strings() []string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	var ss []string
	for i := uint64(0); i < n && r.err == nil; i++ {
		ss = append(ss, string(r.bytes()))
	}
	return ss
}

func (r *reader) stamp() Stamp {
	return Stamp{Counter: r.uvarint(), Site: string(r.bytes())}
}
