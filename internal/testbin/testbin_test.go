package testbin_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// The versions pinned in scripts/bins.sh.
const etcdVersion = "3.7.3"

func TestEtcdVersions(t *testing.T) {
	etcd, etcdctl := testbin.Etcd(t)
	for _, tc := range []struct {
		bin  string
		args []string
		want string
	}{
		{etcd, []string{"--version"}, "etcd Version: " + etcdVersion},
		{etcdctl, []string{"version"}, "etcdctl version: " + etcdVersion},
	} {
		t.Run(filepath.Base(tc.bin), func(t *testing.T) {
			out, err := testbin.Run(t.Context(), tc.bin, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s %v printed %q, want it to contain %q", tc.bin, tc.args, out, tc.want)
			}
		})
	}

	// A second call is served from the per-process cache.
	if e2, c2 := testbin.Etcd(t); e2 != etcd || c2 != etcdctl {
		t.Errorf("second Etcd call gave %s, %s; first gave %s, %s", e2, c2, etcd, etcdctl)
	}
}

// TestEtcdServes runs the built etcd on loopback through StartProcess and
// talks to it with etcdctl, as the differential tests will.
func TestEtcdServes(t *testing.T) {
	etcd, etcdctl := testbin.Etcd(t)
	client, peer := "http://"+testbin.Addr(t), "http://"+testbin.Addr(t)

	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path = "etcd", etcd
	cfg.Args = []string{"--name", "testbin",
		"--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "testbin=" + peer,
	}
	cfg.LogPath = filepath.Join(t.TempDir(), "etcd.log")
	srv, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("etcd output:\n%s", srv.LogTail(40))
		}
	})

	ctl := func(ctx context.Context, args ...string) (string, error) {
		return testbin.Run(ctx, etcdctl, append([]string{"--endpoints", client}, args...)...)
	}
	health := func(ctx context.Context) error {
		_, err := ctl(ctx, "endpoint", "health")
		return err
	}
	if err := srv.WaitReady(t.Context(), 30*time.Second, health); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl(t.Context(), "put", "/testbin/k", "v"); err != nil {
		t.Fatalf("put: %v\n%s", err, out)
	}
	out, err := ctl(t.Context(), "get", "/testbin/k", "--print-value-only")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(out); got != "v" {
		t.Errorf("get /testbin/k = %q, want %q", got, "v")
	}
}

// TestRun: Run returns a command's standard output, and a failure's error
// keeps its standard error and exit status.
func TestRun(t *testing.T) {
	out, err := testbin.Run(t.Context(), "/bin/sh", "-c", "echo out; echo err >&2")
	if err != nil || out != "out\n" {
		t.Fatalf("Run = %q, %v; want %q, nil", out, err, "out\n")
	}
	_, err = testbin.Run(t.Context(), "/bin/sh", "-c", "echo why >&2; exit 3")
	var re *testbin.RunError
	var exit *exec.ExitError
	if !errors.As(err, &re) || strings.TrimSpace(re.Stderr) != "why" || !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Run of a failing command: %v; want a *RunError with stderr %q and exit status 3", err, "why")
	}
	if !strings.Contains(err.Error(), "/bin/sh -c") || !strings.Contains(err.Error(), "why") {
		t.Errorf("error %q names neither the command nor its stderr", err)
	}
}

// TestRunCmd: standard input reaches the command, and both outputs come
// back when it succeeds.
func TestRunCmd(t *testing.T) {
	dir := t.TempDir()
	out, err := testbin.RunCmd(t.Context(), testbin.Cmd{Path: "/bin/sh", Args: []string{"-c", "tr a-z A-Z; echo $NOTE >&2; pwd"},
		Dir: dir, Env: []string{"NOTE=note"}, Stdin: strings.NewReader("in\n")})
	if err != nil || out.Stdout != "IN\n"+dir+"\n" || out.Stderr != "note\n" {
		t.Fatalf("RunCmd = %+v, %v; want IN and note", out, err)
	}
}
