//go:build !linux || !cgo

package crdt

// LimitNativeArenas does nothing: the arena limit is glibc's (see the Linux
// version).
func LimitNativeArenas(int) {}

// TrimNative does nothing: trimming is glibc's (see the Linux version).
func TrimNative() {}
