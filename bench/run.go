package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// contender is one system under test with its client connections.
type contender struct {
	srv   *server
	conns []*clientv3.Client
}

// Run starts both servers, measures every cell of cfg on each, stops them and
// returns the report. It fails if a server does not start or dies, or if no
// request of a cell succeeds; request errors short of that are counted in
// the report. Progress lines go to cfg.Progress as cells complete.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := &Report{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host: Host{
			OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GoVersion: runtime.Version(), LoadBefore: loadAvg(),
		},
		Config: reportConfig(cfg),
	}

	root := cfg.ModuleRoot
	if root == "" && (cfg.RhizomeBin == "" || cfg.EtcdBin == "") {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if root, err = findModuleRoot(wd); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp(cfg.WorkDir, "rhizome-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(work)

	rhizomeBin, etcdBin := cfg.RhizomeBin, cfg.EtcdBin
	if rhizomeBin == "" {
		fmt.Fprintf(progress, "bench: building rhizome (go build ./cmd/rhizome in %s)\n", root)
		if rhizomeBin, err = buildRhizome(ctx, root, filepath.Join(work, "bin")); err != nil {
			return nil, err
		}
		rep.Host.RhizomeCommit = gitDescribe(ctx, root)
	}
	if etcdBin == "" {
		fmt.Fprintln(progress, "bench: getting etcd (scripts/bins.sh etcd)")
		if etcdBin, err = etcdBinary(ctx, root, progress); err != nil {
			return nil, err
		}
	}
	rep.Host.RhizomeBin, rep.Host.EtcdBin = rhizomeBin, etcdBin
	rep.Host.EtcdVersion = binaryVersion(ctx, etcdBin)

	var contenders []*contender
	defer func() {
		for _, c := range contenders {
			for _, cli := range c.conns {
				cli.Close()
			}
			c.srv.stop()
		}
	}()
	for _, system := range []string{SystemRhizome, SystemEtcd} {
		dir := filepath.Join(work, system)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		start := startRhizome
		if system == SystemEtcd {
			start = startEtcd
		}
		srv, err := start(map[string]string{SystemRhizome: rhizomeBin, SystemEtcd: etcdBin}[system], dir)
		if err != nil {
			return nil, err
		}
		contenders = append(contenders, &contender{srv: srv})
	}
	for _, c := range contenders {
		if err := c.srv.waitReady(ctx, cfg.StartTimeout); err != nil {
			return nil, err
		}
		for range cfg.Conns {
			cli, err := newClient(c.srv.endpoint)
			if err != nil {
				return nil, err
			}
			c.conns = append(c.conns, cli)
		}
		fmt.Fprintf(progress, "bench: %s answering on %s (data in %s)\n", c.srv.system, c.srv.endpoint, filepath.Dir(c.srv.logPath))
	}

	total := len(cfg.Workloads) * len(cfg.Clients) * len(contenders)
	preloaded := false
	for _, w := range cfg.Workloads {
		if (w == WorkloadRangeSerializable || w == WorkloadRangeLinearizable) && !preloaded {
			for _, c := range contenders {
				if err := preloadRange(ctx, c.conns, cfg); err != nil {
					return nil, fmt.Errorf("%w (%s)", err, c.srv.system)
				}
			}
			preloaded = true
		}
		for level, clients := range cfg.Clients {
			// Alternate which system goes first, so drift in the machine's
			// load does not always favour the same one.
			order := slices.Clone(contenders)
			if (len(rep.Cells)/len(contenders))%2 == 1 {
				slices.Reverse(order)
			}
			for _, c := range order {
				res, err := measure(ctx, cfg, c, contenders, w, level, clients)
				if err != nil {
					return nil, err
				}
				rep.Cells = append(rep.Cells, res)
				fmt.Fprintf(progress, "[%2d/%d] %s\n", len(rep.Cells), total, res.summary())
			}
		}
	}
	rep.Host.LoadAfter = loadAvg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.compare()
	return rep, nil
}

// measure runs one cell: warm-up, then the measured phase.
// all are every contender, whose CPU is not counted as other load.
func measure(ctx context.Context, cfg Config, c *contender, all []*contender, workload string, level, clients int) (Cell, error) {
	cl := &cell{workload: workload, clients: clients, level: level, conns: c.conns[:min(clients, len(c.conns))], cfg: cfg}
	ops := make([]op, clients)
	for i := range ops {
		ops[i] = cl.newOp(i)
	}
	if cfg.Warmup > 0 {
		runPhase(ctx, ops, time.Now().Add(cfg.Warmup), nil)
	}
	if err := c.srv.alive(); err != nil {
		return Cell{}, err
	}
	cl.conflicts.Store(0)
	var budget *atomic.Int64
	if cfg.Requests > 0 {
		budget = new(atomic.Int64)
		budget.Store(int64(cfg.Requests))
	}
	res := Cell{Workload: workload, Clients: clients, Conns: len(cl.conns), System: c.srv.system, LoadStart: loadAvg()}
	meter := &cpuMeter{}
	for _, o := range all {
		meter.servers = append(meter.servers, o.srv)
	}
	meter.begin()
	cpu0, cpuErr0 := c.srv.cpuTime()
	ph := runPhase(ctx, ops, time.Now().Add(cfg.Duration), budget)
	cpu1, cpuErr1 := c.srv.cpuTime()
	res.OtherCores = meter.otherCores()
	res.LoadEnd = loadAvg()
	if err := ctx.Err(); err != nil {
		return Cell{}, err
	}
	if err := c.srv.alive(); err != nil {
		return Cell{}, err
	}
	if ph.hist.n == 0 {
		return Cell{}, fmt.Errorf("bench: %s %s with %d clients: no request succeeded: %w", c.srv.system, workload, clients, ph.lastErr)
	}
	h := &ph.hist
	res.Requests, res.Errors, res.Conflicts = int64(h.n), ph.errors, cl.conflicts.Load()
	if ph.lastErr != nil {
		res.LastError = ph.lastErr.Error()
	}
	res.Seconds = ph.elapsed.Seconds()
	res.Throughput = float64(h.n) / ph.elapsed.Seconds()
	res.MeanMs, res.MaxMs = ms(h.mean()), ms(time.Duration(h.max))
	res.P50Ms, res.P90Ms = ms(h.quantile(0.50)), ms(h.quantile(0.90))
	res.P99Ms, res.P999Ms = ms(h.quantile(0.99)), ms(h.quantile(0.999))
	res.ServerCPUPerRequestUs = -1
	if errors.Join(cpuErr0, cpuErr1) == nil {
		res.ServerCPUPerRequestUs = float64((cpu1 - cpu0).Microseconds()) / float64(h.n)
	}
	res.ServerRSSBytes, _ = c.srv.rssBytes()
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
