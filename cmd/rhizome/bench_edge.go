package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/rhizome-kv/rhizome/bench"
)

// runBenchEdge is `rhizome bench edge`: the edge story with three sites on
// this machine, each Rhizome with the unmodified Kubernetes control plane.
func runBenchEdge(args []string) int {
	cfg := bench.DefaultEdgeConfig()
	quick := bench.QuickEdgeConfig()
	fs := flag.NewFlagSet("bench edge", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	isQuick := fs.Bool("quick", false, fmt.Sprintf("the short run of the default test run: a %v cut, %v settle-quiet (other flags still apply)", quick.CutDuration, quick.Quiet))
	fs.IntVar(&cfg.Sites, "sites", cfg.Sites, "sites, each with its own control plane; the last is cut off")
	fs.DurationVar(&cfg.Delay.Delay, "delay", cfg.Delay.Delay, "one-way delay of every inter-site link")
	fs.DurationVar(&cfg.Delay.Jitter, "jitter", cfg.Delay.Jitter, "the delay varies uniformly by up to this much either way")
	fs.DurationVar(&cfg.CutDuration, "cut", cfg.CutDuration, "how long the last site is cut off (each side elects its own leader after about 20s)")
	fs.DurationVar(&cfg.Quiet, "settle-quiet", cfg.Quiet, "controllers have stopped writing once nothing but Leases and Events changed for this long")
	fs.DurationVar(&cfg.SettleTimeout, "settle-timeout", cfg.SettleTimeout, "bound on each wait: workloads ready, identical stores, quiet controllers")
	rhizomeBin := fs.String("rhizome-bin", "", "rhizome binary to run (default: go build ./cmd/rhizome)")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "parent of the sites' temporary directories (default: the system temp dir)")
	fs.StringVar(&cfg.LogDir, "log-dir", "", "keep the components' logs here, one directory per site (default: removed)")
	out := fs.String("out", "", "directory to write edge.md, edge.json and edge.png into (default: print only)")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if status, ok := parseBench(fs, args); !ok {
		return status
	}
	if *isQuick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["cut"] {
			cfg.CutDuration = quick.CutDuration
		}
		if !set["settle-quiet"] {
			cfg.Quiet = quick.Quiet
		}
	}
	cfg.RhizomeBin = *rhizomeBin
	cfg.Progress = progressTo(*quiet)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome bench edge: %v\n", err)
		return 2
	}
	return finishBench("edge", *out, func(ctx context.Context) (*bench.EdgeReport, error) { return bench.RunEdge(ctx, cfg) })
}
