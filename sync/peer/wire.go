package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/store"
)

// codec is the gRPC codec of the peer protocol: Messages in a small binary form
// (no protobuf: the protocol is ours and three messages long). It notes the size
// of each message on the wire (gRPC's framing aside) in the wireMessage.
type codec struct{}

func (codec) Name() string { return "rhizome-peer" }

func (codec) Marshal(v any) ([]byte, error) {
	w, ok := v.(*wireMessage)
	if !ok {
		return nil, fmt.Errorf("peer: cannot encode %T", v)
	}
	var b []byte
	switch {
	case w.auth != nil:
		b = append([]byte{authFrame}, w.auth...)
	case w.frame != nil:
		b = w.frame
	default:
		b = w.m.encode()
	}
	w.n = len(b)
	return b, nil
}

func (codec) Unmarshal(data []byte, v any) error {
	w, ok := v.(*wireMessage)
	if !ok {
		return fmt.Errorf("peer: cannot decode into %T", v)
	}
	w.n = len(data)
	if len(data) > 0 && data[0] == authFrame {
		w.auth = bytes.Clone(data[1:])
		return nil
	}
	if len(data) > 0 && data[0] == zstdFrame {
		w.frame = bytes.Clone(data[1:])
		return nil
	}
	return w.m.decode(data)
}

// wireVersion 7: a compressed gRPC stream's edits are packed (packEdits);
// 8: a snapshot's documents are crdt's format 5 (saved forms may hold packed
// changes); 9: a compressed stream is one zstd stream, not deflate's.
const wireVersion = 9

var errWire = errors.New("peer: malformed message")

// The flags byte of a message: bits a peer does not know are ignored.
const (
	flagMore      = 1 << iota // Message.More
	flagResend                // Message.Resend
	flagContinued             // Message.Continued
)

func (m *Message) encode() []byte {
	b := make([]byte, 0, m.sizeHint())
	b = append(b, wireVersion, byte(m.Kind))
	b = appendString(b, m.From)
	b = appendString(b, m.Origin)
	b = appendVV(b, m.VV)
	b = binary.AppendUvarint(b, uint64(len(m.Skip)))
	for _, s := range m.Skip {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Rows)))
	for _, site := range slices.Sorted(maps.Keys(m.Rows)) {
		b = appendString(b, site)
		b = appendVV(b, m.Rows[site])
	}
	b = binary.AppendUvarint(b, uint64(len(m.Changes)))
	for _, c := range m.Changes {
		b = appendString(b, c.Origin)
		b = binary.AppendUvarint(b, c.Seq)
		b = appendString(b, c.Key)
		b = binary.AppendVarint(b, c.Lease)
		b = appendString(b, c.Body)
	}
	var flags byte
	if m.More {
		flags |= flagMore
	}
	if m.Resend {
		flags |= flagResend
	}
	if m.Continued {
		flags |= flagContinued
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, m.PullID)
	if m.Kind == KindPull {
		b = binary.AppendUvarint(b, m.Acked)
		b = binary.AppendUvarint(b, uint64(len(m.Forgotten)))
		for _, f := range m.Forgotten {
			b = appendString(b, f.Origin)
			b = appendString(b, f.By)
			b = binary.AppendVarint(b, f.At)
		}
	}
	if m.Kind != KindSnapshot {
		return b
	}
	b = binary.AppendUvarint(b, m.SnapID)
	b = binary.AppendUvarint(b, uint64(m.Part))
	b = binary.AppendUvarint(b, uint64(m.Parts))
	snap := m.Snap
	if snap == nil {
		snap = &store.Snapshot{}
	}
	b = appendVV(b, snap.VV)
	b = binary.AppendUvarint(b, uint64(len(snap.Leases)))
	for _, l := range snap.Leases {
		b = appendString(b, l)
	}
	b = binary.AppendUvarint(b, uint64(len(snap.Docs)))
	for _, d := range snap.Docs {
		b = appendString(b, d.Key)
		b = binary.AppendVarint(b, d.Lease)
		b = appendString(b, d.Doc)
	}
	return b
}

// sizeHint is about the bytes of m's encoding, so that encoding a catch-up's
// batch (~150 KB) allocates once rather than doubling its way there.
func (m *Message) sizeHint() int {
	n := 256 + 32*(len(m.VV)+len(m.Skip)+len(m.Forgotten))
	for _, row := range m.Rows {
		n += 32 * (len(row) + 1)
	}
	for _, c := range m.Changes {
		n += len(c.Origin) + len(c.Key) + len(c.Body) + 32
	}
	if m.Snap != nil {
		n += 32 * (len(m.Snap.VV) + len(m.Snap.Leases))
		for _, l := range m.Snap.Leases {
			n += len(l)
		}
		for _, d := range m.Snap.Docs {
			n += len(d.Key) + len(d.Doc) + 16
		}
	}
	return n
}

func (m *Message) decode(b []byte) error {
	d := decoder{b: b}
	if d.byte() != wireVersion {
		return fmt.Errorf("peer: unknown wire version: %w", errWire)
	}
	m.Kind = Kind(d.byte())
	m.From = string(d.bytes())
	m.Origin = string(d.bytes())
	m.VV = d.vv()
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		m.Skip = append(m.Skip, string(d.bytes()))
	}
	n = d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		if m.Rows == nil {
			m.Rows = map[string]map[string]uint64{}
		}
		m.Rows[string(d.bytes())] = d.vv()
	}
	n = d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		m.Changes = append(m.Changes, store.Change{Origin: string(d.bytes()), Seq: d.uvarint(), Key: d.bytes(), Lease: d.varint(), Body: d.bytes()})
	}
	flags := d.byte()
	m.More, m.Resend, m.Continued = flags&flagMore != 0, flags&flagResend != 0, flags&flagContinued != 0
	m.PullID = d.uvarint()
	if m.Kind == KindPull {
		m.Acked = d.uvarint()
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.Forgotten = append(m.Forgotten, store.Forgetting{Origin: string(d.bytes()), By: string(d.bytes()), At: d.varint()})
		}
	}
	if m.Kind == KindSnapshot {
		m.SnapID = d.uvarint()
		m.Part, m.Parts = uint32(d.uvarint()), uint32(d.uvarint())
		m.Snap = &store.Snapshot{VV: d.vv()}
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.Snap.Leases = append(m.Snap.Leases, d.bytes())
		}
		n = d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.Snap.Docs = append(m.Snap.Docs, store.SnapshotDoc{Key: d.bytes(), Lease: d.varint(), Doc: d.bytes()})
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errWire
	}
	if d.err == nil && (m.Kind < KindPull || m.Kind > KindSnapshot) {
		d.err = fmt.Errorf("peer: unknown message kind %d: %w", m.Kind, errWire)
	}
	return d.err
}

func appendVV(b []byte, vv map[string]uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(vv)))
	for _, o := range slices.Sorted(maps.Keys(vv)) {
		b = appendString(b, o)
		b = binary.AppendUvarint(b, vv[o])
	}
	return b
}

// vv reads a version vector; nil when empty.
func (d *decoder) vv() map[string]uint64 {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	vv := make(map[string]uint64, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		vv[string(d.bytes())] = d.uvarint()
	}
	return vv
}

func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errWire
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// packEdits returns m with its edits packed for the stream whose sender's
// table is t (crdt.EditHashes: an edit's dependency on the key's last edit
// sent on the stream, and its checksum, left out). m itself is not changed.
// Only an ordered stream, read whole in order, can carry packed edits: a gRPC
// stream, when it is compressed (its frames' CRC-32C then checks what a packed
// edit's checksum no longer does); the in-memory Fabric, which may reorder,
// and a plain stream send changes whole.
func packEdits(t *crdt.EditHashes, m *Message) *Message {
	if len(m.Changes) == 0 {
		return m
	}
	packed := *m
	packed.Changes = make([]store.Change, len(m.Changes))
	for i, c := range m.Changes {
		c.Body = t.PackEdit(string(c.Key), c.Body)
		packed.Changes[i] = c
	}
	return &packed
}

// unpackEdits unpacks m's edits, read from the stream whose receiver's table
// is t, in place. An error breaks the stream: the tables no longer agree.
func unpackEdits(t *crdt.EditHashes, m *Message) error {
	for i := range m.Changes {
		c := &m.Changes[i]
		body, err := t.UnpackEdit(string(c.Key), c.Body)
		if err != nil {
			return fmt.Errorf("%w: %v", errWire, err)
		}
		c.Body = body
	}
	return nil
}
