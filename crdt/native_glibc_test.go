//go:build linux && cgo

package crdt

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/automerge/automerge-go"
)

// TestNativeHeapCountsAutomerge: automerge documents loaded on the C side show
// in NativeHeap's bytes in use.
func TestNativeHeapCountsAutomerge(t *testing.T) {
	before := settledNativeHeap(t)
	docs := make([]*automerge.Doc, 50)
	for i := range docs {
		docs[i] = automerge.New()
		for f := range 100 {
			if err := docs[i].Path(fmt.Sprintf("field%03d", f)).Set(fmt.Sprintf("value %d of document %d", f, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	after, _, _ := NativeHeap()
	runtime.KeepAlive(docs)
	if after-before < 1<<20 {
		t.Fatalf("50 documents of 100 fields took %d bytes of C memory (%d -> %d)", after-before, before, after)
	}
}

// settledNativeHeap collects Go's garbage and waits until the finalizers of
// documents earlier tests dropped have freed their C memory (it fell by 1 MiB
// while a run of this test loaded 50 documents), then returns the bytes in use.
func settledNativeHeap(t *testing.T) int64 {
	t.Helper()
	last, _, ok := NativeHeap()
	if !ok {
		t.Fatal("NativeHeap reports nothing under glibc")
	}
	for range 100 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // the finalizers run on a goroutine of their own
		now, _, _ := NativeHeap()
		if now == last {
			return now
		}
		last = now
	}
	return last
}
