package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rhizome-kv/rhizome/site"
)

// runServe runs one site until SIGINT or SIGTERM. Flags follow etcd's names so
// existing recipes work.
func runServe(args []string) int {
	cfg := site.DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "human-readable name of this site")
	dataDir := fs.String("data-dir", "", "directory for the site's data (default: ${name}.rhizome)")
	listen := fs.String("listen-client-urls", strings.Join(cfg.ListenClientURLs, ","), "comma-separated URLs to serve clients on")
	advertise := fs.String("advertise-client-urls", "", "comma-separated client URLs to report to the cluster (default: the listen URLs)")
	metricsURLs := fs.String("listen-metrics-urls", "", "comma-separated http URLs serving /metrics, /health, /livez, /readyz, /version and /rhizome/status (the client URLs serve them too)")
	fs.StringVar(&cfg.CertFile, "cert-file", "", "client server TLS certificate file")
	fs.StringVar(&cfg.KeyFile, "key-file", "", "client server TLS key file")
	fs.StringVar(&cfg.TrustedCAFile, "trusted-ca-file", "", "CA bundle that client certificates must chain to")
	fs.BoolVar(&cfg.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by --trusted-ca-file")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest write request accepted, in bytes")
	fs.DurationVar(&cfg.WatchProgressNotifyInterval, "watch-progress-notify-interval", cfg.WatchProgressNotifyInterval, "period of progress notifications to watchers that ask for them")
	fs.StringVar(&cfg.ClusterToken, "initial-cluster-token", cfg.ClusterToken, "cluster name: sites only join sites with the same token")
	listenPeer := fs.String("listen-peer-urls", "", "URL to serve other sites on (sync); empty runs a lone site")
	advertisePeer := fs.String("advertise-peer-urls", "", "peer URL to tell other sites (default: the listen URL)")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", "", "HOST:PORT for membership gossip (bind and advertise)")
	join := fs.String("join", "", "comma-separated gossip HOST:PORT of existing sites")
	gossipKey := fs.String("gossip-key", "", "base64 key (16, 24 or 32 bytes) that encrypts and authenticates gossip")
	fs.StringVar(&cfg.PeerCertFile, "peer-cert-file", "", "peer TLS certificate file")
	fs.StringVar(&cfg.PeerKeyFile, "peer-key-file", "", "peer TLS key file")
	fs.StringVar(&cfg.PeerTrustedCAFile, "peer-trusted-ca-file", "", "CA bundle that peer certificates must chain to")
	fs.BoolVar(&cfg.PeerClientCertAuth, "peer-client-cert-auth", false, "require peer client certificates signed by --peer-trusted-ca-file")
	fs.DurationVar(&cfg.AntiEntropyInterval, "anti-entropy-interval", cfg.AntiEntropyInterval, "how often each site asks its peers for changes it lacks")
	fs.DurationVar(&cfg.LeaseTakeover, "lease-takeover-timeout", cfg.LeaseTakeover, "how long after a site is declared dead another site expires the leases it granted")
	fs.DurationVar(&cfg.ForgetSiteAfter, "forget-site-after", cfg.ForgetSiteAfter, "how long a dead site is waited for before the others stop keeping history for it (it then catches up by snapshot)")
	fs.BoolVar(&cfg.GossipLAN, "gossip-lan", false, "use LAN failure-detection timing (default: WAN)")
	fs.Int64Var(&cfg.QuotaBackendBytes, "quota-backend-bytes", cfg.QuotaBackendBytes, "raise the NOSPACE alarm and refuse writes when the store would exceed this size in bytes (0: 2 GiB, as etcd; negative: no quota)")
	fs.Int64Var(&cfg.MemoryBudget, "memory-budget", 0, "bytes for the store's badger memtables and caches (0: 128 MiB, sized for a 2 GB edge node; at least 8 MiB)")
	fs.BoolVar(&cfg.UnsafeNoFsync, "unsafe-no-fsync", false, "acknowledge writes before they are on disk (loses data on a crash)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rhizome serve: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome serve: --log-level: %v\n", err)
		return 2
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.DataDir = *dataDir
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".rhizome"
	}
	cfg.ListenClientURLs = splitList(*listen)
	cfg.AdvertiseClientURLs = splitList(*advertise)
	cfg.ListenMetricsURLs = splitList(*metricsURLs)
	cfg.ListenPeerURLs = splitList(*listenPeer)
	cfg.AdvertisePeerURLs = splitList(*advertisePeer)
	cfg.Join = splitList(*join)
	if *gossipKey != "" {
		key, err := base64.StdEncoding.DecodeString(*gossipKey)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rhizome serve: --gossip-key: %v\n", err)
			return 2
		}
		cfg.GossipKey = key
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome serve: %v\n", err)
		return 2
	}

	s, err := site.Start(cfg)
	if err != nil {
		cfg.Logger.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code := 0
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case err := <-s.Err():
		cfg.Logger.Error("client listener failed", "err", err)
		code = 1
	}
	if err := s.Close(); err != nil {
		cfg.Logger.Error("closing", "err", err)
		code = 1
	}
	return code
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
