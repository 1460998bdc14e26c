package kube

import (
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// BuildRhizome builds ./cmd/rhizome of the module the test runs in into
// dir and returns the binary's path. A test builds it once and shares it
// between clusters; with a warm build cache this takes seconds.
func BuildRhizome(tb testing.TB, dir string) string {
	tb.Helper()
	start := time.Now()
	bin, err := testbin.BuildRhizome(dir)
	if err != nil {
		tb.Fatalf("kube: %v", err)
	}
	tb.Logf("kube: built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}
