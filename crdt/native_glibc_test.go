//go:build linux && cgo

package crdt

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/automerge/automerge-go"
)

// TestNativeHeapCountsAutomerge: automerge documents loaded on the C side show
// in NativeHeap's bytes in use.
func TestNativeHeapCountsAutomerge(t *testing.T) {
	before, _, ok := NativeHeap()
	if !ok {
		t.Fatal("NativeHeap reports nothing under glibc")
	}
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
