package peer

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCompressedStream: every frame decodes to its message alone, as it
// arrives (no frame waits for the next), messages repeating earlier ones cost
// less than their first copy, a large message (several zstd blocks, past the
// window) is compressed too and the stream goes on after it, and a damaged
// frame breaks the stream with errWire.
func TestCompressedStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d, f := newCompressor(), &decompressor{}
	var first, again, n int
	for i := range 300 {
		msg := []byte(fmt.Sprintf(`{"key":"/registry/pods/default/p%d","status":{"phase":"Running","n":%d}}`, i%20, rng.IntN(1000)))
		if i%7 == 0 {
			size := rng.IntN(3000)
			if i == 140 {
				size = compressWindow + 70000 // larger than the window
			}
			msg = make([]byte, size) // random
			for j := range msg {
				msg[j] = byte(rng.Uint32())
			}
		}
		if i == 200 {
			msg = bytes.Repeat(msg, 300<<10/len(msg)+1) // several blocks
		}
		frame, err := d.frame(msg)
		if err != nil {
			t.Fatal(err)
		}
		if i == 200 && len(frame) > len(msg)/20 {
			t.Errorf("a bulk message of %d bytes repeating itself took %d", len(msg), len(frame))
		}
		if frame[0] != zstdFrame {
			t.Fatalf("frame starts with %#x", frame[0])
		}
		got, err := f.message(frame[1:])
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: %d bytes back (%v), want %d", i, len(got), err, len(msg))
		}
		switch {
		case i == 1:
			first = len(frame)
		case i > 20 && i%7 != 0 && i != 200:
			again, n = again+len(frame), n+1
		}
	}
	if again/n >= first/2 {
		t.Errorf("a message like earlier ones took %d bytes on average, the first %d", again/n, first)
	}
	frame, err := d.frame([]byte("more"))
	if err != nil {
		t.Fatal(err)
	}
	frame[len(frame)/2] ^= 0xff
	if _, err := f.message(frame[1 : len(frame)-3]); !errors.Is(err, errWire) {
		t.Fatalf("a damaged frame: %v, want errWire", err)
	}
	if _, err := f.message(frame[1:]); !errors.Is(err, errWire) {
		t.Fatalf("a frame after a damaged one: %v, want errWire (the stream is broken)", err)
	}
}

// FuzzDecompress hands a decompressor arbitrary frames, as a peer might send them,
// after real ones: nothing may panic, a frame is a whole message or an error,
// and after an error the stream stays broken.
func FuzzDecompress(f *testing.F) {
	d := newCompressor()
	for _, msg := range []string{"", "a message", `{"status":{"phase":"Running"}}`} {
		frame, err := d.frame([]byte(msg))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[1:], frame[1:])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		in := &decompressor{}
		msgA, errA := in.message(a)
		if errA == nil && len(msgA) > len(a)*1032+64 {
			t.Fatalf("%d bytes of frame made a message of %d", len(a), len(msgA))
		}
		if _, errB := in.message(b); errA != nil && !errors.Is(errB, errWire) {
			t.Fatalf("after a broken frame (%v), the next: %v", errA, errB)
		}
	})
}
