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
	// named is the rhizome binary the user named (rhizome may be a
	// private copy of it: privateCopy).
	named string
	// built is true when rhizome was built from the checkout at root, so
	// the report can name the commit.
	built bool
	root  string
}

// getBinaries takes the given binaries (rhizome copied into dir when it is
// this process's own executable: privateCopy), or builds rhizome from the
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
	b := binaries{rhizome: rhizome, etcd: etcd, named: rhizome}
	if rhizome != "" && isOwnExecutable(rhizome) {
		var err error
		if b.rhizome, err = privateCopy(rhizome, dir); err != nil {
			return b, err
		}
	}
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
		b.named = b.rhizome
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

// isOwnExecutable reports whether bin is the file this process runs.
func isOwnExecutable(bin string) bool {
	self, err := os.Executable()
	if err != nil {
		return false
	}
	a, errA := os.Stat(self)
	b, errB := os.Stat(bin)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// privateCopy copies bin into dir and returns the copy's path. The servers
// benchmarked run the copy when bin is the benchmark's own executable: pages
// of a file two processes map stay resident in both (a site pages out the
// executable pages it no longer uses, internal/resident, only where no other
// process maps them), so a site would be measured with the benchmark's pages,
// not as it runs alone.
func privateCopy(bin, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	src, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer src.Close()
	copyPath := filepath.Join(dir, "rhizome")
	dst, err := os.OpenFile(copyPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("bench: copy %s: %w", bin, err)
	}
	return copyPath, nil
}

// fill records the binaries, their versions and the commit in h.
func (h *Host) fill(ctx context.Context, b binaries) {
	h.RhizomeBin, h.EtcdBin = b.named, b.etcd
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
