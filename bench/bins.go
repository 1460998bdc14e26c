package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// binaries are the programs a run measures, and what the report says of
// them.
type binaries struct {
	rhizome, etcd string
	// built is true when rhizome was built from the checkout at root, so
	// the report can name the commit.
	built bool
	root  string
}

// getBinaries takes the given binaries, or builds rhizome from the
// checkout into dir (created if need be) and takes etcd from scripts/bins.sh.
// prepareRun makes a run's work directory under parent (the system temp dir
// when empty), gets the binaries into it and describes them in host. cleanup
// removes the directory.
func prepareRun(ctx context.Context, parent, prefix, rhizome, etcd string, progress io.Writer, host *Host) (work string, bins binaries, cleanup func(), err error) {
	work, err = os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", binaries{}, nil, fmt.Errorf("bench: %w", err)
	}
	cleanup = func() { os.RemoveAll(work) }
	if bins, err = getBinaries(ctx, rhizome, etcd, filepath.Join(work, "bin"), progress); err != nil {
		cleanup()
		return "", binaries{}, nil, err
	}
	host.fill(ctx, bins)
	return work, bins, cleanup, nil
}

func getBinaries(ctx context.Context, rhizome, etcd, dir string, progress io.Writer) (binaries, error) {
	b := binaries{rhizome: rhizome, etcd: etcd}
	if rhizome == "" {
		root, err := testbin.ModuleRoot()
		if err != nil {
			return b, fmt.Errorf("bench: %w (or set the rhizome binary)", err)
		}
		fmt.Fprintf(progress, "bench: building rhizome (go build ./cmd/rhizome in %s)\n", root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return b, fmt.Errorf("bench: %w", err)
		}
		if b.rhizome, err = testbin.BuildRhizome(dir); err != nil {
			return b, fmt.Errorf("bench: %w", err)
		}
		b.built, b.root = true, root
	}
	if etcd == "" {
		fmt.Fprintln(progress, "bench: getting etcd (scripts/bins.sh etcd)")
		var err error
		if b.etcd, _, err = testbin.LoadEtcd(ctx, progress); err != nil {
			return b, fmt.Errorf("bench: %w", err)
		}
	}
	return b, nil
}

// fill records the binaries, their versions and the commit in h.
func (h *Host) fill(ctx context.Context, b binaries) {
	h.RhizomeBin, h.EtcdBin = b.rhizome, b.etcd
	h.EtcdVersion = binaryVersion(ctx, b.etcd)
	if b.built {
		h.RhizomeCommit = gitDescribe(ctx, b.root)
	}
}

// gitDescribe names the checkout's commit for the report (with "-dirty" when
// the tree has changes), or "" when git cannot tell.
func gitDescribe(ctx context.Context, root string) string {
	out, err := testbin.Run(ctx, "git", "-C", root, "describe", "--always", "--dirty")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// binaryVersion returns the first line `bin --version` prints.
func binaryVersion(ctx context.Context, bin string) string {
	out, err := testbin.Run(ctx, bin, "--version")
	if err != nil && out == "" {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	// etcd prints "etcd Version: 3.7.3".
	if name, v, ok := strings.Cut(line, " Version: "); ok {
		return name + " v" + v
	}
	return line
}

var errNoProc = errors.New("bench: /proc is not available")
