package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	progress := progressOrDiscard(cfg.Progress)
	rep := &Report{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host:    newHost(),
		Config:  reportConfig(cfg),
	}

	work, bins, cleanup, err := prepareRun(ctx, cfg.WorkDir, "rhizome-bench-", cfg.RhizomeBin, cfg.EtcdBin, progress, &rep.Host)
	if err != nil {
		return nil, err
	}
	defer cleanup()

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
		start, bin := startRhizome, bins.rhizome
		if system == SystemEtcd {
			start, bin = startEtcd, bins.etcd
		}
		srv, err := start(ctx, bin, dir, cfg.StartTimeout)
		if err != nil {
			return nil, err
		}
		c := &contender{srv: srv}
		contenders = append(contenders, c)
		for range cfg.Conns {
			cli, err := newClient(srv.endpoint)
			if err != nil {
				return nil, err
			}
			c.conns = append(c.conns, cli)
		}
		fmt.Fprintf(progress, "bench: %s answering on %s (data in %s)\n", system, srv.endpoint, dir)
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
			cells, err := measure(ctx, cfg, contenders, w, level, clients)
			if err != nil {
				return nil, err
			}
			for _, res := range cells {
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

// attempt is one system's share of a cell while it is being measured.
type attempt struct {
	c       *contender
	cl      *cell
	ops     []op
	hist    histogram
	errors  int64
	lastErr error
	elapsed time.Duration
	cpu     time.Duration // the server's CPU time over the measured rounds
	cpuOK   bool
	other   float64 // other cores × seconds, summed over rounds
	otherOK bool
	load0   float64
}

// measure runs one workload at one concurrency level on every contender:
// a warm-up each, then cfg.Rounds rounds that take turns between the
// systems, alternating which goes first, so load from elsewhere on the
// machine falls on all of them alike. Each system's rounds add up to
// cfg.Duration (or cfg.Requests).
func measure(ctx context.Context, cfg Config, contenders []*contender, workload string, level, clients int) ([]Cell, error) {
	meter := &cpuMeter{}
	var runs []*attempt
	for _, c := range contenders {
		meter.pids = append(meter.pids, c.srv.proc.PID())
		cl := &cell{workload: workload, clients: clients, level: level, conns: c.conns[:min(clients, len(c.conns))], cfg: cfg}
		a := &attempt{c: c, cl: cl, ops: make([]op, clients), cpuOK: true, otherOK: true, load0: loadAvg()}
		for i := range a.ops {
			a.ops[i] = cl.newOp(i)
		}
		runs = append(runs, a)
	}
	for _, a := range runs {
		if cfg.Warmup > 0 {
			runPhase(ctx, a.ops, time.Now().Add(cfg.Warmup), nil)
		}
		a.cl.conflicts.Store(0)
	}
	for round := range cfg.Rounds {
		order := slices.Clone(runs)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, a := range order {
			if err := a.c.srv.alive(); err != nil {
				return nil, err
			}
			var budget *atomic.Int64
			if cfg.Requests > 0 {
				// Spread the requests over the rounds; the last takes the rest.
				n := cfg.Requests / cfg.Rounds
				if round == cfg.Rounds-1 {
					n = cfg.Requests - n*(cfg.Rounds-1)
				}
				budget = new(atomic.Int64)
				budget.Store(int64(n))
			}
			meter.begin()
			cpu0, err0 := a.c.srv.cpuTime()
			ph := runPhase(ctx, a.ops, time.Now().Add(cfg.Duration/time.Duration(cfg.Rounds)), budget)
			cpu1, err1 := a.c.srv.cpuTime()
			if o := meter.otherCores(); o >= 0 {
				a.other += o * ph.elapsed.Seconds()
			} else {
				a.otherOK = false
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			a.cpu += cpu1 - cpu0
			a.cpuOK = a.cpuOK && errors.Join(err0, err1) == nil
			a.hist.merge(&ph.hist)
			a.errors += ph.errors
			a.elapsed += ph.elapsed
			if ph.lastErr != nil {
				a.lastErr = ph.lastErr
			}
		}
	}
	var cells []Cell
	for _, a := range runs {
		if err := a.c.srv.alive(); err != nil {
			return nil, err
		}
		cells = append(cells, a.result(workload, clients))
	}
	for _, c := range cells {
		if c.Requests == 0 {
			return nil, fmt.Errorf("bench: %s %s with %d clients: no request succeeded: %s", c.System, workload, clients, c.LastError)
		}
	}
	return cells, nil
}

// result summarises an attempt's rounds as one Cell.
func (a *attempt) result(workload string, clients int) Cell {
	h := &a.hist
	res := Cell{
		Workload: workload, Clients: clients, Conns: len(a.cl.conns), System: a.c.srv.system,
		Requests: h.count(), Errors: a.errors, Conflicts: a.cl.conflicts.Load(),
		Seconds:   a.elapsed.Seconds(),
		LoadStart: a.load0, LoadEnd: loadAvg(),
		ServerCPUPerRequestUs: -1, OtherCores: -1,
	}
	if a.lastErr != nil {
		res.LastError = a.lastErr.Error()
	}
	if h.count() == 0 || a.elapsed <= 0 {
		return res
	}
	res.Throughput = float64(h.count()) / a.elapsed.Seconds()
	res.MeanMs, res.MaxMs = ms(h.mean()), ms(h.max())
	res.P50Ms, res.P90Ms = ms(h.quantile(0.50)), ms(h.quantile(0.90))
	res.P99Ms, res.P999Ms = ms(h.quantile(0.99)), ms(h.quantile(0.999))
	if a.cpuOK {
		res.ServerCPUPerRequestUs = float64(a.cpu.Microseconds()) / float64(h.count())
	}
	if a.otherOK {
		res.OtherCores = a.other / a.elapsed.Seconds()
	}
	res.ServerRSSBytes, _ = a.c.srv.rssBytes()
	return res
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
