package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// siteState is what a site serves that a restore must bring back.
type siteState struct {
	rev     int64
	kvs     []string
	history []string // every key at a revision between compaction and rev
	lease   clientv3.LeaseID
	leased  []string
}

// TestSnapshotRestore loads a site (puts, overwrites, a lease with keys, deletes,
// a compaction), saves a snapshot with the real `etcdctl snapshot save`, writes
// more, restores the snapshot into a fresh data directory with `rhizome snapshot
// restore` and starts it: the restored site must serve exactly the keys, values,
// revisions, history and lease the original had when the snapshot was taken.
func TestSnapshotRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	_, ctl := testbin.Etcd(t)
	bin := rhizomeBuild.Path(t)
	orig := startRhizome(t, bin, t.TempDir())
	cli := mustClient(t, orig.ep)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	histRev, leaseID := loadForSnapshot(ctx, t, cli)
	want := readState(ctx, t, cli, histRev, leaseID)

	file := filepath.Join(t.TempDir(), "backup.db")
	out, err := run(ctx, ctl, "--endpoints="+orig.ep, "snapshot", "save", file)
	if err != nil || !strings.Contains(out.Stdout, "Snapshot saved at "+file) {
		t.Fatalf("etcdctl snapshot save: %v\n%s", err, printed(out))
	}
	// Writes after the snapshot must not be in it.
	if _, err := cli.Put(ctx, "after-snapshot", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "k07"); err != nil {
		t.Fatal(err)
	}

	dataDir := filepath.Join(t.TempDir(), "restored")
	if out, err := run(ctx, bin, "snapshot", "restore", file, "--data-dir", dataDir, "--name", "e2e"); exitCode(err) != 2 {
		t.Fatalf("restore under the snapshot's own name without --reuse-name: %v\n%s", err, printed(out))
	}
	out, err = run(ctx, bin, "snapshot", "restore", file, "--data-dir", dataDir)
	if err != nil {
		t.Fatalf("rhizome snapshot restore: %v\n%s", err, printed(out))
	}
	m := regexp.MustCompile(`of site e2e at revision (\d+) .* as site (\S+)\n`).FindStringSubmatch(out.Stdout)
	if m == nil || m[1] != fmt.Sprint(want.rev) {
		t.Fatalf("restore output %q: want the snapshot of site e2e at revision %d", printed(out), want.rev)
	}
	refuse, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if out, err := run(refuse, bin, "serve", "--name", "e2e", "--data-dir", dataDir,
		"--listen-client-urls", "http://"+testbin.Addr(t)); err == nil || !strings.Contains(out.Stderr, "holds the data of site") || !strings.Contains(out.Stderr, m[2]) {
		t.Fatalf("serving the restored data under the old name: %v\n%s", err, printed(out))
	}
	restored := startRhizome(t, bin, dataDir, "--name", m[2])
	got := readState(ctx, t, mustClient(t, restored.ep), histRev, leaseID)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored site serves\n%+v\nwant (the original at snapshot time)\n%+v", got, want)
	}
	if _, err := mustClient(t, restored.ep).Get(ctx, "k00", clientv3.WithRev(histRev-3)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below the compaction on the restored site: %v, want %v", err, rpctypes.ErrCompacted)
	}
}

// loadForSnapshot writes the site's content and returns a revision after the
// compaction at which history must stay readable, and the lease granted.
func loadForSnapshot(ctx context.Context, t *testing.T, cli *clientv3.Client) (int64, clientv3.LeaseID) {
	t.Helper()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		must(cli.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", i*40))))
	}
	for i := range 10 {
		must(cli.Put(ctx, fmt.Sprintf("k%02d", i), fmt.Sprintf(`{"i":%d,"again":true}`, i)))
	}
	lease, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	must(cli.Put(ctx, "leased/a", "1", clientv3.WithLease(lease.ID)))
	must(cli.Put(ctx, "leased/b", "2", clientv3.WithLease(lease.ID)))
	must(cli.Delete(ctx, "k2", clientv3.WithPrefix()))
	resp, err := cli.Put(ctx, "k00", "before compaction")
	if err != nil {
		t.Fatal(err)
	}
	must(cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()))
	must(cli.Txn(ctx).Then(clientv3.OpPut("k01", "txn"), clientv3.OpDelete("k03")).Commit())
	hist, err := cli.Put(ctx, "k00", "after compaction")
	if err != nil {
		t.Fatal(err)
	}
	must(cli.Put(ctx, "k00", "newest"))
	return hist.Header.Revision, lease.ID
}

func readState(ctx context.Context, t *testing.T, cli *clientv3.Client, histRev int64, lease clientv3.LeaseID) siteState {
	t.Helper()
	all, err := cli.Get(ctx, "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	hist, err := cli.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithRev(histRev))
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := cli.TimeToLive(ctx, lease, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	st := siteState{rev: all.Header.Revision, kvs: kvLines(all.Kvs), history: kvLines(hist.Kvs), lease: ttl.ID}
	for _, k := range ttl.Keys {
		st.leased = append(st.leased, string(k))
	}
	return st
}

func kvLines(kvs []*mvccpb.KeyValue) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = fmt.Sprintf("%s=%s create=%d mod=%d version=%d lease=%x",
			kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return out
}

func mustClient(t *testing.T, ep string) *clientv3.Client {
	t.Helper()
	cli, err := newClient(ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// run runs a one-shot command (testbin.RunCmd) to completion; cancelling
// ctx kills it.
func run(ctx context.Context, path string, args ...string) (testbin.Output, error) {
	return testbin.RunCmd(ctx, testbin.Cmd{Path: path, Args: args})
}

// printed is both outputs of a command, for a failure message.
func printed(out testbin.Output) string {
	return "stdout:\n" + out.Stdout + "\nstderr:\n" + out.Stderr
}

// exitCode is the exit status err reports, 0 for nil and -1 if it is not an exit.
func exitCode(err error) int {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	return -1
}
