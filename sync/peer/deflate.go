package peer

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// deflateFrame is the first byte of a frame of a stream's deflated messages:
// never a wire version, nor authFrame.
const deflateFrame byte = 0xdf

// A stream's messages, when compressed, are one deflate stream: each message,
// its length first and its CRC-32C after, is written and flushed (a sync
// flush) into a frame of its own, which the receiver decodes whole on
// arrival. What messages repeat of one another — origins, keys, field names,
// the unchanged parts of a value edited again — is sent once per deflate
// window (32 KiB), not once per message as with gRPC's per-message
// compressors; a push of one small change costs its new bytes and little
// more. A stream is ordered and reliable, so both ends hold the same window; a
// broken stream ends both, and the next starts afresh.

// A message of bulkBytes or more (a catch-up's batch, a snapshot's part) is
// deflated at BestSpeed, by a compressor of its own that starts afresh for
// it: the frame is still part of the one deflate stream (raw deflate is a
// sequence of blocks, and the new compressor's matches reach only within the
// message, which the receiver's window holds). The stream's own compressor
// then starts afresh too: the receiver's window no longer holds what its
// history says. Such a message fills the 32 KiB window alone, so little is
// lost; the default level's search costs ~10x BestSpeed's on the bulk of a
// catch-up (17% of its CPU). Smaller messages stay at the default level:
// BestSpeed deflates a block under 128 bytes without matches, so small
// pushes would stop compressing against earlier ones.
const bulkBytes = 32 << 10

// castagnoli checks each deflated message: deflate has no checksum of its own.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// deflater compresses one stream's messages. It is used by the stream's one
// sending goroutine.
type deflater struct {
	out  bytes.Buffer
	w    *flate.Writer // the stream's history
	bulk *flate.Writer // messages of bulkBytes or more, each afresh
}

func newDeflater() *deflater {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.out, flate.DefaultCompression) // the levels are valid
	d.bulk, _ = flate.NewWriter(&d.out, flate.BestSpeed)
	return d
}

// frame returns msg's frame: the compressed bytes the receiver needs to
// decode it, and only those. The frame is the caller's.
func (d *deflater) frame(msg []byte) ([]byte, error) {
	d.out.Reset()
	d.out.WriteByte(deflateFrame)
	length := binary.AppendUvarint(nil, uint64(len(msg)))
	sum := binary.BigEndian.AppendUint32(nil, crc32.Checksum(msg, castagnoli))
	w := d.w
	if len(msg) >= bulkBytes {
		w = d.bulk
		w.Reset(&d.out)
		defer d.w.Reset(&d.out)
	}
	for _, part := range [][]byte{length, msg, sum} {
		if _, err := w.Write(part); err != nil {
			return nil, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return bytes.Clone(d.out.Bytes()), nil
}

// inflater decompresses one stream's frames, in the order sent. It is used by
// the stream's one receiving goroutine.
type inflater struct {
	in frameReader
	r  io.Reader
}

// message returns the message a frame holds (without deflateFrame). A frame
// that does not decode to one whole message breaks the stream: the window is
// lost with it.
func (f *inflater) message(frame []byte) ([]byte, error) {
	if f.in.err != nil {
		return nil, f.in.err
	}
	// What the decoder left of the last frame (its flush's empty block) comes
	// first.
	f.in.b = append(slices.Clip(f.in.b), frame...)
	if f.r == nil {
		f.r = flate.NewReader(&f.in) // reads only the bytes it decodes (an io.ByteReader)
	}
	n, err := binary.ReadUvarint(byteReader{f.r})
	if err == nil && n > maxMessageBytes {
		err = fmt.Errorf("a message of %d bytes", n)
	}
	if err == nil {
		// Grown as it decodes: a length alone does not take memory.
		var msg bytes.Buffer
		if _, err = io.CopyN(&msg, f.r, int64(n)+4); err == nil {
			b := msg.Bytes()
			if binary.BigEndian.Uint32(b[n:]) == crc32.Checksum(b[:n], castagnoli) {
				return b[:n], nil
			}
			err = errors.New("checksum mismatch")
		}
	}
	f.in.err = fmt.Errorf("%w: deflated frame: %v", errWire, err)
	return nil, f.in.err
}

// errFrameShort is what a frame's reader returns past its end: the decoder
// asked for bytes the sender did not put in the frame.
var errFrameShort = errors.New("frame ends amid a message")

// frameReader hands the decoder the current frame's bytes, and never waits
// for the next frame.
type frameReader struct {
	b   []byte
	err error
}

func (r *frameReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errFrameShort
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (r *frameReader) ReadByte() (byte, error) {
	if len(r.b) == 0 {
		return 0, errFrameShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// byteReader reads one byte at a time from r, so a length prefix takes no
// more than its own bytes.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var c [1]byte
	_, err := io.ReadFull(b.r, c[:])
	return c[0], err
}
