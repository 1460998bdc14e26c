package multisite

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/netdelay"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// Every site of a cluster uses the same ports: each has addresses of its own.
const (
	clientPort = 2379
	peerPort   = 2380
	gossipPort = 7946
)

// clusterConfig says how the sites of a cluster run.
type clusterConfig struct {
	Sites int
	// GossipLAN selects memberlist's LAN timing (a cut site is declared dead in
	// seconds); the default WAN timing takes most of a minute.
	GossipLAN           bool
	AntiEntropyInterval time.Duration
	Args                []string // more `rhizome serve` flags for every site
}

// cluster is a set of `rhizome serve` processes, one per network namespace.
type cluster struct {
	t     testing.TB
	Net   *network
	Sites []*siteProc
}

// siteProc is one running site.
type siteProc struct {
	Name   string
	Client *clientv3.Client
	proc   *testbin.Process
}

// startCluster starts cfg.Sites sites in a fresh network and waits until each
// answers clients and lists every site as a member. Everything stops and is
// removed when the test ends.
func startCluster(t testing.TB, cfg clusterConfig) *cluster {
	t.Helper()
	nw := newNetwork(t, cfg.Sites)
	bin := rhizomeBuild.Path(t)
	c := &cluster{t: t, Net: nw}
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString([]byte("rhizome-ms-test!")) // 16 bytes: AES-128
	for i, ns := range nw.sites {
		name := fmt.Sprintf("s%d", i)
		args := []string{"serve",
			"--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", fmt.Sprintf("http://%s:%d", ns.ClientIP, clientPort),
			"--listen-peer-urls", fmt.Sprintf("http://%s:%d", ns.PeerIP, peerPort),
			"--advertise-peer-urls", fmt.Sprintf("http://%s:%d", ns.PeerIP, peerPort),
			"--gossip-addr", fmt.Sprintf("%s:%d", ns.PeerIP, gossipPort),
			"--gossip-key", key,
			"--initial-cluster-token", "rhizome-multisite-test",
			"--anti-entropy-interval", cfg.AntiEntropyInterval.String(),
			// The tests measure sync, not the disk; durability has tests of its own.
			"--unsafe-no-fsync",
		}
		if cfg.GossipLAN {
			args = append(args, "--gossip-lan")
		}
		args = append(args, cfg.Args...)
		if i > 0 {
			args = append(args, "--join", fmt.Sprintf("%s:%d", nw.sites[0].PeerIP, gossipPort))
		}
		path, argv := (&netdelay.Namespace{Name: ns.NS}).Command(bin, args...)
		c.Sites = append(c.Sites, c.start(name, filepath.Join(dir, name+".log"), path, argv))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitMembers(ctx, func(int) int { return cfg.Sites }); err != nil {
		t.Fatalf("multisite: cluster did not form: %v", err)
	}
	return c
}

// start runs one site (under `ip netns exec`, which execs in place, so the
// parent-death signal still reaches rhizome) and waits until it answers.
// It stops when the test ends.
func (c *cluster) start(name, logPath, path string, argv []string) *siteProc {
	t := c.t
	t.Helper()
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path, cfg.Args, cfg.LogPath = name, path, argv, logPath
	cfg.ReadyInterval = 20 * time.Millisecond
	proc, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatalf("multisite: %v", err)
	}
	p := &siteProc{Name: name, proc: proc}
	t.Cleanup(func() {
		_ = proc.Stop()
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, proc.LogTail(40))
		}
	})
	ep := strings.TrimPrefix(argv[slices.Index(argv, "--listen-client-urls")+1], "http://")
	p.Client, err = clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Client.Close() })
	answers := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := p.Client.Status(ctx, ep)
		return err
	}
	if err := proc.WaitReady(context.Background(), 30*time.Second, answers); err != nil {
		t.Fatalf("multisite: %v", err)
	}
	return p
}

// Members returns the names in site i's etcd MemberList, sorted.
func (c *cluster) Members(ctx context.Context, i int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := c.Sites[i].Client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range res.Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names, nil
}

// WaitMembers polls until every site i lists want(i) members.
func (c *cluster) WaitMembers(ctx context.Context, want func(i int) int) error {
	return poll(ctx, 100*time.Millisecond, func() (bool, string) {
		var state []string
		ok := true
		for i := range c.Sites {
			names, err := c.Members(ctx, i)
			if err != nil {
				return false, fmt.Sprintf("s%d: MemberList: %v", i, err)
			}
			ok = ok && len(names) == want(i)
			state = append(state, fmt.Sprintf("s%d sees %v", i, names))
		}
		return ok, strings.Join(state, "; ")
	})
}

// poll calls cond every interval until it holds or ctx ends; the error then
// carries cond's last explanation.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, string)) error {
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last state: %s", ctx.Err(), why)
		case <-time.After(interval):
		}
	}
}
