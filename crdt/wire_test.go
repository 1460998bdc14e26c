package crdt

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"testing"
)

// podEdits returns the changes of a pod created and then edited n times by
// one site, each Encode'd as shipped, and the writer's value after them.
func podEdits(t testing.TB, n int) ([][]byte, []byte) {
	t.Helper()
	d := &Doc{}
	var out [][]byte
	for gen := range n + 1 {
		c, ok, err := d.Put(benchPod(t, gen), Stamp{uint64(gen + 1), "w"})
		if err != nil || !ok {
			t.Fatalf("put %d: %v %v", gen, ok, err)
		}
		out = append(out, c.Encode())
	}
	v, _ := d.Value()
	return out, v
}

// TestPackEditRoundTrip: a stream's edits unpack to the very changes packed,
// each after the first smaller by its dependency and checksum (36 bytes, and
// the zeros compress); a create passes whole; a replica that applies the
// unpacked changes ends equal to the writer.
func TestPackEditRoundTrip(t *testing.T) {
	changes, want := podEdits(t, 6)
	var send, recv EditHashes
	replica := &Doc{}
	for i, body := range changes {
		packed := send.PackEdit("/pods/a", body)
		got, err := recv.UnpackEdit("/pods/a", packed)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("change %d: unpacked differs from the change sent", i)
		}
		zeros := bytes.Count(packed, []byte{0}) - bytes.Count(body, []byte{0})
		switch {
		case i == 0 && !bytes.Equal(packed, body):
			t.Fatal("a create was packed")
		case i >= 2 && zeros < 32:
			t.Fatalf("edit %d: %d more zero bytes packed, want its dependency and checksum (36)", i, zeros)
		}
		c, err := DecodeChange(got)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replica.Apply(c); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	if got, _ := replica.Value(); !bytes.Equal(got, want) {
		t.Fatal("the replica's value differs from the writer's")
	}
}

// TestUnpackEditRefuses: a packed edit read without the table that packed it
// (a receiver that missed the key's last edit), or with a checksum its
// contents do not match, is an error, never a different change.
func TestUnpackEditRefuses(t *testing.T) {
	changes, _ := podEdits(t, 3)
	var send EditHashes
	var packed [][]byte
	for _, body := range changes {
		packed = append(packed, send.PackEdit("k", body))
	}
	var fresh EditHashes
	if _, err := fresh.UnpackEdit("k", packed[2]); err == nil {
		t.Fatal("an edit packed against a last edit the receiver lacks was unpacked")
	}
	var recv EditHashes
	for i, p := range packed[:2] {
		if _, err := recv.UnpackEdit("k", p); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	c, err := DecodeChange(changes[2])
	if err != nil {
		t.Fatal(err)
	}
	c.Data = bytes.Clone(c.Data)
	c.Data[4] ^= 0xff // a checksum that was sent, and is wrong
	if _, err := recv.UnpackEdit("k", c.Encode()); !errors.Is(err, errCorrupt) {
		t.Fatalf("a wrong checksum: %v, want errCorrupt", err)
	}
}

// TestEditHashesResetInStep: past maxEditHashes keys both ends forget every
// key at the same change, so edits packed after it still unpack.
func TestEditHashesResetInStep(t *testing.T) {
	changes, _ := podEdits(t, 2)
	var send, recv EditHashes
	for k := range maxEditHashes + 10 {
		key := fmt.Sprint("k", k%(maxEditHashes+5))
		for _, body := range changes {
			got, err := recv.UnpackEdit(key, send.PackEdit(key, body))
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("key %d: %v", k, err)
			}
		}
	}
	if len(send.last) != len(recv.last) || len(send.last) > maxEditHashes {
		t.Fatalf("tables hold %d and %d keys (bound %d)", len(send.last), len(recv.last), maxEditHashes)
	}
}

// FuzzUnpackEdit: whatever a stream delivers, UnpackEdit returns an error or
// a change, never panics, and a change it returns from a packed edit decodes.
func FuzzUnpackEdit(f *testing.F) {
	var send EditHashes
	changes, _ := podEdits(f, 2)
	for _, body := range changes {
		f.Add(send.PackEdit("k", body))
	}
	f.Fuzz(func(t *testing.T, packed []byte) {
		var recv EditHashes
		body, err := recv.UnpackEdit("k", packed)
		if err != nil {
			return
		}
		if _, _, _, ok := editContents(body); ok {
			if _, err := DecodeChange(body); err != nil {
				t.Fatalf("an unpacked edit does not decode: %v", err)
			}
		}
	})
}

// TestRebaseShippedUncompressed: a rebase goes on a stream with its body's
// change uncompressed, which the stream's deflate shortens against the value
// the rebase also carries (by a fifth at least, alone), and is read back as the
// very bytes sent.
func TestRebaseShippedUncompressed(t *testing.T) {
	d := &Doc{}
	for gen := range 5 {
		if _, _, err := d.Put(benchPod(t, gen), Stamp{uint64(gen + 1), "w"}); err != nil {
			t.Fatal(err)
		}
	}
	c, ok, err := d.Rebase("w", 5, nil)
	if err != nil || !ok {
		t.Fatalf("rebase: %v %v", ok, err)
	}
	body := c.Encode()
	var send, recv EditHashes
	packed := send.PackEdit("/pods/a", body)
	if bytes.Equal(packed, body) {
		t.Fatal("the rebase was sent as stored")
	}
	got, err := recv.UnpackEdit("/pods/a", packed)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back other bytes than the rebase sent (%v)", err)
	}
	if sent, stored := deflated(t, packed), deflated(t, body); 5*sent > 4*stored {
		t.Fatalf("deflated, the rebase sent takes %d bytes, as stored %d", sent, stored)
	} else {
		t.Logf("deflated: %d bytes sent, %d as stored", sent, stored)
	}
}

// deflated returns how many bytes b deflates to.
func deflated(t *testing.T, b []byte) int {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Len()
}
