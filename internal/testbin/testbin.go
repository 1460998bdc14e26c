package testbin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ModulePath identifies a Rhizome checkout by its go.mod.
const ModulePath = "github.com/rhizome-kv/rhizome"

// KubeBinaries are absolute paths to the Kubernetes control-plane binaries.
type KubeBinaries struct {
	Dir               string // the directory holding all of them
	APIServer         string // kube-apiserver
	ControllerManager string // kube-controller-manager
	Scheduler         string // kube-scheduler
	Kubectl           string // kubectl
}

// Etcd returns absolute paths to the etcd and etcdctl binaries pinned in
// scripts/bins.sh, building them on first use. It fails t if they cannot be
// built.
func Etcd(t testing.TB) (etcd, etcdctl string) {
	t.Helper()
	etcd, etcdctl, err := LoadEtcd(context.Background(), logWriter{t})
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return etcd, etcdctl
}

// Kube returns absolute paths to the Kubernetes binaries pinned in
// scripts/bins.sh, building them on first use (minutes when cold; see the
// package doc). It fails t if they cannot be built.
func Kube(t testing.TB) KubeBinaries {
	t.Helper()
	bins, err := LoadKube(context.Background(), logWriter{t})
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	return bins
}

// LoadEtcd is Etcd for commands: the script's progress goes to progress
// (nil discards it), and a failure is returned.
func LoadEtcd(ctx context.Context, progress io.Writer) (etcd, etcdctl string, err error) {
	dir, err := etcdSet.dir(ctx, progress)
	if err != nil {
		return "", "", err
	}
	return filepath.Join(dir, "etcd"), filepath.Join(dir, "etcdctl"), nil
}

// LoadKube is Kube for commands, like LoadEtcd.
func LoadKube(ctx context.Context, progress io.Writer) (KubeBinaries, error) {
	dir, err := kubeSet.dir(ctx, progress)
	if err != nil {
		return KubeBinaries{}, err
	}
	return KubeBinaries{
		Dir:               dir,
		APIServer:         filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
		Scheduler:         filepath.Join(dir, "kube-scheduler"),
		Kubectl:           filepath.Join(dir, "kubectl"),
	}, nil
}

// logWriter sends each write, a line of the script's progress, to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The sets of scripts/bins.sh, each built at most once per process.
var (
	etcdSet = &binSet{name: "etcd"}
	kubeSet = &binSet{name: "kube"}
)

// binSet is one argument of scripts/bins.sh. A failed build is remembered
// and not retried.
type binSet struct {
	name string
	once sync.Once
	path string
	err  error
}

func (s *binSet) dir(ctx context.Context, progress io.Writer) (string, error) {
	s.once.Do(func() { s.path, s.err = runScript(ctx, s.name, progress) })
	return s.path, s.err
}

// tailLines is how much of the script's output a failure message repeats.
const tailLines = 30

// runScript runs scripts/bins.sh set from the module root, copies its
// progress (stderr) to progress line by line, and returns the directory it
// prints last on stdout.
func runScript(ctx context.Context, set string, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "bins.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("testbin: no build script: %w", err)
	}

	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, set)
	cmd.Dir = root
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", fmt.Errorf("testbin: scripts/bins.sh %s: %w", set, err)
	}
	fmt.Fprintf(progress, "testbin: running scripts/bins.sh %s (a cold build takes minutes)\n", set)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("testbin: scripts/bins.sh %s: %w", set, err)
	}
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(progress, line)
		if tail = append(tail, line); len(tail) > tailLines {
			tail = tail[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("testbin: scripts/bins.sh %s failed (%w); its last output:\n%s\n"+
			"run `scripts/bins.sh %s` in %s to see all of it",
			set, err, strings.Join(tail, "\n"), set, root)
	}

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || !filepath.IsAbs(dir) {
		return "", fmt.Errorf("testbin: scripts/bins.sh %s printed %q, not an absolute directory", set, dir)
	}
	return dir, nil
}

// ModuleRoot walks up from the working directory (a test's package
// directory, or wherever a command runs) to the Rhizome checkout: the
// directory whose go.mod declares ModulePath.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+ModulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testbin: no go.mod of " + ModulePath + " above the working directory; run from a Rhizome checkout")
		}
		dir = parent
	}
}

// BuildRhizome builds this module's ./cmd/rhizome (cgo on: automerge needs it) into
// dir and returns the binary's path. The go command running the test builds it:
// cmd/go puts its own GOROOT/bin first on a test's PATH.
func BuildRhizome(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("testbin: building rhizome needs the go command on PATH: %w", err)
	}
	bin := filepath.Join(dir, "rhizome")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/rhizome")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testbin: go build ./cmd/rhizome: %w\n%s", err, out)
	}
	return bin, nil
}

// Rhizome is ./cmd/rhizome built at most once per test process, on first use, so
// a run that selects no test needing it builds nothing. The zero value is ready;
// call Remove from TestMain once every test has run.
type Rhizome struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the binary on first use and returns its path.
func (r *Rhizome) Path(t testing.TB) string {
	t.Helper()
	r.once.Do(func() {
		if r.dir, r.err = os.MkdirTemp("", "rhizome-bin-"); r.err == nil {
			r.path, r.err = BuildRhizome(r.dir)
		}
	})
	if r.err != nil {
		t.Fatalf("testbin: %v", r.err)
	}
	return r.path
}

// Remove deletes the built binary, if any.
func (r *Rhizome) Remove() {
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}
