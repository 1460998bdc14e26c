package multisite

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// build is the rhizome binary of this test process. It is package state only
// because TestMain must remove it after every test has used it; tests get it
// through rhizomeBinary.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// rhizomeBinary builds ./cmd/rhizome once per test process, lazily, so a run
// that selects nothing here (or skips) builds nothing.
func rhizomeBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.path, build.err = buildRhizome() })
	if build.err != nil {
		t.Fatalf("multisite: %v", build.err)
	}
	return build.path
}

func buildRhizome() (string, error) {
	var err error
	if build.dir, err = os.MkdirTemp("", "rhizome-multisite-"); err != nil {
		return "", fmt.Errorf("build dir: %w", err)
	}
	return testbin.BuildRhizome(build.dir)
}
