package upstream

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	// The suites run are dependencies of this module: these imports keep them,
	// at the versions in go.mod, in the module graph.
	_ "k8s.io/apiserver/pkg/storage/cacher"
	_ "k8s.io/apiserver/pkg/storage/etcd3"
	_ "k8s.io/apiserver/pkg/storage/testing"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// suites are the upstream packages run against Rhizome.
var suites = []string{
	"k8s.io/apiserver/pkg/storage/etcd3",
	"k8s.io/apiserver/pkg/storage/cacher",
}

// skipped lists upstream tests not run, each with its reason (also in the README).
var skipped = map[string]string{
	// A cacher whitebox test on a MockStorage: it never reaches the datastore.
	// Its mock lists fine and fails every watch, so the cacher is ready for an
	// instant between the two; a Watch that lands then (under CPU load, as in a
	// full test run on 2 cores) dereferences the nil field selector of the
	// test's ListOptions (cacher.go:543) and panics.
	"TestWatchNotHangingOnStartupFailure": "upstream race on a MockStorage, independent of the datastore",
}

func TestUpstreamStorageSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the upstream suites (minutes); not in -short")
	}
	root, modfile := prepare(t)
	var skip []string
	for name := range skipped {
		skip = append(skip, "^"+name+"$")
	}
	for _, pkg := range suites {
		t.Run(filepath.Base(pkg), func(t *testing.T) {
			args := []string{"test", "-modfile", modfile, "-count=1", "-timeout=20m"}
			if len(skip) > 0 {
				args = append(args, "-skip", strings.Join(skip, "|"))
			}
			// go test prints the suite's output (its stderr too) on stdout,
			// and its own errors (a build failure) on stderr.
			out, err := testbin.RunCmd(t.Context(), testbin.Cmd{Path: goBin(), Args: append(args, pkg),
				Dir: root, Env: append(os.Environ(), "CGO_ENABLED=1")})
			if err != nil {
				t.Fatalf("upstream suite %s failed: %v\n%s", pkg, err, tail(out.Stdout, 200))
			}
			t.Logf("%s", tail(out.Stdout+out.Stderr, 5))
		})
	}
}

// goBin is the go command running this test (go test puts its GOROOT first on PATH).
func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// prepare copies k8s.io/apiserver, at the version in go.mod, to a temporary
// directory with the drop-in test server in place, and writes a go.mod that
// replaces the module with that copy. The module cache itself stays untouched
// (and `go test -overlay` may not replace files in it).
func prepare(t *testing.T) (root, modfile string) {
	t.Helper()
	out, err := testbin.Run(t.Context(), goBin(), "list", "-m", "-f", "{{.Dir}}|{{.GoMod}}", "k8s.io/apiserver")
	if err != nil {
		t.Fatalf("locate k8s.io/apiserver: %v", err)
	}
	src, _, _ := strings.Cut(strings.TrimSpace(out), "|")
	out, err = testbin.Run(t.Context(), goBin(), "env", "GOMOD")
	if err != nil {
		t.Fatal(err)
	}
	gomod := strings.TrimSpace(out)
	root = filepath.Dir(gomod)

	tmp := t.TempDir()
	dst := filepath.Join(tmp, "apiserver")
	if err := copyTree(src, dst); err != nil {
		t.Fatalf("copy k8s.io/apiserver: %v", err)
	}
	dropIn, err := os.ReadFile("testdata/test_server.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "pkg/storage/etcd3/testserver/test_server.go"), dropIn, 0o644); err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	modfile = filepath.Join(tmp, "go.mod")
	if err := os.WriteFile(modfile, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	// The module's own go.mod already replaces k8s.io/apiserver (by its release,
	// for k8s.io/kubernetes' sake): swap that replacement for the copy.
	if out, err := testbin.Run(t.Context(), goBin(), "mod", "edit", "-dropreplace=k8s.io/apiserver", "-replace=k8s.io/apiserver="+dst, modfile); err != nil {
		t.Fatalf("go mod edit: %v\n%s", err, out) // err carries its stderr
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, modfile
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
