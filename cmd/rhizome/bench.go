package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rhizome-kv/rhizome/bench"
)

// benchSuites maps each `rhizome bench` suite to its entry point (a function,
// not a variable: the suites' help reads the command table, which names runBench).
func benchSuites() map[string]func(args []string) int {
	return map[string]func(args []string) int{
		"kv":    runBenchKV,
		"kube":  runBenchKube,
		"sites": runBenchSites,
		"fill":  runBenchFill,
		"edge":  runBenchEdge,
	}
}

// runBench is `rhizome bench <suite>`: kv (Rhizome against a real etcd with
// etcd's benchmark shapes), kube (the same through kube-apiserver), sites
// (several sites against an etcd cluster of as many members over delayed
// links: the delay sweep, a cut, bytes per change and the Kubernetes mix
// with a kube-apiserver per site), fill (memory and write rate as the store
// fills with pods) or edge (three sites with the Kubernetes control plane,
// cut and healed). Exit
// status: 0 when the run completed (whether or not targets were met: they
// are reported), 1 when it failed, 2 for a usage error.
func runBench(args []string) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Println("usage: rhizome bench kv|kube|sites|fill|edge [flags]   (rhizome bench <suite> --help for a suite's flags)")
		return 0
	}
	if len(args) == 0 || benchSuites()[args[0]] == nil {
		usageError("bench", "want a suite: kv, kube, sites, fill or edge")
		return 2
	}
	return benchSuites()[args[0]](args[1:])
}

// report is what a suite's run returns: a table and the files it writes.
type report interface {
	Table() string
	WriteFiles(dir, name string) ([]string, error)
}

// parseBench parses a suite's flags; ok is false with the exit status when
// the command should stop.
func parseBench(fs *flag.FlagSet, args []string) (status int, ok bool) {
	return parseFlags(fs, args)
}

// systemFlags registers the flags every suite shares: the binaries compared,
// where their data goes (whose: "servers'", say) and where the report goes.
func systemFlags(fs *flag.FlagSet, suite string, rhizomeBin, etcdBin, workDir *string, whose string) (out *string, quiet *bool) {
	fs.StringVar(rhizomeBin, "rhizome-bin", "", "rhizome binary to benchmark (default: go build ./cmd/rhizome)")
	fs.StringVar(etcdBin, "etcd-bin", "", "etcd binary to compare with (default: from scripts/bins.sh etcd)")
	fs.StringVar(workDir, "work-dir", "", "parent of the "+whose+" temporary data directories (default: the system temp dir)")
	out = fs.String("out", "", fmt.Sprintf("directory to write %[1]s.json, %[1]s.txt and %[1]s.png into (default: print only)", suite))
	quiet = fs.Bool("quiet", false, "no progress lines")
	return out, quiet
}

// finishBench runs a suite until SIGINT or SIGTERM, prints its table and
// writes its files into out (when set) as <name>.json, .txt and .png.
func finishBench[R report](name, out string, run func(ctx context.Context) (R, error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench %s: %v\n", name, err)
		return 1
	}
	fmt.Print("\n" + rep.Table())
	if out != "" {
		paths, err := rep.WriteFiles(out, name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rhizome bench %s: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", strings.Join(paths, ", "))
	}
	return 0
}

func progressTo(quiet bool) io.Writer {
	if quiet {
		return nil
	}
	return os.Stderr
}

func runBenchKV(args []string) int {
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("bench kv", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time per cell (workload × clients × system)")
	fs.IntVar(&cfg.Requests, "requests", 0, "measure this many requests per cell instead of --duration")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unrecorded warm-up per cell and system")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "turns per cell and system, alternating between the systems; they add up to --duration")
	clients := fs.String("clients", joinInts(cfg.Clients), "comma-separated concurrency levels")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "gRPC connections per cell at most; clients share them round-robin")
	workloads := fs.String("workloads", strings.Join(cfg.Workloads, ","), "comma-separated workloads: "+strings.Join(bench.Workloads(), ", "))
	fs.IntVar(&cfg.KeySize, "key-size", cfg.KeySize, "key size in bytes (>= 8)")
	fs.IntVar(&cfg.ValueSize, "val-size", cfg.ValueSize, "value size in bytes")
	fs.IntVar(&cfg.KeySpace, "key-space-size", cfg.KeySpace, "distinct keys Put cycles through")
	fs.IntVar(&cfg.RangeKeys, "range-keys", cfg.RangeKeys, "keys preloaded for Range to read")
	fs.IntVar(&cfg.TxnKeysPerClient, "txn-keys-per-client", cfg.TxnKeysPerClient, "keys each Txn client updates in turn")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed for key choice and values")
	out, quiet := systemFlags(fs, "kv", &cfg.RhizomeBin, &cfg.EtcdBin, &cfg.WorkDir, "servers'")
	if status, ok := parseBench(fs, args); !ok {
		return status
	}
	var err error
	if cfg.Clients, err = parseInts(*clients); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kv: --clients: %v\n", err)
		return 2
	}
	cfg.Workloads = splitList(*workloads)
	cfg.Progress = progressTo(*quiet)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kv: %v\n", err)
		return 2
	}
	return finishBench("kv", *out, func(ctx context.Context) (*bench.Report, error) { return bench.Run(ctx, cfg) })
}

func runBenchKube(args []string) int {
	cfg := bench.DefaultKubeConfig()
	quick := bench.QuickKubeConfig()
	fs := flag.NewFlagSet("bench kube", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	isQuick := fs.Bool("quick", false, fmt.Sprintf("a short run that proves the benchmark works: %d clients, %d round of %v after %v warm-up (other flags still apply)",
		quick.Clients[0], quick.Rounds, quick.Duration, quick.Warmup))
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time per round of a cell (level × system)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "unrecorded warm-up before each round")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds per cell, interleaved across the systems")
	clients := fs.String("clients", joinInts(cfg.Clients), "comma-separated concurrency levels")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "HTTP/2 connections to kube-apiserver the clients share round-robin")
	fs.BoolVar(&cfg.JSON, "json", false, "also measure Rhizome under kube-apiserver's JSON storage encoding")
	fs.BoolVar(&cfg.Replicated, "replicated", false, replicatedUsage)
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the call sequence")
	out, quiet := systemFlags(fs, "kube", &cfg.RhizomeBin, &cfg.EtcdBin, &cfg.WorkDir, "control planes'")
	fs.StringVar(&cfg.LogDir, "log-dir", "", "keep the components' logs here, one directory per system (default: removed)")
	if status, ok := parseBench(fs, args); !ok {
		return status
	}
	var err error
	if cfg.Clients, err = parseInts(*clients); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kube: --clients: %v\n", err)
		return 2
	}
	if *isQuick {
		cfg = quickUnlessSet(fs, cfg, quick)
	}
	cfg.Progress = progressTo(*quiet)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kube: %v\n", err)
		return 2
	}
	return finishBench("kube", *out, func(ctx context.Context) (*bench.KubeReport, error) { return bench.RunKube(ctx, cfg) })
}

func runBenchSites(args []string) int {
	cfg, quick := bench.DefaultSitesConfig(), bench.QuickSitesConfig()
	fs := flag.NewFlagSet("bench sites", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	isQuick := fs.Bool("quick", false, fmt.Sprintf("a run of a few minutes that proves the benchmark works: delays %s, %v per cell, %d clients, %g Puts/s per site at the fixed rate, a %v cut (other flags still apply)",
		joinDurations(quick.Delays), quick.Duration, quick.Clients, quick.Rate, quick.CutDuration))
	fs.IntVar(&cfg.Sites, "sites", cfg.Sites, "Rhizome sites, and etcd members")
	delays := fs.String("delays", joinDurations(cfg.Delays), "comma-separated one-way delays of every inter-site link to sweep over")
	fs.Float64Var(&cfg.Jitter, "jitter", cfg.Jitter, "each delay varies uniformly by up to this fraction of it either way")
	workloads := fs.String("workloads", strings.Join(cfg.Workloads, ","), "comma-separated workloads measured at every delay: "+strings.Join(bench.SitesWorkloads(), ", "))
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each workload runs at every site, per delay")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "clients per site (closed loop); the fixed-rate load spreads its requests over as many connections")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "Puts per second offered at every site by the "+bench.WorkloadPutRate+" workload and during the cut, whatever the latency (open loop; latency from each request's scheduled start): pick a rate etcd sustains at every delay so both systems serve the same load")
	fs.StringVar(&cfg.Arrivals, "arrivals", cfg.Arrivals, "spacing of the fixed-rate requests: "+bench.ArrivalsPoisson+" (random gaps, mean 1/rate) or "+bench.ArrivalsEven+" (exactly 1/rate)")
	fs.IntVar(&cfg.MaxOutstanding, "max-outstanding", cfg.MaxOutstanding, "fixed-rate requests in flight per site at most; one due beyond it is not started and counts as failed")
	fs.DurationVar(&cfg.CutDuration, "cut", cfg.CutDuration, "after the sweep, cut the last site off for this long under Put load, heal, and time until all sites agree (0: no cut)")
	fs.DurationVar(&cfg.CutDelay, "cut-delay", cfg.CutDelay, "one-way delay of the links during the cut run")
	pending := fs.String("converge-pending", joinInts(cfg.ConvergePending), "comma-separated writes per site to make while the last site is cut off, one round each, timing until every site holds them after the heal (empty: no such rounds)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "a request taking longer fails")
	fs.IntVar(&cfg.ValueSize, "val-size", cfg.ValueSize, "Put value size in bytes")
	kubeDelays := fs.String("kube-delays", joinDurations(cfg.KubeDelays), "comma-separated delays at which a kube-apiserver per site runs the Kubernetes mix after the cut (empty: no Kubernetes part)")
	fs.DurationVar(&cfg.KubeDuration, "kube-duration", cfg.KubeDuration, "how long the Kubernetes mix runs at every site, per delay")
	fs.IntVar(&cfg.KubeClients, "kube-clients", cfg.KubeClients, "Kubernetes mix clients per site")
	note := fs.String("note", "", "a line printed at the top of the report (what else the machine was doing, say)")
	out, quiet := systemFlags(fs, "sites", &cfg.RhizomeBin, &cfg.EtcdBin, &cfg.WorkDir, "servers'")
	if status, ok := parseBench(fs, args); !ok {
		return status
	}
	var err error
	if cfg.Delays, err = parseDurations(*delays); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench sites: --delays: %v\n", err)
		return 2
	}
	if cfg.KubeDelays, err = parseDurations(*kubeDelays); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench sites: --kube-delays: %v\n", err)
		return 2
	}
	if cfg.ConvergePending, err = parseInts(*pending); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench sites: --converge-pending: %v\n", err)
		return 2
	}
	cfg.Workloads = splitList(*workloads)
	if *note != "" {
		cfg.Notes = append(cfg.Notes, *note)
	}
	if *isQuick {
		takeUnlessSet(fs, map[string]func(){
			"delays":           func() { cfg.Delays = quick.Delays },
			"duration":         func() { cfg.Duration = quick.Duration },
			"clients":          func() { cfg.Clients = quick.Clients },
			"rate":             func() { cfg.Rate = quick.Rate },
			"cut":              func() { cfg.CutDuration = quick.CutDuration },
			"converge-pending": func() { cfg.ConvergePending = quick.ConvergePending },
			"kube-delays":      func() { cfg.KubeDelays = quick.KubeDelays },
			"kube-duration":    func() { cfg.KubeDuration = quick.KubeDuration },
			"kube-clients":     func() { cfg.KubeClients = quick.KubeClients },
		})
		cfg.CutLead, cfg.Bucket = quick.CutLead, quick.Bucket
		cfg.KubeWarmup, cfg.KubePool = quick.KubeWarmup, quick.KubePool
	}
	cfg.Progress = progressTo(*quiet)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench sites: %v\n", err)
		return 2
	}
	return finishBench("sites", *out, func(ctx context.Context) (*bench.SitesReport, error) { return bench.RunSites(ctx, cfg) })
}

func runBenchFill(args []string) int {
	cfg, quick := bench.DefaultFillConfig(), bench.QuickFillConfig()
	fs := flag.NewFlagSet("bench fill", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	isQuick := fs.Bool("quick", false, fmt.Sprintf("a short run that proves the benchmark works: %d pods, %v idle (other flags still apply)", quick.Objects, quick.Idle))
	fs.IntVar(&cfg.Objects, "objects", cfg.Objects, "pod-shaped objects written, then updated (the long mode: 100000)")
	fs.IntVar(&cfg.Updates, "updates", cfg.Updates, "status updates per object in the update phase (storage cost after many updates: 100)")
	fs.Float64Var(&cfg.UpdateFraction, "update-fraction", cfg.UpdateFraction, "share of the objects the update phase updates, spread evenly (0.1: 100 updates to every tenth object of a large store)")
	fs.DurationVar(&cfg.UpdateBudget, "update-budget", 0, "end Rhizome's update phase with the pass under way when this time has passed, and give etcd as many passes (0: all --updates)")
	fs.BoolVar(&cfg.Compact, "compact", cfg.Compact, "compact both stores' history after every update pass to the previous pass's end, as kube-apiserver compacts periodically (off: both keep every revision and hit the 2 GiB quota)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent writers")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "gRPC connections the writers share")
	fs.DurationVar(&cfg.Idle, "idle", cfg.Idle, "time without requests after the updates before memory is read again")
	fs.BoolVar(&cfg.Restart, "restart", cfg.Restart, "after the idle period, restart each server on its data and time it until it serves the last pod")
	fs.BoolVar(&cfg.Replicated, "replicated", false, replicatedUsage)
	out, quiet := systemFlags(fs, "fill", &cfg.RhizomeBin, &cfg.EtcdBin, &cfg.WorkDir, "servers'")
	if status, ok := parseBench(fs, args); !ok {
		return status
	}
	if *isQuick {
		takeUnlessSet(fs, map[string]func(){
			"objects": func() { cfg.Objects = quick.Objects },
			"idle":    func() { cfg.Idle = quick.Idle },
		})
		cfg.SampleEvery, cfg.ProgressEvery = quick.SampleEvery, quick.ProgressEvery
	}
	cfg.Progress = progressTo(*quiet)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench fill: %v\n", err)
		return 2
	}
	return finishBench("fill", *out, func(ctx context.Context) (*bench.FillReport, error) { return bench.RunFill(ctx, cfg) })
}

// quickUnlessSet takes the size of the run from quick, except what a flag
// set explicitly.
func quickUnlessSet(fs *flag.FlagSet, cfg, quick bench.KubeConfig) bench.KubeConfig {
	takeUnlessSet(fs, map[string]func(){
		"duration": func() { cfg.Duration = quick.Duration },
		"warmup":   func() { cfg.Warmup = quick.Warmup },
		"rounds":   func() { cfg.Rounds = quick.Rounds },
		"clients":  func() { cfg.Clients = quick.Clients },
		"conns":    func() { cfg.Conns = quick.Conns },
	})
	cfg.Namespaces, cfg.PoolPerClient, cfg.ProgressEvery = quick.Namespaces, quick.PoolPerClient, quick.ProgressEvery
	return cfg
}

// takeUnlessSet calls the function of every flag name that the command line
// did not set: a --quick run's sizes give way to explicit flags.
func takeUnlessSet(fs *flag.FlagSet, takes map[string]func()) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, take := range takes {
		if !set[name] {
			take()
		}
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, p := range splitList(s) {
		d, err := time.ParseDuration(p)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func joinDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// replicatedUsage is the help of bench fill's and bench kube's --replicated.
const replicatedUsage = "run Rhizome as one of several sites (peer listener and gossip, no peers), as a site that merges pays, instead of alone"
