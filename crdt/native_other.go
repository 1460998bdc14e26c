//go:build !linux || !cgo

package crdt

// LimitNativeArenas does nothing: the arena limit is glibc's (see the Linux
// version).
func LimitNativeArenas(int) {}

// TrimNative does nothing: trimming is glibc's (see the Linux version).
func TrimNative() {}

// NativeHeap reports nothing (ok false): mallinfo2 is glibc's (see the Linux
// version).
func NativeHeap() (inUse, free int64, ok bool) { return 0, 0, false }
