// Package etcdpair starts, for tests and benchmarks, a real Rhizome site and a real
// etcd (v3.7, in-process through go.etcd.io/etcd/server/v3/embed) on loopback
// sockets, so the same client code can be pointed at each.
package etcdpair

import (
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/testbin"
	"github.com/rhizome-kv/rhizome/site"
)

// Options tune the servers started.
type Options struct {
	// NoFsync skips fsync on both servers: for tests of semantics, not durability.
	NoFsync bool
	// WatchProgressNotifyInterval, when set, is given to both servers.
	WatchProgressNotifyInterval time.Duration
}

// StartEtcd starts an in-process single-member etcd and returns its client
// endpoint. It stops when the test ends.
func StartEtcd(tb testing.TB, opts Options) string {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "etcd"
	cfg.Dir = tb.TempDir()
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = opts.NoFsync
	if opts.WatchProgressNotifyInterval > 0 {
		cfg.WatchProgressNotifyInterval = opts.WatchProgressNotifyInterval
	}
	client, peer := freeURL(tb), freeURL(tb)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("etcdpair: start etcd: %v", err)
	}
	tb.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		tb.Fatal("etcdpair: etcd did not become ready")
	}
	return client.Host
}

// StartRhizome starts an in-process Rhizome site and returns it and its client
// endpoint. It stops when the test ends.
func StartRhizome(tb testing.TB, opts Options) (*site.Site, string) {
	tb.Helper()
	cfg := site.DefaultConfig()
	cfg.Name = "rhizome"
	cfg.DataDir = tb.TempDir()
	cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	cfg.UnsafeNoFsync = opts.NoFsync
	if opts.WatchProgressNotifyInterval > 0 {
		cfg.WatchProgressNotifyInterval = opts.WatchProgressNotifyInterval
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := site.Start(cfg)
	if err != nil {
		tb.Fatalf("etcdpair: start rhizome: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, s.Endpoints()[0]
}

// Client returns a v3 client for an endpoint, closed when the test ends.
func Client(tb testing.TB, endpoint string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatalf("etcdpair: client for %s: %v", endpoint, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func freeURL(tb testing.TB) url.URL {
	return url.URL{Scheme: "http", Host: testbin.Addr(tb)}
}
