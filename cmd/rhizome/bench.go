package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/rhizome-kv/rhizome/bench"
)

// runBench is `rhizome bench <suite>`. The only suite so far is kv: Rhizome
// against a real etcd with etcd's benchmark shapes. Exit status: 0 when the run
// completed (whether or not targets were met: they are reported), 1 when it
// failed, 2 for a usage error.
func runBench(args []string) int {
	if len(args) == 0 || args[0] != "kv" {
		fmt.Fprintln(os.Stderr, "usage: rhizome bench kv [flags]   (rhizome bench kv -h for the flags)")
		return 2
	}
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
	fs.StringVar(&cfg.RhizomeBin, "rhizome-bin", "", "rhizome binary to benchmark (default: go build ./cmd/rhizome)")
	fs.StringVar(&cfg.EtcdBin, "etcd-bin", "", "etcd binary to compare with (default: from scripts/bins.sh etcd)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "parent of the servers' temporary data directories (default: the system temp dir)")
	out := fs.String("out", "", "directory to write kv.json, kv.txt and kv.png into (default: print only)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rhizome bench kv: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var err error
	if cfg.Clients, err = parseInts(*clients); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kv: --clients: %v\n", err)
		return 2
	}
	cfg.Workloads = splitList(*workloads)
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kv: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench kv: %v\n", err)
		return 1
	}
	fmt.Print("\n" + rep.Table())
	if *out != "" {
		paths, err := rep.WriteFiles(*out, "kv")
		if err != nil {
			fmt.Fprintf(os.Stderr, "rhizome bench kv: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", strings.Join(paths, ", "))
	}
	return 0
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
