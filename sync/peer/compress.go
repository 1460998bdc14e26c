package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zstd"
)

// zstdFrame is the first byte of a frame of a stream's compressed messages:
// never a wire version, nor authFrame. (Wire version 8's peers marked their
// deflated frames 0xdf; a frame so marked is refused as malformed.)
const zstdFrame byte = 0x5a

// A stream's messages, when compressed, are one zstd frame that never ends:
// each message, its length first and its CRC-32C after, is written and
// flushed into a block of its own (or several, past zstd's 128 KiB blocks),
// which the receiver decodes whole on arrival. What messages repeat of one
// another — origins, keys, field names, the unchanged parts of a value edited
// again — is sent once per window, not once per message as with gRPC's
// per-message compressors; a push of one small change costs its new bytes and
// little more. A stream is ordered and reliable, so both ends hold the same
// window; a broken stream ends both, and the next starts afresh.
//
// zstd rather than deflate: its window reaches a key's last edit on the
// stream under status updates to a few hundred objects (deflate's 32 KiB held
// the last thirty-odd messages), its matches are not capped at 258 bytes, and
// it encodes and decodes faster at its fastest level than deflate at its
// own. Replaying the sites benchmark's edit streams (64 pods a site, a
// 100-byte status message each edit): deflate 106 bytes a change, zstd's
// fastest level 93 with a 64 KiB window, 85 with 256 KiB, 86 with 1 MiB;
// deflate took 2.4x zstd's time.
const compressWindow = 256 << 10

// castagnoli checks each message: the zstd stream carries no checksum until
// its frame ends, which it never does.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// compressor compresses one stream's messages. It is used by the stream's one
// sending goroutine.
type compressor struct {
	out bytes.Buffer
	w   *zstd.Encoder // the stream's history
}

func newCompressor() *compressor {
	c := &compressor{}
	// The options are valid: constants.
	c.w, _ = zstd.NewWriter(&c.out, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(compressWindow),
		zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	return c
}

// frame returns msg's frame: the compressed bytes the receiver needs to
// decode it, and only those. The frame is the caller's.
func (c *compressor) frame(msg []byte) ([]byte, error) {
	c.out.Reset()
	c.out.WriteByte(zstdFrame)
	length := binary.AppendUvarint(nil, uint64(len(msg)))
	sum := binary.BigEndian.AppendUint32(nil, crc32.Checksum(msg, castagnoli))
	for _, part := range [][]byte{length, msg, sum} {
		if _, err := c.w.Write(part); err != nil {
			return nil, err
		}
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return bytes.Clone(c.out.Bytes()), nil
}

// decompressor decompresses one stream's frames, in the order sent. It is used
// by the stream's one receiving goroutine.
type decompressor struct {
	in frameReader
	r  *zstd.Decoder
}

// message returns the message a frame holds (without zstdFrame). A frame that
// does not decode to one whole message breaks the stream: the window is lost
// with it.
func (f *decompressor) message(frame []byte) ([]byte, error) {
	if f.in.err != nil {
		return nil, f.in.err
	}
	f.in.b = frame // the last frame was read to its end
	if f.r == nil {
		// Synchronous (one goroutine, reading a block only when asked for
		// bytes), and refusing a window larger than ours.
		r, err := zstd.NewReader(&f.in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(compressWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("peer: zstd: %w", err)
		}
		f.r = r
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
				if len(f.in.b) == 0 {
					return b[:n], nil
				}
				err = fmt.Errorf("%d bytes after the message", len(f.in.b))
			} else {
				err = errors.New("checksum mismatch")
			}
		}
	}
	f.in.err = fmt.Errorf("%w: compressed frame: %v", errWire, err)
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

// byteReader reads one byte at a time from r, so a length prefix takes no
// more than its own bytes.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var c [1]byte
	_, err := io.ReadFull(b.r, c[:])
	return c[0], err
}
