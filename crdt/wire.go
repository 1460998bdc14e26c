package crdt

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/automerge/automerge-go"
)

// Edits packed for a stream.
//
// An edit (an OpUpdate's automerge change) depends on the change its site
// made before it, almost always the key's last edit: a 32-byte hash no
// compressor can shorten, plus the change's checksum (four more bytes of
// it), in a change whose new content is often smaller (a status message of
// 100 bytes). A stream that carries a key's edits in order, and is read in
// that order, can leave both out: its sender and its receiver keep, per key,
// the hash of the key's last edit on the stream (EditHashes), and PackEdit
// writes a dependency on that hash as noHash (as batches do on disk) and the
// checksum as zeros; UnpackEdit puts both back. Where the stream's last edit
// of the key is not what the edit depends on (another site's edit came
// between, the table was reset), the dependency stays whole. The change is
// the same once unpacked, hash and all; UnpackEdit checks a checksum that was
// sent against the contents.

// EditHashes is one end of a stream's table of the last edit of each key
// (see PackEdit). Both ends must see the same changes in the same order: the
// table forgets everything once it holds maxEditHashes keys, at the same
// change on both. Not safe for concurrent use.
type EditHashes struct {
	last map[string]automerge.ChangeHash
}

// maxEditHashes bounds an EditHashes table (about 100 bytes a key).
const maxEditHashes = 4096

// note records hash as key's last edit (noHash: the key's last change was
// not a packable edit).
func (t *EditHashes) note(key string, hash automerge.ChangeHash) {
	if hash == noHash {
		delete(t.last, key)
		return
	}
	if t.last == nil || len(t.last) >= maxEditHashes {
		t.last = make(map[string]automerge.ChangeHash)
	}
	t.last[key] = hash
}

// PackEdit returns body (a Change's Encode form, the change of key sent next
// on the stream t is the sender's end of) packed as the package comment says,
// and notes it in t. A change that is not an edit (or whose edit is not one
// plain change chunk) is returned as it is.
func (t *EditHashes) PackEdit(key string, body []byte) []byte {
	packed := bytes.Clone(body)
	op, data, contents, ok := editContents(packed) // within packed
	if !ok {
		t.note(key, noHash)
		if op == OpRebase {
			return shipRebase(body)
		}
		return body
	}
	hash := changeHash(contents)
	prev, hasPrev := t.last[key]
	if err := swapDeps(contents, prev, hasPrev, true); err != nil {
		t.note(key, noHash)
		return body
	}
	clear(data[4:8]) // the checksum: UnpackEdit computes it
	t.note(key, hash)
	return packed
}

// UnpackEdit returns the change PackEdit packed into packed (the change of
// key read next on the stream t is the receiver's end of), and notes it in t.
// It fails when packed names a last edit t does not hold, or carries a
// checksum its contents do not match.
func (t *EditHashes) UnpackEdit(key string, packed []byte) ([]byte, error) {
	body := bytes.Clone(packed)
	op, data, contents, ok := editContents(body) // within body
	if !ok {
		t.note(key, noHash)
		if op == OpRebase {
			return restoreRebase(packed), nil
		}
		return packed, nil
	}
	prev, hasPrev := t.last[key]
	if err := swapDeps(contents, prev, hasPrev, false); err != nil {
		return nil, fmt.Errorf("crdt: packed edit of %q: %w", key, err)
	}
	hash := changeHash(contents)
	sum := data[4:8]
	switch {
	case bytes.Equal(sum, []byte{0, 0, 0, 0}):
		copy(sum, hash[:4])
	case !bytes.Equal(sum, hash[:4]):
		return nil, fmt.Errorf("crdt: packed edit of %q: checksum mismatch: %w", key, errCorrupt)
	}
	t.note(key, hash)
	return body, nil
}

// A rebase carries its new body twice: as the value, JSON the stream's
// deflate compresses well against the key's earlier changes, and as the
// body's automerge change, deflated on its own (compressChanges), which the
// stream's deflate cannot shorten, ~2.4 KB of a pod's 2.9 KB rebase. Sent
// uncompressed instead (shipRebase), the change's field texts are the
// value's, a few bytes each to the stream's deflate; the receiver compresses
// it again (restoreRebase), giving back the very bytes sent, so every site
// logs and stores the same change. A rebase each 64 edits of a key made the
// sites benchmark's edits cost 366 bytes a change on the links, 219 without.

// shipRebase returns body (a Change's Encode form) with a rebase's body
// change uncompressed, when restoreRebase gives body back from that; else
// body as it is.
func shipRebase(body []byte) []byte {
	shipped := rewriteRebase(body, uncompressedChanges)
	if !bytes.Equal(restoreRebase(shipped), body) {
		return body
	}
	return shipped
}

// restoreRebase returns body with a rebase's body change compressed as it is
// stored (compressChanges); anything else, or a rebase already so, as it is.
func restoreRebase(body []byte) []byte { return rewriteRebase(body, compressChanges) }

// rewriteRebase returns body with a rebase's Data rewritten by rewrite; body
// itself when it is not a rebase, or rewrite fails or changes nothing.
func rewriteRebase(body []byte, rewrite func([]byte) ([]byte, error)) []byte {
	c, err := DecodeChange(body)
	if err != nil || c.Op != OpRebase {
		return body
	}
	data, err := rewrite(c.Data)
	if err != nil || bytes.Equal(data, c.Data) {
		return body
	}
	c.Data = data
	return c.Encode()
}

// editContents returns the op of body (a Change's Encode form; 0 when it does
// not decode) and, within body, its edit's change chunk and the chunk's
// contents; ok is false for anything but an edit that is one uncompressed
// change chunk.
func editContents(body []byte) (op Op, chunk, contents []byte, ok bool) {
	c, err := DecodeChange(body) // c.Data is within body
	if err != nil {
		return 0, nil, nil, false
	}
	if c.Op != OpUpdate {
		return c.Op, nil, nil, false
	}
	n, batch, err := chunkAt(c.Data)
	if err != nil || batch || n != len(c.Data) || c.Data[8] != chunkChange {
		return c.Op, nil, nil, false
	}
	_, w := binary.Uvarint(c.Data[9:])
	return c.Op, c.Data, c.Data[9+w:], true
}
