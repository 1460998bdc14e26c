package site

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/rhizome-kv/rhizome/crdt/kube"
	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	"github.com/rhizome-kv/rhizome/etcdshim"
	"github.com/rhizome-kv/rhizome/site/alloc"
	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/sync/gossip"
	"github.com/rhizome-kv/rhizome/sync/peer"
	"github.com/rhizome-kv/rhizome/watch"
)

// Config configures a site. Field names follow etcd's flags.
type Config struct {
	Name                string
	DataDir             string
	ListenClientURLs    []string
	AdvertiseClientURLs []string // default: the listen URLs
	// ListenMetricsURLs serve the HTTP endpoints (/metrics, /health, /livez,
	// /readyz, /version, /rhizome/status, /rhizome/conflicts) on plain http, as
	// etcd's --listen-metrics-urls. The client URLs serve them too.
	ListenMetricsURLs []string
	// EnablePprof serves Go's runtime profiles under /debug/pprof/ on the same
	// HTTP endpoints, as etcd's --enable-pprof.
	EnablePprof bool
	// Client TLS, as etcd's --cert-file, --key-file, --trusted-ca-file and
	// --client-cert-auth.
	CertFile, KeyFile, TrustedCAFile string
	ClientCertAuth                   bool
	MaxRequestBytes                  int
	WatchProgressNotifyInterval      time.Duration
	// Multi-site. Without ListenPeerURLs the site runs alone.
	ClusterToken      string   // sites gossip and sync only with sites of the same token (peer streams prove it)
	ListenPeerURLs    []string // sync (gRPC) between sites
	AdvertisePeerURLs []string // default: the listen URLs
	GossipAddr        string   // HOST:PORT memberlist binds and advertises
	Join              []string // gossip addresses of existing sites
	GossipKey         []byte   // encrypts gossip (16, 24 or 32 bytes)
	// Peer TLS, as etcd's --peer-cert-file, --peer-key-file, --peer-trusted-ca-file
	// and --peer-client-cert-auth.
	PeerCertFile, PeerKeyFile, PeerTrustedCAFile string
	PeerClientCertAuth                           bool
	AntiEntropyInterval                          time.Duration
	// LeaseTakeover is how long after membership declares a site dead another
	// site takes over expiring the leases it granted.
	LeaseTakeover time.Duration
	// ForgetSiteAfter is how long a site may stay unheard of before the others stop
	// keeping the change log and old histories for it; back later, it bootstraps
	// from a snapshot.
	ForgetSiteAfter time.Duration
	// GossipLAN uses LAN failure-detection timing instead of the WAN default.
	GossipLAN bool
	// QuotaBackendBytes is the store's space quota, as etcd's
	// --quota-backend-bytes: 0 is 2 GiB, negative is none.
	QuotaBackendBytes int64
	// MemoryBudget bounds the store's badger memtables and caches, in bytes
	// (store.Config.MemoryBudget); 0 is the store's default.
	MemoryBudget int64
	// UnsafeNoFsync acknowledges writes before they reach the disk (tests only).
	UnsafeNoFsync bool
	// Failpoint is the store's failpoint hook (store.Config.Failpoint; tests
	// of the real process only, nil in production).
	Failpoint func(name string) error
	// Logger receives one line per significant event (see the package doc); its
	// handler decides text or JSON.
	Logger *slog.Logger
	// Registerer receives every component's metrics; /metrics serves Gatherer,
	// or the Registerer when it is also a Gatherer (a *prometheus.Registry).
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// DefaultConfig is what `rhizome serve` runs with no flags: like etcd, a data
// directory named after the site in the working directory and clients on
// 127.0.0.1:2379.
func DefaultConfig() Config {
	return Config{
		Name:                        "default",
		DataDir:                     "default.rhizome",
		ListenClientURLs:            []string{"http://127.0.0.1:2379"},
		MaxRequestBytes:             etcdshim.DefaultConfig().MaxRequestBytes,
		WatchProgressNotifyInterval: etcdshim.DefaultConfig().WatchProgressNotifyInterval,
		ClusterToken:                "rhizome-cluster",
		AntiEntropyInterval:         peer.DefaultConfig().AntiEntropyInterval,
		LeaseTakeover:               store.DefaultConfig().LeaseTakeover,
		ForgetSiteAfter:             24 * time.Hour,
		Logger:                      slog.Default(),
	}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("site: config: name is empty")
	case c.DataDir == "":
		return errors.New("site: config: data dir is empty")
	case len(c.ListenClientURLs) == 0:
		return errors.New("site: config: no client URLs to listen on")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("site: config: --cert-file and --key-file go together")
	case c.ClientCertAuth && c.TrustedCAFile == "":
		return errors.New("site: config: --client-cert-auth needs --trusted-ca-file")
	case c.Logger == nil:
		return errors.New("site: config: Logger is required")
	case len(c.ListenPeerURLs) > 1:
		return errors.New("site: config: one peer URL at most")
	case len(c.ListenPeerURLs) == 1 && c.GossipAddr == "":
		return errors.New("site: config: --listen-peer-urls needs --gossip-addr")
	case len(c.ListenPeerURLs) == 1 && c.ForgetSiteAfter <= 0:
		return errors.New("site: config: --forget-site-after must be positive")
	case (c.PeerCertFile == "") != (c.PeerKeyFile == ""):
		return errors.New("site: config: --peer-cert-file and --peer-key-file go together")
	case c.PeerClientCertAuth && c.PeerTrustedCAFile == "":
		return errors.New("site: config: --peer-client-cert-auth needs --peer-trusted-ca-file")
	}
	for _, u := range c.ListenMetricsURLs {
		if secure, _, err := parseURL(u); err != nil || secure {
			return fmt.Errorf("site: config: --listen-metrics-urls %s: want http://HOST:PORT", u)
		}
	}
	for _, u := range c.ListenPeerURLs {
		secure, _, err := parseURL(u)
		if err != nil {
			return err
		}
		if secure != (c.PeerCertFile != "") {
			return fmt.Errorf("site: config: %s: https peer URLs need --peer-cert-file and --peer-key-file, and peer TLS needs https URLs", u)
		}
	}
	for _, u := range c.ListenClientURLs {
		secure, _, err := parseURL(u)
		if err != nil {
			return err
		}
		// One gRPC server answers every listener, so all are TLS or none is.
		if secure != (c.CertFile != "") {
			return fmt.Errorf("site: config: %s: https client URLs need --cert-file and --key-file, and TLS needs https URLs", u)
		}
	}
	return nil
}

// Site is a running site.
type Site struct {
	cfg       Config
	Store     *store.Store
	Hub       *watch.Hub
	api       *etcdshim.Server
	listeners []net.Listener
	errc      chan error

	closed     atomic.Bool // set by Close: the store is stopped
	joining    bool        // joins a cluster with no other site's data here yet: not ready until caught up
	httpSrvs   []*http.Server
	metricsLns []net.Listener
	grpcOpts   []grpc.ServerOption // shared by the gRPC servers: their metrics

	// Multi-site only.
	Sync       *peer.Runner
	Gossip     *gossip.Gossip
	peerLn     net.Listener
	membership chan struct{} // a membership change to act on
	started    time.Time
	stop       chan struct{} // closed by Close
	following  chan struct{} // closed when followMembership has returned
	stopAlloc  func()        // stops the allocation repair (startAllocRepair)
}

// Start opens the store and serves clients. The returned site runs until Close.
func Start(cfg Config) (*Site, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("site: data dir: %w", err)
	}
	scfg := store.DefaultConfig()
	scfg.Dir = StoreDir(cfg.DataDir)
	scfg.Site = cfg.Name
	scfg.SyncWrites = !cfg.UnsafeNoFsync
	scfg.LeaseTakeover = cfg.LeaseTakeover
	scfg.Replicated = len(cfg.ListenPeerURLs) > 0
	scfg.QuotaBackendBytes = cfg.QuotaBackendBytes
	scfg.Failpoint = cfg.Failpoint
	if cfg.MemoryBudget != 0 {
		scfg.MemoryBudget = cfg.MemoryBudget
	}
	// Kubernetes' own validation decides when a merge falls back to one side's
	// whole object; every site must judge alike, so it is not configurable.
	// Custom resources are checked by their CRD's schema, from the CRDs the
	// store holds (the store feeds the registry; it also gives their merge units).
	crs := kube.NewCustomResources()
	scfg.CustomResources = crs
	scfg.Validator = func(value []byte) error {
		if err := validate.Object(value); err != nil {
			return err
		}
		return crs.Validate(value)
	}
	scfg.Logger = cfg.Logger
	scfg.Registerer = cfg.Registerer
	st, err := store.Open(scfg)
	if err != nil {
		return nil, err
	}
	wcfg := watch.DefaultConfig()
	wcfg.Registerer = cfg.Registerer
	hub, err := watch.NewHub(wcfg, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	st.SetPublisher(hub)

	s := &Site{cfg: cfg, Store: st, Hub: hub, errc: make(chan error, 3*len(cfg.ListenClientURLs))}
	fail := func(err error) (*Site, error) {
		s.closed.Store(true)
		s.stopHTTP()
		for _, l := range append(s.listeners, s.metricsLns...) {
			l.Close()
		}
		s.stopAllocRepair()
		s.stopSync()
		st.Close()
		return nil, err
	}
	if err := s.registerMetrics(); err != nil {
		return fail(err)
	}
	tlsCfg, err := cfg.clientTLS()
	if err != nil {
		return fail(err)
	}
	for _, u := range cfg.ListenClientURLs {
		_, addr, _ := parseURL(u)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("site: listen %s: %w", u, err))
		}
		s.listeners = append(s.listeners, l)
	}
	advertise := cfg.AdvertiseClientURLs
	if len(advertise) == 0 {
		advertise = s.ClientURLs()
	}
	ecfg := etcdshim.DefaultConfig()
	ecfg.Name = cfg.Name
	ecfg.AdvertiseClientURLs = advertise
	ecfg.MaxRequestBytes = cfg.MaxRequestBytes
	ecfg.WatchProgressNotifyInterval = cfg.WatchProgressNotifyInterval
	// TLS is the listeners' (serveClients): gRPC gets the decrypted stream.
	ecfg.TLS = nil
	ecfg.ServerOptions = s.grpcOpts // gRPC metrics of the client API
	ecfg.Logger = cfg.Logger
	if len(cfg.ListenPeerURLs) > 0 {
		s.joining = len(cfg.Join) > 0 && !holdsOthers(st.VersionVector(), st.Origin())
		if err := s.startSync(advertise); err != nil {
			return fail(err)
		}
		if err := s.startAllocRepair(); err != nil {
			return fail(err)
		}
		ecfg.Members = s.members
	}
	if s.api, err = etcdshim.New(ecfg, st, hub); err != nil {
		return fail(err)
	}
	for _, l := range s.listeners {
		s.serveClients(l, tlsCfg)
	}
	if err := s.serveMetricsURLs(); err != nil {
		return fail(err)
	}
	cfg.Logger.Info("site serving", "name", cfg.Name, "data-dir", cfg.DataDir, "clients", s.ClientURLs(), "metrics", s.MetricsURLs(),
		"revision", st.Rev(), "joining", s.joining)
	return s, nil
}

// startAllocRepair runs the repair of allocations Kubernetes assumes unique
// cluster-wide (site/alloc) on a multi-site store: a pass after the keys it
// reads change, as the watch hub reports them.
func (s *Site) startAllocRepair() error {
	cfg := alloc.DefaultConfig()
	cfg.Prefix = store.DefaultConfig().KubePrefix
	cfg.Site, cfg.Logger, cfg.Registerer = s.cfg.Name, s.cfg.Logger, s.cfg.Registerer
	rep, err := alloc.New(cfg, s.Store)
	if err != nil {
		return fmt.Errorf("site: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream := s.Hub.NewStream(ctx, 0, func(r watch.Response) error {
		for _, ev := range r.Events {
			if rep.Relevant(ev.KV.Key) {
				rep.Notify()
				break
			}
		}
		return nil
	})
	key, end := rep.Watch()
	if err := stream.Watch(watch.Request{Key: key, End: end}); err != nil {
		cancel()
		stream.Close()
		return fmt.Errorf("site: allocation repair: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep.Run(ctx)
	}()
	s.stopAlloc = func() {
		cancel()
		stream.Close()
		<-done
	}
	return nil
}

func (s *Site) stopAllocRepair() {
	if s.stopAlloc != nil {
		s.stopAlloc()
		s.stopAlloc = nil
	}
}

// StoreDir is where a site keeps its store inside its data directory.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "store") }

// holdsOthers reports whether a version vector holds changes of a site but self.
func holdsOthers(vv map[string]uint64, self string) bool {
	for o, seq := range vv {
		if o != self && seq > 0 {
			return true
		}
	}
	return false
}

// registerMetrics registers the site's own metrics and makes the gRPC server
// metrics its gRPC servers share.
func (s *Site) registerMetrics() error {
	reg := s.cfg.Registerer
	if reg == nil {
		return nil
	}
	grpcMetrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	changeLog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rhizome_store_changelog_entries",
		Help: "Changes in the change log not yet collected (held until every counted site has them).",
	}, func() float64 { return float64(s.Store.LogLen()) })
	for _, c := range []prometheus.Collector{grpcMetrics, changeLog} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("site: metrics: %w", err)
		}
	}
	s.grpcOpts = []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(grpcMetrics.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(grpcMetrics.StreamServerInterceptor()),
	}
	return nil
}

// ClientURLs returns the URLs clients reach the site on (with the real ports when
// the configuration asked for port 0).
func (s *Site) ClientURLs() []string {
	urls := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		scheme := "http"
		if secure, _, _ := parseURL(s.cfg.ListenClientURLs[i]); secure {
			scheme = "https"
		}
		urls[i] = scheme + "://" + l.Addr().String()
	}
	return urls
}

// Endpoints returns host:port of each client listener, as etcd clients take them.
func (s *Site) Endpoints() []string {
	eps := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		eps[i] = l.Addr().String()
	}
	return eps
}

// Err returns a channel that receives an error if a listener fails.
func (s *Site) Err() <-chan error { return s.errc }

// Close stops serving and closes the store.
func (s *Site) Close() error {
	s.closed.Store(true)
	s.stopHTTP()
	s.api.GracefulStop()
	for _, l := range s.listeners {
		l.Close()
	}
	s.stopAllocRepair()
	s.stopSync()
	return s.Store.Close()
}

func parseURL(raw string) (secure bool, addr string, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false, "", fmt.Errorf("site: bad client URL %q: want http://HOST:PORT or https://HOST:PORT", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return false, u.Host, nil
	case "https":
		return true, u.Host, nil
	}
	return false, "", fmt.Errorf("site: bad client URL %q: scheme must be http or https", raw)
}

func (c Config) clientTLS() (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("site: client TLS: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TrustedCAFile != "" {
		pem, err := os.ReadFile(c.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("site: trusted CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("site: trusted CA %s: no certificates", c.TrustedCAFile)
		}
		cfg.ClientCAs = pool
		if c.ClientCertAuth {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
}
