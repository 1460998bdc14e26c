package bench

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
)

// modulePath identifies a Rhizome checkout by its go.mod.
const modulePath = "github.com/rhizome-kv/rhizome"

// findModuleRoot walks up from dir to the directory whose go.mod declares
// modulePath: `rhizome bench` runs from the repository root, `go test` from
// bench/.
func findModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("bench: no go.mod of %s above the working directory; run from a Rhizome checkout or set the binaries explicitly", modulePath)
		}
		dir = parent
	}
}

// etcdBinary runs scripts/bins.sh etcd, which builds the pinned etcd once and
// caches it, and returns the etcd binary in the directory it prints last.
// The script's progress goes to progress.
func etcdBinary(ctx context.Context, root string, progress io.Writer) (string, error) {
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "bins.sh"), "etcd")
	cmd.Dir = root
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", fmt.Errorf("bench: scripts/bins.sh etcd: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("bench: scripts/bins.sh etcd: %w", err)
	}
	var tail []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		fmt.Fprintln(progress, sc.Text())
		if tail = append(tail, sc.Text()); len(tail) > 20 {
			tail = tail[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("bench: scripts/bins.sh etcd: %w\n%s", err, strings.Join(tail, "\n"))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	bin := filepath.Join(lines[len(lines)-1], "etcd")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return "", fmt.Errorf("bench: scripts/bins.sh etcd printed %q, which holds no etcd binary", lines[len(lines)-1])
	}
	return bin, nil
}

// buildRhizome builds cmd/rhizome from the checkout at root into dir. cgo is
// required: automerge is a C library.
func buildRhizome(ctx context.Context, root, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("bench: building rhizome needs the go command on PATH (or set the rhizome binary): %w", err)
	}
	out := filepath.Join(dir, "rhizome")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmd/rhizome")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build ./cmd/rhizome: %w\n%s", err, msg)
	}
	return out, nil
}

// gitDescribe names the checkout's commit for the report (with "-dirty" when
// the tree has changes), or "" when git cannot tell.
func gitDescribe(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// binaryVersion returns the first line `bin --version` prints.
func binaryVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	// etcd prints "etcd Version: 3.7.3".
	if name, v, ok := strings.Cut(line, " Version: "); ok {
		return name + " v" + v
	}
	return line
}

var errNoProc = errors.New("bench: /proc is not available")
