//go:build linux && cgo

package crdt

/*
#include <malloc.h>
*/
import "C"

// LimitNativeArenas caps the C allocator's arenas, which hold automerge's
// memory, at n. glibc gives every thread that allocates an arena of its own,
// up to eight per core, and keeps each arena's freed memory for reuse by that
// arena alone; cgo calls run on whichever of Go's threads is free, so a busy
// store spreads automerge documents over all of them and its resident memory
// grows with the number of arenas rather than the live documents (measured at
// 20,000 pods: about 360 MiB of C memory beyond the live documents by default,
// 200 MiB with two arenas). It affects only arenas made after the call, so a
// process calls it first thing, as MALLOC_ARENA_MAX would. No-op elsewhere.
func LimitNativeArenas(n int) {
	C.mallopt(C.M_ARENA_MAX, C.int(n))
}

// NativeHeap reports the C allocator's memory (glibc's mallinfo2, all arenas):
// inUse is what is allocated, automerge's documents and whatever else C code
// holds; free is what the arenas keep freed but not given back to the system
// (TrimNative returns it). ok is false where the allocator cannot tell.
func NativeHeap() (inUse, free int64, ok bool) {
	m := C.mallinfo2()
	return int64(m.uordblks) + int64(m.hblkhd), int64(m.fordblks), true
}

// TrimNative gives the C allocator's free memory back to the system
// (malloc_trim): glibc otherwise returns only what is freed at the top of an
// arena. Call it after Go's collector has finalized unloaded documents.
func TrimNative() {
	C.malloc_trim(0)
}
