package e2e

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// build is the rhizome binary of this test process. It is package state only
// because TestMain must remove it after every test has used it; a test gets it
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

// rhizomeBinary builds ./cmd/rhizome once per test process, lazily so that a
// run selecting no test here builds nothing.
func rhizomeBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.path, build.err = buildRhizome()
	})
	if build.err != nil {
		t.Fatalf("e2e: %v", build.err)
	}
	return build.path
}

func buildRhizome() (string, error) {
	var err error
	if build.dir, err = os.MkdirTemp("", "rhizome-e2e-"); err != nil {
		return "", fmt.Errorf("build dir: %w", err)
	}
	return testbin.BuildRhizome(build.dir)
}
