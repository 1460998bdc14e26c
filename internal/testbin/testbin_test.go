package testbin_test

import (
	"context"
	"fmt"
	"net"
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
			out, err := exec.Command(tc.bin, tc.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", tc.bin, tc.args, err, out)
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

// TestEtcdServes runs the built etcd on loopback and talks to it with etcdctl,
// as the differential tests will.
func TestEtcdServes(t *testing.T) {
	etcd, etcdctl := testbin.Etcd(t)
	client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)

	ctx, cancel := context.WithCancel(t.Context())
	srv := exec.CommandContext(ctx, etcd,
		"--name", "testbin",
		"--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "testbin="+peer,
	)
	var log strings.Builder
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("etcd output:\n%s", log.String())
		}
	})

	ctl := func(args ...string) (string, error) {
		out, err := exec.Command(etcdctl, append([]string{"--endpoints", client}, args...)...).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := ctl("endpoint", "health")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not become healthy: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := ctl("put", "/testbin/k", "v"); err != nil {
		t.Fatalf("put: %v\n%s", err, out)
	}
	out, err := ctl("get", "/testbin/k", "--print-value-only")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(out); got != "v" {
		t.Errorf("get /testbin/k = %q, want %q", got, "v")
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
