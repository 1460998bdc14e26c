package multisite

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if build.dir, err = os.MkdirTemp("", "rhizome-multisite-"); err != nil {
		return "", fmt.Errorf("build dir: %w", err)
	}
	bin := filepath.Join(build.dir, "rhizome")
	// cmd/go puts its own GOROOT/bin first on a test's PATH, so this is the
	// toolchain running the test.
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rhizome")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1") // automerge is cgo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/rhizome: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot walks up from the working directory (this package's directory
// under go test) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
