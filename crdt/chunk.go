package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/automerge/automerge-go"
	kflate "github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/s2"
)

// automerge-go can read a saved change only by loading it into a document, where
// one whose dependencies are missing is parked out of sight. Before applying an
// edit the replica must know whether its dependencies are here, so it reads the
// two things it needs — the change's hash and dependencies — from the chunk header
// itself (automerge's binary format: magic, checksum, chunk type, length,
// contents; a change's contents start with its dependencies; type 2 is a change
// whose contents are deflated; the hash is SHA-256 over type, length and the
// uncompressed contents).

var chunkMagic = []byte{0x85, 0x6f, 0x4a, 0x83}

const (
	chunkChange           = 1
	chunkCompressedChange = 2
	// chunkPackedChange is this package's, never automerge's: a change whose
	// contents are compressed with S2 (klauspost/compress/s2), framed and
	// checksummed as automerge frames a change. Saved forms hold it
	// (packChanges); unbatched hands automerge the change uncompressed.
	chunkPackedChange = 'S'
)

// maxChunk bounds what one chunk's contents may claim to inflate to, so that a
// damaged length fails the read instead of allocating it.
const maxChunk = 64 << 20

// changeRef is a saved change's identity and dependencies.
type changeRef struct {
	hash     automerge.ChangeHash
	deps     []automerge.ChangeHash
	contents []byte // uncompressed
}

// readChanges reads the saved changes concatenated in raw, and those the
// batches among them hold (batch.go).
func readChanges(raw []byte) ([]changeRef, error) { return readChunks(raw, true) }

// readChunks is readChanges, reading batches only when batches is true.
func readChunks(raw []byte, batches bool) ([]changeRef, error) {
	var out []changeRef
	for len(raw) > 0 {
		if batches && bytes.HasPrefix(raw, batchMagic) {
			refs, n, err := readBatch(raw)
			if err != nil {
				return nil, err
			}
			out, raw = append(out, refs...), raw[n:]
			continue
		}
		if len(raw) < 9 || !bytes.Equal(raw[:4], chunkMagic) {
			return nil, fmt.Errorf("crdt: saved change: bad header: %w", errCorrupt)
		}
		typ := raw[8]
		n, w := binary.Uvarint(raw[9:])
		if w <= 0 || uint64(len(raw)-9-w) < n {
			return nil, fmt.Errorf("crdt: saved change: bad length: %w", errCorrupt)
		}
		checksum := raw[4:8]
		contents, err := chunkContents(typ, raw[9+w:9+w+int(n)])
		if err != nil {
			return nil, err
		}
		raw = raw[9+w+int(n):]
		ref := changeRef{hash: changeHash(contents), contents: contents}
		if !bytes.Equal(ref.hash[:4], checksum) {
			return nil, fmt.Errorf("crdt: saved change: checksum mismatch: %w", errCorrupt)
		}
		r := reader{b: contents}
		count := r.uvarint()
		for i := uint64(0); i < count && r.err == nil; i++ {
			ref.deps = append(ref.deps, r.hash())
		}
		if r.err != nil {
			return nil, fmt.Errorf("crdt: saved change: dependencies: %w", r.err)
		}
		out = append(out, ref)
	}
	return out, nil
}

// changeHash is the hash of the change whose uncompressed contents are
// contents.
func changeHash(contents []byte) automerge.ChangeHash {
	var hash automerge.ChangeHash
	h := sha256.New()
	h.Write([]byte{chunkChange})
	h.Write(binary.AppendUvarint(nil, uint64(len(contents))))
	h.Write(contents)
	h.Sum(hash[:0])
	return hash
}

// readBatch reads the changes of the batch that starts raw, and its length.
func readBatch(raw []byte) ([]changeRef, int, error) {
	n, _, err := chunkAt(raw)
	if err != nil {
		return nil, 0, err
	}
	contents, err := batchContents(raw[:n])
	if err != nil {
		return nil, 0, err
	}
	refs, err := readChunks(contents, false) // a batch holds no batch
	return refs, n, err
}

// inflaters keeps inflate readers for reuse: each holds a 32 KiB window,
// which reading a document's history change by change would otherwise
// allocate once a change. A pool of buffers, not state: what inflate returns
// depends on its argument alone.
var inflaters sync.Pool

// inflate returns the deflated bytes b inflated.
func inflate(b []byte) ([]byte, error) {
	src := bytes.NewReader(b)
	r, _ := inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = kflate.NewReader(src)
	} else if err := r.(kflate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	out := bytes.NewBuffer(make([]byte, 0, 4*len(b)))
	_, err := out.ReadFrom(r)
	inflaters.Put(r)
	return out.Bytes(), err
}

// chunkContents returns the uncompressed contents of a chunk of type typ
// (a change) whose contents as stored are data.
func chunkContents(typ byte, data []byte) ([]byte, error) {
	switch typ {
	case chunkChange:
		return data, nil
	case chunkCompressedChange:
		contents, err := inflate(data)
		if err != nil {
			return nil, fmt.Errorf("crdt: saved change: inflate: %w", err)
		}
		return contents, nil
	case chunkPackedChange:
		if n, err := s2.DecodedLen(data); err != nil || n > maxChunk {
			return nil, fmt.Errorf("crdt: saved change: packed length: %w", errCorrupt)
		}
		contents, err := s2.Decode(nil, data)
		if err != nil {
			return nil, fmt.Errorf("crdt: saved change: unpack: %v: %w", err, errCorrupt)
		}
		return contents, nil
	}
	return nil, fmt.Errorf("crdt: saved change: chunk type %d: %w", typ, errCorrupt)
}

// deflateMin is the size of a change's contents from which compressChanges
// deflates it, as automerge does its own changes, and packChanges packs it.
const deflateMin = 256

// compressChanges returns the saved changes concatenated in raw with each
// uncompressed change of deflateMin bytes or more deflated (chunk type 2, same
// checksum: a change's hash is over its uncompressed contents, so loading the
// result yields the same changes): what automerge loads, for the wire.
// automerge saves its changes since the last save uncompressed; a body's
// change deflates to about a third.
func compressChanges(raw []byte) ([]byte, error) {
	return appendCompressed(make([]byte, 0, len(raw)/2), raw, chunkCompressedChange)
}

// packChanges is compressChanges for a saved form (never shipped to a replica
// whose automerge loads it unread): the changes are packed with S2
// (chunkPackedChange), which a pod's body's change (3.8 KB) takes 6 us to
// pack and 2 to unpack, against 47 and 46 us to deflate and inflate, for a
// fifth more bytes.
func packChanges(raw []byte) ([]byte, error) {
	return appendCompressed(make([]byte, 0, len(raw)/2), raw, chunkPackedChange)
}

// appendCompressed appends raw's changes to out, each of deflateMin bytes or
// more compressed as a chunk of type typ (compressChanges, packChanges).
func appendCompressed(out, raw []byte, typ byte) ([]byte, error) {
	var buf bytes.Buffer
	var scratch []byte
	for len(raw) > 0 {
		if len(raw) < 9 || !bytes.Equal(raw[:4], chunkMagic) {
			return nil, fmt.Errorf("crdt: saved change: bad header: %w", errCorrupt)
		}
		n, w := binary.Uvarint(raw[9:])
		if w <= 0 || uint64(len(raw)-9-w) < n {
			return nil, fmt.Errorf("crdt: saved change: bad length: %w", errCorrupt)
		}
		chunk, contents := raw[:9+w+int(n)], raw[9+w:9+w+int(n)]
		raw = raw[len(chunk):]
		if chunk[8] != chunkChange || len(contents) < deflateMin {
			out = append(out, chunk...)
			continue
		}
		out = append(out, chunk[:8]...) // magic and checksum
		out = append(out, typ)
		if typ == chunkPackedChange {
			scratch = s2.Encode(scratch[:cap(scratch)], contents) // allocates when short
			out = binary.AppendUvarint(out, uint64(len(scratch)))
			out = append(out, scratch...)
			continue
		}
		// Stateless: no compressor state to allocate or keep per call.
		buf.Reset()
		if err := kflate.StatelessDeflate(&buf, contents, true, nil); err != nil {
			return nil, fmt.Errorf("crdt: deflate: %w", err)
		}
		out = binary.AppendUvarint(out, uint64(buf.Len()))
		out = append(out, buf.Bytes()...)
	}
	return out, nil
}
