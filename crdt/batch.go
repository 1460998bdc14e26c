package crdt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/automerge/automerge-go"
	kflate "github.com/klauspost/compress/flate"
)

// Batches of changes.
//
// A saved form edited in Go (amhistory.go) grows by one packed change an
// edit, and edits of the same fields (a status written again and again) each
// repeat most of what the one before said: packed one by one, the repeats
// stay, and so does each change's dependency on the one before (a hash no
// compressor shortens). automerge's whole save shares them, but saving whole
// means loading the document into automerge. So once the changes appended
// outgrow their bound (a quarter of the saved form's compacted part, see
// Doc.bounded), they are deflated together into one batch: a chunk of this
// package's own (batchMagic, how many changes, the length, then the changes'
// uncompressed chunks deflated as one stream, each dependency on the chunk
// before written as noHash), which joins the compacted part (the first chunk,
// a body's change or a whole save, and the batches after it). The next
// batching packs the last batch again with the changes after it, until that
// batch is closed at batchChanges changes and the next one starts. For a
// pod's status updates a batch costs a fifth or less of the changes deflated
// one by one.
//
// readChanges reads a batch as the changes it holds, and automerge is given
// the saved form with its batches unpacked (unbatched), each change's
// checksum checked: a batch changes what is stored, never what a change or
// a document is. Batching costs at most as much as batchChanges changes.

// batchMagic starts a batch; automerge's chunks start with chunkMagic.
var batchMagic = []byte{'r', 'z', 'b', 1}

// batchChanges is how many changes a batch holds before it is closed: the
// changes appended after it go into the next batch, so batching costs at
// most as much as that many changes, however long the history.
const batchChanges = 32

// chunkAt returns the length of the chunk that starts raw (an automerge chunk
// or a batch) and whether it is a batch.
func chunkAt(raw []byte) (n int, batch bool, err error) {
	head := 9 // magic, checksum, type
	switch {
	case bytes.HasPrefix(raw, batchMagic):
		_, w := binary.Uvarint(raw[len(batchMagic):]) // how many changes
		if w <= 0 {
			return 0, false, fmt.Errorf("crdt: batch: bad header: %w", errCorrupt)
		}
		head, batch = len(batchMagic)+w, true
	case len(raw) < head || !bytes.Equal(raw[:4], chunkMagic):
		return 0, false, fmt.Errorf("crdt: saved change: bad header: %w", errCorrupt)
	}
	size, w := binary.Uvarint(raw[head:])
	if w <= 0 || uint64(len(raw)-head-w) < size {
		return 0, false, fmt.Errorf("crdt: saved change: bad length: %w", errCorrupt)
	}
	return head + w + int(size), batch, nil
}

// batchLen returns how many changes a batch (a whole chunk) holds, as its
// header says, and where its deflated data starts.
func batchLen(batch []byte) (changes uint64, data int) {
	changes, w := binary.Uvarint(batch[len(batchMagic):])
	_, w2 := binary.Uvarint(batch[len(batchMagic)+w:])
	return changes, len(batchMagic) + w + w2
}

// compactedLen returns the length of saved's compacted part: its first chunk
// (a whole save or a body's change) and the batches that follow it (all of
// saved when it cannot be read).
func compactedLen(saved []byte) int {
	n, _, err := chunkAt(saved)
	for err == nil && n < len(saved) {
		m, batch, err := chunkAt(saved[n:])
		if err != nil || !batch {
			break
		}
		n += m
	}
	if err != nil {
		return len(saved)
	}
	return n
}

// openPart returns where the part of saved that batching packs anew starts:
// the last batch, unless it is closed (batchChanges changes), else the
// changes after it, or after the first chunk.
func openPart(saved []byte) (int, error) {
	first, _, err := chunkAt(saved)
	from := first
	for at := first; at < len(saved) && err == nil; {
		n, batch, err := chunkAt(saved[at:])
		if err != nil {
			return 0, err
		}
		if changes, _ := batchLen(saved[at : at+n]); batch && changes >= batchChanges {
			from = at + n
		} else if batch {
			from = at
		}
		at += n
	}
	return from, err
}

// batchContents returns what a batch (a whole chunk) holds: automerge's
// uncompressed change chunks.
func batchContents(batch []byte) ([]byte, error) {
	_, at := batchLen(batch)
	raw, err := inflate(batch[at:])
	if err != nil {
		return nil, fmt.Errorf("crdt: batch: inflate: %w", err)
	}
	return mapDeps(raw, false)
}

// A change of a one-branch history depends on the change before it, whose
// hash (32 random bytes) no compressor can shorten. In a batch such a
// dependency is written as noHash, and read back as the hash of the chunk
// before it in the batch; every chunk's checksum is checked against its
// contents as they really are.
var noHash automerge.ChangeHash

// mapDeps returns raw (uncompressed change chunks) with each dependency on
// the chunk before it written as noHash (pack), or noHash read back as that
// chunk's hash (!pack).
func mapDeps(raw []byte, pack bool) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	var prev automerge.ChangeHash
	for at := 0; at < len(raw); {
		n, batch, err := chunkAt(raw[at:])
		if err != nil || batch || raw[at+8] != chunkChange {
			return nil, fmt.Errorf("crdt: batch: not a change: %w", errCorrupt)
		}
		chunk := bytes.Clone(raw[at : at+n])
		_, w := binary.Uvarint(chunk[9:])
		contents := chunk[9+w:]
		real := changeHash(contents)
		if err := swapDeps(contents, prev, at > 0, pack); err != nil {
			return nil, err
		}
		if !pack {
			real = changeHash(contents)
		}
		if !bytes.Equal(real[:4], chunk[4:8]) {
			return nil, fmt.Errorf("crdt: batch: checksum mismatch: %w", errCorrupt)
		}
		prev, out, at = real, append(out, chunk...), at+n
	}
	return out, nil
}

// swapDeps rewrites in place the dependencies a change's contents start
// with: pack writes one on prev as noHash; !pack reads noHash back as prev,
// which must be there (hasPrev).
func swapDeps(contents []byte, prev automerge.ChangeHash, hasPrev, pack bool) error {
	r := reader{b: contents}
	for i := r.uvarint(); i > 0 && r.err == nil; i-- {
		at := len(contents) - len(r.b)
		switch dep := r.hash(); {
		case r.err != nil:
		case pack && hasPrev && dep == prev:
			copy(contents[at:], noHash[:])
		case !pack && dep == noHash:
			if !hasPrev {
				return fmt.Errorf("crdt: batch: a first change's dependency elided: %w", errCorrupt)
			}
			copy(contents[at:], prev[:])
		}
	}
	if r.err != nil {
		return fmt.Errorf("crdt: batch: dependencies: %w", r.err)
	}
	return nil
}

// unbatched returns saved with each batch replaced by the changes it holds,
// and each packed change unpacked: what automerge loads. Without either it
// is saved itself.
func unbatched(saved []byte) ([]byte, error) {
	var out []byte
	found, plain := false, 0 // saved[plain:at] is not in out yet
	for at := 0; at < len(saved); {
		n, batch, err := chunkAt(saved[at:])
		if err != nil {
			return nil, err
		}
		switch {
		case batch:
			raw, err := batchContents(saved[at : at+n])
			if err != nil {
				return nil, err
			}
			out = append(append(out, saved[plain:at]...), raw...)
			found, plain = true, at+n
		case saved[at+8] == chunkPackedChange:
			// automerge knows only its own chunk types.
			if out, err = appendUncompressed(append(out, saved[plain:at]...), saved[at:at+n]); err != nil {
				return nil, err
			}
			found, plain = true, at+n
		}
		at += n
	}
	if !found {
		return saved, nil
	}
	return append(out, saved[plain:]...), nil
}

// batched returns saved with the changes of its open part (openPart) put in
// one batch; saved itself when they are fewer than two.
func batched(saved []byte) ([]byte, error) {
	from, err := openPart(saved)
	if err != nil {
		return nil, err
	}
	raw, err := uncompressedChanges(saved[from:])
	if err != nil {
		return nil, err
	}
	changes, err := countChanges(raw)
	if err != nil || changes < 2 {
		return saved, err
	}
	if raw, err = mapDeps(raw, true); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := kflate.StatelessDeflate(&buf, raw, true, nil); err != nil {
		return nil, fmt.Errorf("crdt: deflate: %w", err)
	}
	out := append(saved[:from:from], batchMagic...)
	out = binary.AppendUvarint(out, uint64(changes))
	out = binary.AppendUvarint(out, uint64(buf.Len()))
	return append(out, buf.Bytes()...), nil
}

// countChanges returns how many chunks raw holds.
func countChanges(raw []byte) (int, error) {
	n := 0
	for at := 0; at < len(raw); n++ {
		size, _, err := chunkAt(raw[at:])
		if err != nil {
			return 0, err
		}
		at += size
	}
	return n, nil
}

// uncompressedChanges returns automerge's change chunks in raw, and those of
// its batches, uncompressed (chunk type 1; a chunk's checksum is over its
// uncompressed contents, so it stays).
func uncompressedChanges(raw []byte) ([]byte, error) {
	out := make([]byte, 0, 3*len(raw))
	for len(raw) > 0 {
		n, batch, err := chunkAt(raw)
		if err != nil {
			return nil, err
		}
		chunk := raw[:n]
		raw = raw[n:]
		if batch {
			held, err := batchContents(chunk)
			if err != nil {
				return nil, err
			}
			out = append(out, held...)
			continue
		}
		if chunk[8] == chunkChange {
			out = append(out, chunk...)
			continue
		}
		if out, err = appendUncompressed(out, chunk); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// appendUncompressed appends chunk, a change's chunk of any type, to out as
// an uncompressed one (the checksum, over the uncompressed contents, stays).
func appendUncompressed(out, chunk []byte) ([]byte, error) {
	_, w := binary.Uvarint(chunk[9:])
	contents, err := chunkContents(chunk[8], chunk[9+w:])
	if err != nil {
		return nil, err
	}
	out = append(append(out, chunk[:8]...), chunkChange)
	return append(binary.AppendUvarint(out, uint64(len(contents))), contents...), nil
}
