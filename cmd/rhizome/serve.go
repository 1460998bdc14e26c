package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/internal/resident"
	"github.com/rhizome-kv/rhizome/site"
	"github.com/rhizome-kv/rhizome/store"
)

// serveFlags are `rhizome serve`'s flags that are not a site.Config field as
// they stand (lists, keys, paths with defaults derived from other flags).
type serveFlags struct {
	fs                                         *flag.FlagSet
	dataDir, listen, advertise, metricsURLs    *string
	listenPeer, advertisePeer, join, gossipKey *string
	logLevel, logFormat, configFile            *string
	helpMD                                     *bool
	memoryLimit                                *int64
}

// newServeFlags defines serve's flags over cfg, whose values are the defaults.
// Flags follow etcd's names so existing recipes work.
func newServeFlags(cfg *site.Config) *serveFlags {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	f := &serveFlags{fs: fs}
	f.configFile = fs.String("config-file", "", "YAML file of flag values, keys being the flag names (as etcd's --config-file)")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "human-readable name of this site")
	f.dataDir = fs.String("data-dir", "", "directory for the site's data (default: ${name}.rhizome)")
	f.listen = fs.String("listen-client-urls", strings.Join(cfg.ListenClientURLs, ","), "comma-separated URLs to serve clients on")
	f.advertise = fs.String("advertise-client-urls", "", "comma-separated client URLs to report to the cluster (default: the listen URLs)")
	f.metricsURLs = fs.String("listen-metrics-urls", "", "comma-separated http URLs serving /metrics, /health, /livez, /readyz, /version and /rhizome/status (the client URLs serve them too)")
	fs.StringVar(&cfg.CertFile, "cert-file", "", "client server TLS certificate file")
	fs.StringVar(&cfg.KeyFile, "key-file", "", "client server TLS key file")
	fs.StringVar(&cfg.TrustedCAFile, "trusted-ca-file", "", "CA bundle that client certificates must chain to")
	fs.BoolVar(&cfg.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by --trusted-ca-file")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", cfg.MaxRequestBytes, "largest write request accepted, in bytes")
	fs.DurationVar(&cfg.WatchProgressNotifyInterval, "watch-progress-notify-interval", cfg.WatchProgressNotifyInterval, "period of progress notifications to watchers that ask for them")
	fs.StringVar(&cfg.ClusterToken, "initial-cluster-token", cfg.ClusterToken, "cluster name: sites only join sites with the same token")
	f.listenPeer = fs.String("listen-peer-urls", "", "URL to serve other sites on (sync); empty runs a lone site")
	f.advertisePeer = fs.String("advertise-peer-urls", "", "peer URL to tell other sites (default: the listen URL)")
	fs.StringVar(&cfg.GossipAddr, "gossip-addr", "", "HOST:PORT for membership gossip (bind and advertise)")
	f.join = fs.String("join", "", "comma-separated gossip HOST:PORT of existing sites")
	f.gossipKey = fs.String("gossip-key", "", "base64 key (16, 24 or 32 bytes) that encrypts and authenticates gossip; the same at every site")
	fs.StringVar(&cfg.PeerCertFile, "peer-cert-file", "", "peer TLS certificate file")
	fs.StringVar(&cfg.PeerKeyFile, "peer-key-file", "", "peer TLS key file")
	fs.StringVar(&cfg.PeerTrustedCAFile, "peer-trusted-ca-file", "", "CA bundle that peer certificates must chain to")
	fs.BoolVar(&cfg.PeerClientCertAuth, "peer-client-cert-auth", false, "require peer client certificates signed by --peer-trusted-ca-file")
	fs.DurationVar(&cfg.AntiEntropyInterval, "anti-entropy-interval", cfg.AntiEntropyInterval, "how often each site asks its peers for changes it lacks")
	fs.DurationVar(&cfg.LeaseTakeover, "lease-takeover-timeout", cfg.LeaseTakeover, "how long after a site is declared dead another site expires the leases it granted")
	fs.DurationVar(&cfg.ForgetSiteAfter, "forget-site-after", cfg.ForgetSiteAfter, "how long a dead site is waited for before the others stop keeping history for it (it then catches up by snapshot)")
	fs.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "serve Go's runtime profiles at /debug/pprof/ on the client and metrics URLs, as etcd's --enable-pprof")
	fs.BoolVar(&cfg.GossipLAN, "gossip-lan", false, "use LAN failure-detection timing (default: WAN)")
	fs.Int64Var(&cfg.QuotaBackendBytes, "quota-backend-bytes", cfg.QuotaBackendBytes, "raise the NOSPACE alarm and refuse writes when the store would exceed this size in bytes (0: 2 GiB, as etcd; negative: no quota)")
	fs.Int64Var(&cfg.MemoryBudget, "memory-budget", 0, "bytes for the store's badger memtables and caches (0: 64 MiB, for a 2 GB edge node; 256 MiB on a server, 32 MiB on a 1 GB box; at least 8 MiB)")
	f.memoryLimit = fs.Int64("memory-limit", 0, "soft limit on Go's memory in bytes, as GOMEMLIMIT, raised to 1.5x the live heap when that is more, so it never makes the garbage collector thrash (0: --memory-budget + 64 MiB, 128 MiB by default; negative: none; GOMEMLIMIT in the environment wins)")
	fs.BoolVar(&cfg.UnsafeNoFsync, "unsafe-no-fsync", false, "acknowledge writes before they are on disk (loses data on a crash)")
	f.logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	f.logFormat = fs.String("log-format", "text", "text or json (one JSON object per line)")
	f.helpMD = fs.Bool("help-md", false, "print this flag reference as markdown (docs/flags.md) and exit")
	return f
}

// runServe runs one site until SIGINT or SIGTERM. Everything is validated
// before anything is created on disk.
// nativeArenas is how many glibc arenas serve lets automerge's memory spread
// over (MALLOC_ARENA_MAX in the environment, if set, decides instead).
const nativeArenas = 2

func runServe(args []string) int {
	// Before the store's goroutines allocate on the C side (see crdt).
	if os.Getenv("MALLOC_ARENA_MAX") == "" {
		crdt.LimitNativeArenas(nativeArenas)
	}
	cfg := site.DefaultConfig()
	f := newServeFlags(&cfg)
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	if *f.helpMD {
		writeFlagsMarkdown(os.Stdout, f.fs, "help-md")
		return 0
	}
	if err := osConfigSource().fill(f.fs, "config-file", "help-md"); err != nil {
		usageError("serve", "%v", err)
		return 2
	}
	if err := f.apply(&cfg); err != nil {
		usageError("serve", "%v", err)
		return 2
	}
	if err := armFailpoints(&cfg, os.LookupEnv); err != nil {
		usageError("serve", "%v", err)
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	if err := cfg.Validate(); err != nil {
		usageError("serve", "%v", err)
		return 2
	}

	s, err := startSite(cfg)
	if err != nil {
		cfg.Logger.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go releaseExecutable(cfg.Logger)
	if limit, ok := memoryLimitOf(*f.memoryLimit, cfg.MemoryBudget, os.LookupEnv); ok {
		tick := time.NewTicker(memoryLimitPeriod)
		defer tick.Stop()
		go newMemoryLimiter(limit, debug.SetMemoryLimit, reg, cfg.Logger).run(ctx, tick.C)
	}
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

// releaseExecutable pages out the code and data the start-up touched (most of
// the binary: see internal/resident); what serving uses comes back as it runs.
// It runs beside serving: syncing a binary just built takes a while, and a
// signal meanwhile must still shut the site down.
func releaseExecutable(log *slog.Logger) {
	released, err := resident.ReleaseExecutable()
	if err != nil {
		log.Warn("the executable's pages stay resident", "err", err)
		return
	}
	log.Info("released the executable's start-up pages", "MiB", released>>20)
}

// memoryLimitOf is the soft memory limit serve keeps (see memlimit.go) for
// --memory-limit flag and --memory-budget budget; ok is false for none: a
// negative flag, or GOMEMLIMIT in the environment, which the runtime
// follows instead.
func memoryLimitOf(flag, budget int64, env func(string) (string, bool)) (limit int64, ok bool) {
	if _, set := env("GOMEMLIMIT"); set || flag < 0 {
		return 0, false
	}
	if flag > 0 {
		return flag, true
	}
	if budget == 0 {
		budget = store.DefaultMemoryBudget
	}
	return defaultMemoryLimit(budget), true
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

// apply checks every flag's value on its own, naming the flag and the value,
// and completes cfg from the flags that are not plain Config fields. It touches
// nothing on disk; cfg.Validate then checks the flags against each other.
func (f *serveFlags) apply(cfg *site.Config) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", *f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *f.logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	default:
		return fmt.Errorf("--log-format %q: want text or json", *f.logFormat)
	}
	cfg.DataDir = *f.dataDir
	if cfg.DataDir == "" {
		cfg.DataDir = cfg.Name + ".rhizome"
	}
	cfg.ListenClientURLs = splitList(*f.listen)
	cfg.AdvertiseClientURLs = splitList(*f.advertise)
	cfg.ListenMetricsURLs = splitList(*f.metricsURLs)
	cfg.ListenPeerURLs = splitList(*f.listenPeer)
	cfg.AdvertisePeerURLs = splitList(*f.advertisePeer)
	cfg.Join = splitList(*f.join)
	if *f.gossipKey != "" {
		key, err := base64.StdEncoding.DecodeString(*f.gossipKey)
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			// Never print the key itself: it is a secret.
			return fmt.Errorf("--gossip-key: want the base64 of 16, 24 or 32 bytes (e.g. head -c 32 /dev/urandom | base64)")
		}
		cfg.GossipKey = key
	}
	if l := *f.memoryLimit; l > 0 && l < minMemoryLimit {
		return fmt.Errorf("--memory-limit %d: must be 0 (the default), negative (none) or at least %d (32 MiB)", l, minMemoryLimit)
	}
	return checkServeValues(cfg, *f.metricsURLs)
}

// checkServeValues checks each value that can be wrong on its own.
func checkServeValues(cfg *site.Config, metricsURLs string) error {
	switch {
	case cfg.Name == "":
		return errors.New("--name: must not be empty")
	case strings.ContainsAny(cfg.Name, "/\\"):
		return fmt.Errorf("--name %q: must not contain a path separator", cfg.Name)
	case cfg.MaxRequestBytes <= 0:
		return fmt.Errorf("--max-request-bytes %d: must be positive", cfg.MaxRequestBytes)
	case cfg.WatchProgressNotifyInterval < 0:
		return fmt.Errorf("--watch-progress-notify-interval %s: must not be negative", cfg.WatchProgressNotifyInterval)
	case cfg.ClusterToken == "":
		return errors.New("--initial-cluster-token: must not be empty")
	case cfg.AntiEntropyInterval <= 0:
		return fmt.Errorf("--anti-entropy-interval %s: must be positive", cfg.AntiEntropyInterval)
	case cfg.LeaseTakeover <= 0:
		return fmt.Errorf("--lease-takeover-timeout %s: must be positive", cfg.LeaseTakeover)
	case cfg.ForgetSiteAfter <= 0:
		return fmt.Errorf("--forget-site-after %s: must be positive", cfg.ForgetSiteAfter)
	case cfg.MemoryBudget != 0 && cfg.MemoryBudget < store.MinMemoryBudget:
		return fmt.Errorf("--memory-budget %d: must be 0 (the default) or at least %d (8 MiB)", cfg.MemoryBudget, store.MinMemoryBudget)
	}
	// Each in flag order, so the same bad command line always gets the same error.
	type flagList struct {
		name string
		list []string
	}
	urls := []flagList{
		{"listen-client-urls", cfg.ListenClientURLs}, {"advertise-client-urls", cfg.AdvertiseClientURLs},
		{"listen-peer-urls", cfg.ListenPeerURLs}, {"advertise-peer-urls", cfg.AdvertisePeerURLs},
		{"listen-metrics-urls", splitList(metricsURLs)},
	}
	for _, f := range urls {
		for _, u := range f.list {
			if err := checkURL(u, f.name == "listen-metrics-urls"); err != nil {
				return fmt.Errorf("--%s %q: %w", f.name, u, err)
			}
		}
	}
	for _, f := range []flagList{{"gossip-addr", splitList(cfg.GossipAddr)}, {"join", cfg.Join}} {
		for _, hp := range f.list {
			if _, port, err := net.SplitHostPort(hp); err != nil || port == "" {
				return fmt.Errorf("--%s %q: want HOST:PORT", f.name, hp)
			}
		}
	}
	files := []struct{ name, path string }{
		{"cert-file", cfg.CertFile}, {"key-file", cfg.KeyFile}, {"trusted-ca-file", cfg.TrustedCAFile},
		{"peer-cert-file", cfg.PeerCertFile}, {"peer-key-file", cfg.PeerKeyFile}, {"peer-trusted-ca-file", cfg.PeerTrustedCAFile},
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("--%s %q: %w", f.name, f.path, errors.Unwrap(err))
		}
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("--data-dir %q: not a directory", cfg.DataDir)
	}
	return nil
}

// checkURL accepts http://HOST:PORT or https://HOST:PORT (http only for
// metrics).
func checkURL(raw string, httpOnly bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && (httpOnly || u.Scheme != "https"):
		if httpOnly {
			return errors.New("want http://HOST:PORT")
		}
		return errors.New("want http://HOST:PORT or https://HOST:PORT")
	case u.Port() == "":
		return errors.New("no port")
	case u.Path != "" && u.Path != "/":
		return errors.New("a URL to listen on has no path")
	}
	return nil
}

// startSite starts the site. If it fails and the data directory did not exist
// before, it removes what it created: nothing was acknowledged to anyone.
func startSite(cfg site.Config) (*site.Site, error) {
	_, statErr := os.Stat(cfg.DataDir)
	s, err := site.Start(cfg)
	if err != nil && errors.Is(statErr, os.ErrNotExist) {
		if rmErr := os.RemoveAll(cfg.DataDir); rmErr != nil {
			cfg.Logger.Warn("cannot remove the data directory of a failed start", "dir", cfg.DataDir, "err", rmErr)
		}
	}
	return s, err
}

// goCollector is the Go runtime's collector with the live heap added
// (go_gc_heap_live_bytes: what the last garbage collection found reachable),
// the figure that says what a site keeps, where go_memstats_heap_inuse_bytes
// also counts garbage not yet collected; the memory limit in force
// (go_gc_gomemlimit_bytes); and the CPU the collector takes
// (go_cpu_classes_gc_total_cpu_seconds_total, of
// go_cpu_classes_total_cpu_seconds_total).
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^(/gc/heap/live:bytes|/gc/gomemlimit:bytes|/cpu/classes/(gc/total|total):cpu-seconds)$`)},
	))
}
