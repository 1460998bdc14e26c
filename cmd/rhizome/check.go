package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rhizome-kv/rhizome/checker"
	"github.com/rhizome-kv/rhizome/checker/k8s"
)

// runCheck is `rhizome check`: it parses flags and hands over to the model
// checker. Exit status: 1 when a property is violated, 0 when none was found
// within the bounds, 2 for a usage error.
func runCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	def := k8s.DefaultConfig()
	cdef := checker.DefaultConfig()
	var (
		list        = fs.Bool("list", false, "list the scenarios and properties, then exit")
		scenario    = fs.String("scenario", def.Scenario, "scenario to check (see --list)")
		consistency = fs.String("consistency", string(def.Consistency), "consistency model: synchronous, monotonic-session, resettable-session, optimistic-linear, causal, rhizome, rhizome-json-path (the merge before Kubernetes merge units)")
		mode        = fs.String("mode", string(cdef.Mode), "search: bfs, dfs or simulation")
		depth       = fs.Int("depth", 100, "maximum path length (0: unbounded)")
		timeout     = fs.Duration("timeout", 0, "wall-clock bound (0: none)")
		threads     = fs.Int("threads", 0, "worker threads (0: every core)")
		report      = fs.String("report", "", "write the JSON report to this file")
		sites       = fs.Int("sites", def.Sites, "sites of a rhizome model")
		replicas    = fs.Int("replicas", 0, "override the scenario's workload replicas")
		commitEvery = fs.Int("commit-every", def.CommitEvery, "optimistic-linear commit interval")
		properties  = fs.String("properties", "", "comma-separated properties to check (default: all)")
		symmetry    = fs.Bool("symmetry", false, "symmetry reduction over interchangeable controllers")
		seed        = fs.Uint64("seed", 1, "simulation seed")
		walks       = fs.Int("walks", 0, "simulation walks (0: until the timeout)")
		keepGoing   = fs.Bool("keep-going", false, "explore until the bounds even after every property is decided")
		quiet       = fs.Bool("quiet", false, "no progress lines")
		replay      = fs.String("replay", "", "replay the violations of a JSON report instead of checking")
		results     = fs.String("results", "", "run every scenario under every consistency model and write a markdown table to this file")
		resTimeout  = fs.Duration("results-timeout", 10*time.Second, "per-run timeout for --results")
	)
	counts := map[string]*int{}
	for _, k := range []string{"scheduler", "replicaset", "deployment", "statefulset", "job", "podgc", "gc"} {
		counts[k] = fs.Int(k+"-controllers", -1, "number of "+k+" controllers (per site under rhizome; -1: scenario default)")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *list {
		printList(os.Stdout)
		return 0
	}
	cfg := k8s.Config{Scenario: *scenario, Consistency: k8s.Consistency(*consistency), Sites: *sites,
		Replicas: *replicas, CommitEvery: *commitEvery, Controllers: map[string]int{}}
	for k, v := range counts {
		if *v >= 0 {
			cfg.Controllers[k] = *v
		}
	}
	if *properties != "" {
		cfg.Properties = strings.Split(*properties, ",")
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
		return 2
	}
	if *results != "" {
		return writeResults(*results, *depth, *resTimeout, *threads, args)
	}
	if *replay != "" {
		return replayReport(cfg, *replay, *symmetry)
	}
	ccfg := checker.Config{Mode: checker.Mode(*mode), Threads: *threads, MaxDepth: *depth, Timeout: *timeout,
		Seed: *seed, Walks: *walks, Symmetry: *symmetry, KeepGoing: *keepGoing, ProgressEvery: cdef.ProgressEvery}
	if !*quiet {
		ccfg.Progress = os.Stderr
	}
	if err := ccfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
		return 2
	}
	rep, err := k8s.Check(cfg, ccfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
		if rep == nil {
			return 2
		}
	}
	rep.WriteTraces(os.Stdout)
	rep.WriteSummary(os.Stdout)
	if *report != "" {
		if err := rep.WriteJSON(*report); err != nil {
			fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
			return 2
		}
	}
	if rep.Violated() {
		return 1
	}
	return 0
}

func printList(w io.Writer) {
	fmt.Fprintln(w, "scenarios:")
	for _, s := range k8s.Scenarios() {
		fmt.Fprintf(w, "  %-20s %s\n  %-20s   setup: %s\n", s.Name, s.Doc, "", s.Defaults)
	}
	fmt.Fprintln(w, "properties (checked in every scenario; vacuous where the resource is absent):")
	m, err := k8s.New(k8s.DefaultConfig())
	if err != nil {
		return
	}
	for _, p := range m.Properties() {
		fmt.Fprintf(w, "  %-10s %-28s %s\n", p.Expect, p.Name, p.Doc)
	}
	fmt.Fprintf(w, "consistency models: %v\n", k8s.Consistencies)
}

func replayReport(cfg k8s.Config, path string, symmetry bool) int {
	rep, err := checker.ReadReport(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
		return 2
	}
	violated := false
	for _, t := range rep.Violations {
		if len(t.Steps) == 0 {
			continue
		}
		out, v, err := k8s.Replay(cfg, t, symmetry)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
			return 2
		}
		checker.WriteTrace(os.Stdout, out)
		fmt.Printf("replayed %d steps; %q violated in the final state: %v\n", len(out.Steps)-1, t.Property, v)
		violated = violated || v
	}
	if violated {
		return 1
	}
	return 0
}

func writeResults(path string, depth int, timeout time.Duration, threads int, args []string) int {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
		return 2
	}
	defer f.Close()
	opts := k8s.ResultsOptions{Depth: depth, Timeout: timeout, Threads: threads, Progress: os.Stderr,
		Command: "rhizome check " + strings.Join(args, " ")}
	if err := k8s.WriteResults(f, opts); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome check: %v\n", err)
		return 2
	}
	return 0
}
