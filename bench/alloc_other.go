//go:build !unix

package bench

import "io/fs"

// allocatedBytes is the disk space a file takes; without block counts, its size.
func allocatedBytes(info fs.FileInfo) int64 { return info.Size() }
