package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// badRequest is one bad client request of TestBadInput: do sends it and
// returns the error; want is the error (gRPC code and etcd's description)
// both servers must answer with, "" for none.
type badRequest struct {
	name string
	do   func(ctx context.Context, cli *clientv3.Client) error
	want string
}

// grpcError renders an error as the code and description a client sees.
func grpcError(err error) string {
	if err == nil {
		return ""
	}
	var ee rpctypes.EtcdError // clientv3 turns etcd's errors into these
	if errors.As(err, &ee) {
		return fmt.Sprintf("%s: %s", ee.Code(), ee.Error())
	}
	s, _ := status.FromError(err)
	return fmt.Sprintf("%s: %s", s.Code(), rpctypes.ErrorDesc(err))
}

// TestBadInput sends each bad request of the README's bad-input table to
// `rhizome serve` and to a real etcd v3.7.3 process with the same flags:
// both must answer with the same error, etcd's own, and keep serving.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	etcdBin, _ := testbin.Etcd(t)
	servers := []*proc{startEtcd(t, etcdBin), startRhizome(t, rhizomeBuild.Path(t), t.TempDir())}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Each server: a compaction at the revision of a 3rd write, so that
	// revision 2 is compacted.
	clis := make([]*clientv3.Client, len(servers))
	for i, p := range servers {
		clis[i] = mustClient(t, p.ep)
		for _, k := range []string{"a", "b", "c"} {
			if _, err := clis[i].Put(ctx, k, "v"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := clis[i].Compact(ctx, 3); err != nil {
			t.Fatal(err)
		}
	}
	tooMany := make([]clientv3.Op, 129) // etcd's --max-txn-ops is 128
	for i := range tooMany {
		tooMany[i] = clientv3.OpPut(fmt.Sprintf("k%d", i), "v")
	}
	cases := []badRequest{
		{"oversized request", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Put(ctx, "big", strings.Repeat("x", 1600<<10)) // over --max-request-bytes (1.5 MiB)
			return err
		}, "InvalidArgument: etcdserver: request is too large"},
		{"empty key", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Put(ctx, "", "v")
			return err
		}, "InvalidArgument: etcdserver: key is not provided"},
		{"invalid range (end before key)", func(ctx context.Context, c *clientv3.Client) error {
			resp, err := c.Get(ctx, "c", clientv3.WithRange("a"))
			if err == nil && len(resp.Kvs) != 0 {
				return fmt.Errorf("%d keys", len(resp.Kvs))
			}
			return err
		}, ""},
		{"the same key put twice in one Txn", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("a", "2")).Commit()
			return err
		}, "InvalidArgument: etcdserver: duplicate key given in txn request"},
		{"future revision", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Get(ctx, "a", clientv3.WithRev(1000))
			return err
		}, "OutOfRange: etcdserver: mvcc: required revision is a future revision"},
		{"compacted revision", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Get(ctx, "a", clientv3.WithRev(2))
			return err
		}, "OutOfRange: etcdserver: mvcc: required revision has been compacted"},
		{"compaction at a compacted revision", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Compact(ctx, 2)
			return err
		}, "OutOfRange: etcdserver: mvcc: required revision has been compacted"},
		{"watch from a compacted revision", func(ctx context.Context, c *clientv3.Client) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			resp := <-c.Watch(ctx, "a", clientv3.WithRev(2))
			return resp.Err()
		}, "OutOfRange: etcdserver: mvcc: required revision has been compacted"},
		{"too many Txn ops", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Txn(ctx).Then(tooMany...).Commit()
			return err
		}, "InvalidArgument: etcdserver: too many operations in txn request"},
		{"put with an unknown lease", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Put(ctx, "a", "v", clientv3.WithLease(0x1234567))
			return err
		}, "NotFound: etcdserver: requested lease not found"},
		{"keep-alive of an unknown lease", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.KeepAliveOnce(ctx, 0x1234567)
			return err
		}, "NotFound: etcdserver: requested lease not found"},
		{"revoke of an unknown lease", func(ctx context.Context, c *clientv3.Client) error {
			_, err := c.Revoke(ctx, 0x1234567)
			return err
		}, "NotFound: etcdserver: requested lease not found"},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			for i, p := range servers {
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				got := c.do(rctx, clis[i])
				rcancel()
				if g := grpcError(got); g != c.want {
					t.Errorf("%s answered %q, want %q (err %v)", p.name, g, c.want, got)
				}
				if _, err := clis[i].Get(ctx, "a"); err != nil {
					t.Errorf("%s stopped serving after it: %v", p.name, err)
				}
			}
		})
	}
}

// TestBadInputMalformedTLS writes bytes that are not a TLS handshake to the
// TLS client port of `rhizome serve` and of etcd with the same flags: both
// close the connection without answering anything but a TLS alert and go
// on serving TLS clients.
func TestBadInputMalformedTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	p := newPKIFiles(t)
	etcdBin, _ := testbin.Etcd(t)
	etcdDir, rzDir := t.TempDir(), t.TempDir()
	servers := []*proc{
		startServerTLS(t, "etcd", p.tls, func() (string, []string) {
			client, peer := "https://"+testbin.Addr(t), "http://"+testbin.Addr(t)
			return client, append([]string{etcdBin, "--name", "e2e", "--data-dir", etcdDir,
				"--listen-client-urls", client, "--advertise-client-urls", client,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", "e2e=" + peer, "--log-level", "warn"}, p.tlsFlags()...)
		}),
		startServerTLS(t, "rhizome", p.tls, func() (string, []string) {
			client := "https://" + testbin.Addr(t)
			return client, append([]string{rhizomeBuild.Path(t), "serve", "--name", "e2e", "--data-dir", rzDir,
				"--listen-client-urls", client, "--advertise-client-urls", client}, p.tlsFlags()...)
		}),
	}
	garbage := map[string][]byte{
		"not TLS at all":            []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"a TLS record of junk":      append([]byte{0x16, 0x03, 0x01, 0x00, 0x40}, make([]byte, 0x40)...),
		"a truncated TLS record":    {0x16, 0x03, 0x01, 0xff, 0xff, 0x01},
		"a handshake with no hello": {0x16, 0x03, 0x03, 0x00, 0x04, 0x0e, 0x00, 0x00, 0x00},
	}
	for name, bytes := range garbage {
		for _, s := range servers {
			conn, err := net.DialTimeout("tcp", s.ep, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
			if _, err := conn.Write(bytes); err != nil {
				t.Fatalf("%s: %s: write: %v", name, s.name, err)
			}
			if name == "a truncated TLS record" {
				_ = conn.(*net.TCPConn).CloseWrite() // the rest never comes
			}
			reply, err := io.ReadAll(conn)
			conn.Close()
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Errorf("%s: %s kept the connection open", name, s.name)
			case len(reply) > 0 && reply[0] != 0x15: // 0x15: a TLS alert record
				t.Errorf("%s: %s answered %q, not a TLS alert", name, s.name, reply)
			}
			cli, err := newTLSClient(s.ep, p.tls)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			if _, err := cli.Put(rctx, "k", "v"); err != nil {
				t.Errorf("%s: %s stopped serving TLS clients: %v", name, s.name, err)
			}
			cancel()
			cli.Close()
		}
	}
	// A plaintext gRPC client gets nothing from either.
	for _, s := range servers {
		cli, err := newClient(s.ep)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		if _, err := cli.Get(rctx, "k"); err == nil {
			t.Errorf("%s served a plaintext client on its TLS port", s.name)
		}
		cancel()
		cli.Close()
	}
}

// TestBadInputOtherCluster starts two sites with different
// --initial-cluster-token, the second joining the first's gossip address:
// neither counts the other as a member (etcd's MemberList), and no write
// crosses.
func TestBadInputOtherCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	bin := rhizomeBuild.Path(t)
	a := newPeerSite(t, "a", "")
	o := newPeerSite(t, "o", a.gossip)
	pa := startRhizome(t, bin, t.TempDir(), append(a.args(), "--initial-cluster-token", "cluster-one")...)
	po := startRhizome(t, bin, t.TempDir(), append(o.args(), "--initial-cluster-token", "cluster-two")...)
	ca, co := mustClient(t, pa.ep), mustClient(t, po.ep)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := ca.Put(ctx, "from-a", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.Put(ctx, "from-o", "v"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // several gossip and anti-entropy rounds
	for _, c := range []struct {
		name  string
		cli   *clientv3.Client
		other string
	}{{"a", ca, "from-o"}, {"o", co, "from-a"}} {
		ml, err := c.cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ml.Members) != 1 || ml.Members[0].Name != c.name {
			t.Errorf("site %s lists members %v, want itself alone", c.name, ml.Members)
		}
		resp, err := c.cli.Get(ctx, c.other)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 0 {
			t.Errorf("site %s holds %s: a write crossed clusters", c.name, c.other)
		}
	}
}

// TestBadInputCorruptDataFile damages a stopped site's data files (each
// file's bytes overwritten in its middle) and starts it again: `rhizome
// serve` must refuse to start, and never serve data it cannot read (before
// badger verified checksums, it started as an empty store).
func TestBadInputCorruptDataFile(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	bin := rhizomeBuild.Path(t)
	dataDir := t.TempDir()
	p := startRhizome(t, bin, dataDir)
	cli := mustClient(t, p.ep)
	for i := range 50 {
		if _, err := cli.Put(t.Context(), fmt.Sprintf("k%03d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	cli.Close()
	p.stop()
	var damaged []string
	err := filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if name := d.Name(); name == "MANIFEST" || strings.HasSuffix(name, ".vlog") || strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".sst") {
			b, err := os.ReadFile(path)
			if err != nil || len(b) < 64 {
				return err
			}
			for i := len(b) / 4; i < len(b)*3/4; i++ {
				b[i] ^= 0x5a
			}
			damaged = append(damaged, name)
			return os.WriteFile(path, b, 0o600)
		}
		return nil
	})
	if err != nil || len(damaged) == 0 {
		t.Fatalf("damage the data files: %v (damaged %v)", err, damaged)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := run(ctx, bin, "serve", "--name", "e2e", "--data-dir", dataDir,
		"--listen-client-urls", "http://"+testbin.Addr(t))
	// Exit 1 with the store's error, never a panic (badger's own table check
	// panics on a damaged block: the store checks every table first). With
	// the MANIFEST intact, the error names the damaged table.
	switch code := exitCode(err); {
	case strings.Contains(out.Stdout+out.Stderr, "site serving"):
		t.Fatalf("rhizome serve on damaged files (%v) served:\n%s", damaged, printed(out))
	case code != 1:
		t.Fatalf("rhizome serve on damaged files (%v) exited %d, want 1:\n%s", damaged, code, printed(out))
	case !strings.Contains(out.Stderr, "cannot start") || !strings.Contains(out.Stderr, "store:"):
		t.Errorf("rhizome serve on damaged files: the error names no store problem:\n%s", printed(out))
	case slices.Contains(damaged, "MANIFEST"):
	case slices.ContainsFunc(damaged, func(n string) bool { return strings.HasSuffix(n, ".sst") }) &&
		!strings.Contains(out.Stderr, "store: corrupt data file"):
		t.Errorf("rhizome serve on a damaged table: the error does not name it:\n%s", printed(out))
	}
	t.Logf("damaged %v: %s", damaged, lastLine(out.Stderr))
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
