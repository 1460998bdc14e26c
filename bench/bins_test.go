package bench

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestOwnExecutableCopied: a run told to benchmark the executable it runs
// (`rhizome bench --rhizome-bin $(which rhizome)`) starts a private copy, so no
// page of the sites' binary is shared with the benchmark process, and the
// report still names the binary given; any other binary runs as given.
func TestOwnExecutableCopied(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := getBinaries(context.Background(), self, "etcd", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if b.rhizome == self || filepath.Dir(b.rhizome) != dir || b.named != self {
		t.Fatalf("own executable: runs %s (named %s), want a copy in %s named %s", b.rhizome, b.named, dir, self)
	}
	orig, err1 := os.Stat(self)
	cp, err2 := os.Stat(b.rhizome)
	if err1 != nil || err2 != nil || cp.Size() != orig.Size() || cp.Mode()&0o111 == 0 || os.SameFile(orig, cp) {
		t.Fatalf("copy %v (%v), original %v (%v)", cp, err2, orig, err1)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err = getBinaries(context.Background(), other, "etcd", filepath.Join(dir, "bin2"), io.Discard); err != nil || b.rhizome != other || b.named != other {
		t.Fatalf("another binary: runs %s (named %s), %v; want it as given", b.rhizome, b.named, err)
	}
}
