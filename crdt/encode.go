package crdt

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Docs and Changes are stored and shipped in a small versioned binary form.
const (
	docFormat    = 1
	changeFormat = 1
)

var errCorrupt = errors.New("crdt: corrupt encoding")

// Encode returns the Doc's durable form.
func (d *Doc) Encode() []byte {
	b := []byte{docFormat}
	b = appendStamp(b, d.inc)
	b = appendBool(b, d.deleted)
	b = appendStamp(b, d.epoch)
	b = append(b, byte(d.kind))
	b = appendBool(b, d.clean)
	b = binary.AppendUvarint(b, uint64(d.edits))
	b = appendBytes(b, d.value)
	var am []byte
	if d.kind == Document && !d.deleted {
		am = d.amBytes
	}
	b = appendBytes(b, am)
	b = binary.AppendUvarint(b, uint64(len(d.conflicts)))
	for _, s := range d.conflicts {
		b = appendStamp(b, s)
	}
	return b
}

// DecodeDoc reads a Doc written by Encode.
func DecodeDoc(b []byte) (*Doc, error) {
	r := reader{b: b}
	if r.byte() != docFormat {
		return nil, fmt.Errorf("crdt: unknown doc format: %w", errCorrupt)
	}
	d := &Doc{}
	d.inc = r.stamp()
	d.deleted = r.byte() == 1
	d.epoch = r.stamp()
	d.kind = Kind(r.byte())
	d.clean = r.byte() == 1
	d.edits = int(r.uvarint())
	d.value = r.bytes()
	d.amBytes = r.bytes()
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		d.conflicts = append(d.conflicts, r.stamp())
	}
	if r.err != nil {
		return nil, r.err
	}
	if d.kind == Document && !d.deleted && !d.inc.IsZero() {
		// Field diffs need the flat view. A clean value rebuilds it without
		// loading automerge; after some merges only automerge knows it.
		if d.clean {
			d.fields, _ = flatten(d.value)
		} else {
			if _, err := d.automerge(""); err != nil {
				return nil, err
			}
			if err := d.refresh(); err != nil {
				return nil, err
			}
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
	return appendBytes(b, c.Value)
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
	if r.err == nil && (c.Op < OpCreate || c.Op > OpDelete) {
		r.err = fmt.Errorf("crdt: unknown op %d: %w", c.Op, errCorrupt)
	}
	return c, r.err
}

func appendStamp(b []byte, s Stamp) []byte {
	b = binary.AppendUvarint(b, s.Counter)
	return appendBytes(b, []byte(s.Site))
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

func (r *reader) stamp() Stamp {
	return Stamp{Counter: r.uvarint(), Site: string(r.bytes())}
}
