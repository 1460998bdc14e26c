//go:build !linux

package store

import "github.com/dgraph-io/badger/v4"

// releaseTablePages does nothing: it reads Linux's /proc/self/maps (see
// tablepages.go and the Linux version).
func releaseTablePages(*badger.DB, string) (int64, error) { return 0, nil }

// resolvedDir returns dir: only the Linux version needs it resolved.
func resolvedDir(dir string) (string, error) { return dir, nil }
