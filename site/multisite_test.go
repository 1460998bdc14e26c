package site

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// startSites starts n sites on loopback that find each other through gossip.
func startSites(t *testing.T, n int) []*Site {
	return startSitesWith(t, n, "", func(*Config) {})
}

func startSitesWith(t *testing.T, n int, join string, edit func(*Config)) []*Site {
	t.Helper()
	var sites []*Site
	seed := join
	for i := range n {
		cfg := DefaultConfig()
		cfg.Name = fmt.Sprintf("site-%d", i)
		cfg.DataDir = t.TempDir()
		cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
		cfg.ListenPeerURLs = []string{"http://127.0.0.1:0"}
		cfg.GossipAddr = testbin.Addr(t)
		cfg.GossipLAN = true
		cfg.GossipKey = []byte("0123456789abcdef")
		cfg.AntiEntropyInterval = 200 * time.Millisecond
		cfg.UnsafeNoFsync = true
		if seed != "" {
			cfg.Join = []string{seed}
		} else {
			seed = cfg.GossipAddr
		}
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		edit(&cfg)
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sites = append(sites, s)
	}
	return sites
}

func client(t *testing.T, s *Site) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestThreeSitesConverge writes concurrently at three real sites (gossip and sync
// over loopback sockets) and checks they converge, that watchers see remote
// changes as ordinary events, and that MemberList reports every site.
func TestThreeSitesConverge(t *testing.T) {
	sites := startSites(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var clients []*clientv3.Client
	var watches []clientv3.WatchChan
	for _, s := range sites {
		c := client(t, s)
		clients = append(clients, c)
		watches = append(watches, c.Watch(ctx, "/k/", clientv3.WithPrefix(), clientv3.WithPrevKV()))
	}
	const perSite = 50
	for i := range perSite {
		for j, c := range clients {
			if _, err := c.Put(ctx, fmt.Sprintf("/k/%d/%d", j, i), fmt.Sprintf(`{"site":%d,"i":%d}`, j, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A key every site writes at once: one value must win everywhere.
	for j, c := range clients {
		if _, err := c.Put(ctx, "/k/shared", fmt.Sprintf(`{"spec":{"by%d":true}}`, j)); err != nil {
			t.Fatal(err)
		}
	}
	want := 3*perSite + 1
	listing := func(c *clientv3.Client) string {
		res, err := c.Get(ctx, "/k/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprint(len(res.Kvs))
		for _, kv := range res.Kvs {
			out += " " + string(kv.Key) + "=" + string(kv.Value)
		}
		return out
	}
	for {
		a, b, c := listing(clients[0]), listing(clients[1]), listing(clients[2])
		if a == b && b == c && strings.HasPrefix(a, fmt.Sprint(want)+" ") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sites did not converge:\n%.300s\n%.300s\n%.300s", a, b, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for j, w := range watches {
		seen := map[string]bool{}
		for len(seen) < 3*perSite {
			select {
			case resp := <-w:
				for _, ev := range resp.Events {
					seen[string(ev.Kv.Key)] = true
				}
			case <-ctx.Done():
				t.Fatalf("site %d's watch saw %d of %d keys", j, len(seen), 3*perSite)
			}
		}
	}
	members, err := clients[0].MemberList(ctx)
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("member list: %v %v", members, err)
	}
}

// TestOutsiderCannotJoin: two sites with peer mutual TLS and a gossip key sync; a
// site without the credentials (knowing their addresses) neither joins, reads nor
// injects changes.
func TestOutsiderCannotJoin(t *testing.T) {
	p := newPKI(t)
	secure := func(c *Config) {
		c.ListenPeerURLs = []string{"https://127.0.0.1:0"}
		c.PeerCertFile, c.PeerKeyFile, c.PeerTrustedCAFile, c.PeerClientCertAuth = p.peerCertFile, p.peerKeyFile, p.caFile, true
	}
	members := startSitesWith(t, 2, "", secure)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	outsider := startSitesWith(t, 1, members[0].cfg.GossipAddr, func(c *Config) {
		c.Name = "outsider"
		c.GossipKey = []byte("fedcba9876543210") // the wrong key
	})[0]
	ca, cb, co := client(t, members[0]), client(t, members[1]), client(t, outsider)
	// The outsider also learns a member's peer address and tries it directly.
	outsider.Sync.SetPeers(map[string]string{members[0].cfg.Name: members[0].Gossip.Members()[0].PeerAddr})
	if _, err := ca.Put(ctx, "/secret", "from a"); err != nil {
		t.Fatal(err)
	}
	if _, err := co.Put(ctx, "/injected", "from outsider"); err != nil {
		t.Fatal(err)
	}
	for { // the members sync with each other
		res, err := cb.Get(ctx, "/secret")
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Kvs) == 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // several anti-entropy rounds for the outsider to try
	if res, _ := co.Get(ctx, "/secret"); len(res.Kvs) != 0 {
		t.Fatal("the outsider read a member's data")
	}
	for _, c := range []*clientv3.Client{ca, cb} {
		if res, _ := c.Get(ctx, "/injected"); len(res.Kvs) != 0 {
			t.Fatal("the outsider injected a change")
		}
	}
	if n := len(members[0].Gossip.Members()); n != 2 {
		t.Fatalf("gossip has %d members, want the 2 with the key", n)
	}
}
