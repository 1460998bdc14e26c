package multisite

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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
	cmd    *exec.Cmd
	log    string // its stdout and stderr
	done   chan struct{}
	err    error // from Wait; valid once done is closed
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
		args := []string{"netns", "exec", ns.NS, bin, "serve",
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
		c.Sites = append(c.Sites, c.start(name, filepath.Join(dir, name+".log"), args))
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
func (c *cluster) start(name, logPath string, args []string) *siteProc {
	t := c.t
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := &siteProc{Name: name, log: logPath, done: make(chan struct{})}
	p.cmd = exec.Command("ip", args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Killed with the test process, so an interrupted run leaves no sites behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("multisite: start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, tail(p.log, 40))
		}
	})
	ep := strings.TrimPrefix(args[slices.Index(args, "--listen-client-urls")+1], "http://")
	p.Client, err = clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Client.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.Client.Status(ctx, ep)
		cancel()
		if err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("multisite: %s exited before serving: %v\n%s", name, p.err, tail(p.log, 40))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("multisite: %s did not answer within 30s: %v\n%s", name, err, tail(p.log, 40))
		}
	}
}

// stop asks the site to shut down and kills it if it takes long.
func (p *siteProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
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

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
