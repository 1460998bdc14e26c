// Rhizome's drop-in for k8s.io/apiserver/pkg/storage/etcd3/testserver: the same API,
// but RunEtcd starts a Rhizome site instead of an embedded etcd. It replaces the
// upstream file through `go test -overlay` (see internal/upstream), so the upstream
// storage tests run unmodified against Rhizome.

package testserver

import (
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	storagetesting "k8s.io/apiserver/pkg/storage/testing"

	"github.com/rhizome-kv/rhizome/site"
)

// NewTestConfig returns an etcd configuration. Rhizome honours the fields the
// upstream tests set: WatchProgressNotifyInterval and MaxRequestBytes.
func NewTestConfig(t testing.TB) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.ListenClientUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	return cfg
}

// RunEtcd starts a Rhizome site configured from cfg (or NewTestConfig(t) if nil)
// and returns a client connected to it. The site stops when the test ends.
func RunEtcd(t testing.TB, cfg *embed.Config) *kubernetes.Client {
	t.Helper()
	if cfg == nil {
		cfg = NewTestConfig(t)
	}
	scfg := site.DefaultConfig()
	scfg.Name = "rhizome"
	scfg.DataDir = t.TempDir()
	scfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	scfg.UnsafeNoFsync = true // as the upstream test server runs etcd
	scfg.WatchProgressNotifyInterval = cfg.WatchProgressNotifyInterval
	if cfg.MaxRequestBytes > 0 {
		scfg.MaxRequestBytes = int(cfg.MaxRequestBytes)
	}
	scfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := site.Start(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	client, err := kubernetes.New(clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 10 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		Logger:      zaptest.NewLogger(t, zaptest.Level(zapcore.ErrorLevel)).Named("etcd-client"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	client.KV = storagetesting.NewKVRecorder(client.KV)
	client.Kubernetes = storagetesting.NewKubernetesRecorder(client.Kubernetes)
	return client
}
