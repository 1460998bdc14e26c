//go:build !linux

package resident

// Mappings returns nothing: it reads Linux's /proc/self/maps.
func Mappings(func(Mapping) bool) ([]Mapping, error) { return nil, nil }

// Bytes returns 0: it reads Linux's /proc/self/smaps.
func Bytes(func(Mapping) bool) (int64, error) { return 0, nil }

// DontNeed does nothing.
func DontNeed([]Range) error { return nil }

// PageOut does nothing.
func PageOut([]Range) error { return nil }

// ReleaseExecutable does nothing.
func ReleaseExecutable() (int64, error) { return 0, nil }
