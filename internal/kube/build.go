package kube

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BuildRhizome builds ./cmd/rhizome of the module the test runs in into
// dir and returns the binary's path. A test builds it once and shares it
// between clusters; with a warm build cache this takes seconds.
func BuildRhizome(tb testing.TB, dir string) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("kube: go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		tb.Fatal("kube: not inside a module")
	}
	bin := filepath.Join(dir, "rhizome")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rhizome")
	cmd.Dir = filepath.Dir(gomod)
	// automerge-go is cgo.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("kube: go build ./cmd/rhizome: %v\n%s", err, out)
	}
	tb.Logf("kube: built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}
