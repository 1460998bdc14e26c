package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// FillConfig says what `rhizome bench fill` measures: the memory and write
// rate of a store as it fills with Kubernetes-sized objects (issue 10). Each
// system in turn, alone on the machine, gets Objects pod-shaped JSON objects
// written once (fill), then once more with a kubelet's status (update), then
// sits idle; then it is restarted on the same data and timed until it serves
// the last object again.
type FillConfig struct {
	// Objects is how many pods are written; the fill writes each once.
	Objects int
	// Updates is how many status updates each pod gets in the update phase
	// (issue 12's storage cost: 100).
	Updates int
	// Clients write concurrently; they share Conns gRPC connections.
	Clients, Conns int
	// Idle is how long the store sits without requests after the updates
	// before its resident memory is read again.
	Idle time.Duration
	// Restart times a restart on the same data after the idle period.
	Restart bool
	// SampleEvery is how often the server's resident memory is sampled.
	SampleEvery time.Duration
	// RequestTimeout fails a write that takes longer.
	RequestTimeout time.Duration

	// RhizomeBin, EtcdBin, WorkDir and StartTimeout are as in Config.
	RhizomeBin, EtcdBin, WorkDir string
	StartTimeout                 time.Duration

	// Progress receives setup steps and a line every ProgressEvery while a
	// phase runs; nil discards them.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// DefaultFillConfig is issue 10's run: 50,000 pods, 16 clients, 20 s idle.
func DefaultFillConfig() FillConfig {
	return FillConfig{
		Objects: 50000, Updates: 1, Clients: 16, Conns: 4,
		Idle: 20 * time.Second, Restart: true,
		SampleEvery: 500 * time.Millisecond, RequestTimeout: 10 * time.Second,
		StartTimeout: 120 * time.Second, ProgressEvery: 5 * time.Second,
	}
}

// QuickFillConfig is a short run that proves the benchmark works.
func QuickFillConfig() FillConfig {
	c := DefaultFillConfig()
	c.Objects, c.Idle, c.SampleEvery, c.ProgressEvery = 2000, 2*time.Second, 100*time.Millisecond, 2*time.Second
	return c
}

// Validate reports the first problem with the configuration.
func (c FillConfig) Validate() error {
	switch {
	case c.Objects < 100:
		return errors.New("bench: fill config: Objects < 100 (each tenth of a phase must hold writes)")
	case c.Updates < 1:
		return errors.New("bench: fill config: Updates < 1")
	case c.Clients < 1 || c.Conns < 1:
		return errors.New("bench: fill config: Clients and Conns must be >= 1")
	case c.Idle < 0:
		return errors.New("bench: fill config: Idle < 0")
	case c.SampleEvery <= 0 || c.RequestTimeout <= 0 || c.StartTimeout <= 0 || c.ProgressEvery <= 0:
		return errors.New("bench: fill config: SampleEvery, RequestTimeout, StartTimeout and ProgressEvery must be positive")
	}
	return nil
}

// The phases of a fill run, in order.
const (
	phaseFill, phaseUpdate, phaseIdle, phaseRestart = "fill", "update", "idle", "restart"
)

// RunFill measures both systems, one after the other, and returns the
// report. It fails when a server does not start or dies; write errors are
// counted in the report.
func RunFill(ctx context.Context, cfg FillConfig) (*FillReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := progressOrDiscard(cfg.Progress)
	rep := &FillReport{Started: time.Now().UTC().Format(time.RFC3339), Host: newHost(), Config: cfg.report()}
	work, bins, cleanup, err := prepareRun(ctx, cfg.WorkDir, "rhizome-bench-fill-", cfg.RhizomeBin, cfg.EtcdBin, progress, &rep.Host)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	fmt.Fprintf(progress, "bench: encoding %d pods in both forms\n", cfg.Objects)
	pods, err := newPodSet(cfg.Objects)
	if err != nil {
		return nil, err
	}
	for _, system := range []string{SystemRhizome, SystemEtcd} {
		start, bin := startRhizome, bins.rhizome
		if system == SystemEtcd {
			start, bin = startEtcd, bins.etcd
		}
		res, err := fillSystem(ctx, cfg, pods, system, filepath.Join(work, system), func(dir string) (*server, error) {
			return start(ctx, bin, dir, cfg.StartTimeout)
		})
		if err != nil {
			return nil, err
		}
		rep.Systems = append(rep.Systems, *res)
	}
	rep.Host.LoadAfter = loadAvg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.judge()
	return rep, nil
}

// podSet holds every pod's key and both values, encoded once so that both
// systems get the same bytes and the clients spend no CPU encoding.
type podSet struct {
	keys             []string
	pending, running [][]byte
}

func newPodSet(n int) (*podSet, error) {
	p := &podSet{keys: make([]string, n), pending: make([][]byte, n), running: make([][]byte, n)}
	for i := range n {
		var err1, err2 error
		p.keys[i] = podKey(i)
		p.pending[i], err1 = podObject(i, false)
		p.running[i], err2 = podObject(i, true)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// fill is write i of the fill phase: pod i, pending.
func (p *podSet) fill(i int) (string, []byte) { return p.keys[i], p.pending[i] }

// update is write i of the update phase: pass i/n over the n pods, each
// pass a kubelet's status with the container's restart count at the pass.
func (p *podSet) update(i int) (string, []byte) {
	n := len(p.keys)
	pass, k := i/n, i%n
	if pass == 0 {
		return p.keys[k], p.running[k]
	}
	return p.keys[k], bytes.Replace(p.running[k], []byte(`"restartCount":0`), fmt.Appendf(nil, `"restartCount":%d`, pass), 1)
}

// lastValue is the value the update phase leaves pod i with.
func (p *podSet) lastValue(i, updates int) []byte {
	_, v := p.update((updates-1)*len(p.keys) + i)
	return v
}

// fillSystem runs every phase on one system, started by start in dir.
func fillSystem(ctx context.Context, cfg FillConfig, pods *podSet, system, dir string, start func(dir string) (*server, error)) (*FillResult, error) {
	progress := progressOrDiscard(cfg.Progress)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	srv, err := start(dir)
	if err != nil {
		return nil, err
	}
	defer func() { srv.stop() }()
	fmt.Fprintf(progress, "bench: %s answering on %s (data in %s)\n", system, srv.endpoint, dir)
	res := &FillResult{System: system}
	smp := startSampler(srv, cfg.SampleEvery)
	for _, ph := range []struct {
		name   string
		writes int
		write  func(i int) (string, []byte)
		rss    *int64
	}{{phaseFill, cfg.Objects, pods.fill, &res.RSSAfterFill}, {phaseUpdate, cfg.Objects * cfg.Updates, pods.update, &res.RSSAfterUpdate}} {
		smp.setPhase(ph.name)
		p, err := writePhase(ctx, cfg, srv, ph.name, ph.writes, ph.write, &smp.written)
		if err != nil {
			smp.stop()
			return nil, err
		}
		res.Phases = append(res.Phases, *p)
		*ph.rss, _ = srv.rssBytes()
		fmt.Fprintf(progress, "bench: %s %s: %d writes in %.1fs (%.0f/s, last tenth %.2fx the first), %d errors; rss %s\n",
			system, ph.name, p.Writes, p.Seconds, p.Throughput, p.Decay, p.Errors, fmtBytes(*ph.rss))
	}
	smp.setPhase(phaseIdle)
	select {
	case <-ctx.Done():
		smp.stop()
		return nil, ctx.Err()
	case <-time.After(cfg.Idle):
	}
	res.RSSAfterIdle, _ = srv.rssBytes()
	res.Samples = smp.stop()
	if err := srv.alive(); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "bench: %s after %v idle: rss %s\n", system, cfg.Idle, fmtBytes(res.RSSAfterIdle))
	if cfg.Restart {
		srv.stop()
		if srv, err = restartTimed(ctx, start, dir, pods, cfg.Updates, res); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "bench: %s restarted in %.2fs; rss %s\n", system, res.RestartSeconds, fmtBytes(res.RSSAfterRestart))
	}
	res.DiskBytes = dirBytes(filepath.Join(dir, "data"))
	return res, nil
}

// restartTimed starts the server again on dir and times it until it serves
// the last pod's updated value; it records the time and the resident memory.
func restartTimed(ctx context.Context, start func(dir string) (*server, error), dir string, pods *podSet, updates int, res *FillResult) (*server, error) {
	t0 := time.Now()
	srv, err := start(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: restart: %w", err)
	}
	cli, err := newClient(srv.endpoint)
	if err != nil {
		srv.stop()
		return nil, err
	}
	defer cli.Close()
	last := len(pods.keys) - 1
	want := pods.lastValue(last, updates)
	for {
		resp, err := cli.Get(ctx, pods.keys[last])
		if err == nil && len(resp.Kvs) == 1 && bytes.Equal(resp.Kvs[0].Value, want) {
			break
		}
		if ctx.Err() != nil || time.Since(t0) > time.Minute {
			srv.stop()
			return nil, fmt.Errorf("bench: restart: the last pod is not served as written (%v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.RestartSeconds = time.Since(t0).Seconds()
	res.RSSAfterRestart, _ = srv.rssBytes()
	return srv, nil
}

// writePhase makes writes 0..n-1 (write says each one's key and value) with
// cfg.Clients clients taking the next in turn, and times each tenth of the
// phase. written counts the writes done, for the sampler.
func writePhase(ctx context.Context, cfg FillConfig, srv *server, name string, n int, write func(i int) (string, []byte), written *atomic.Int64) (*FillPhase, error) {
	conns := make([]*clientv3.Client, cfg.Conns)
	for i := range conns {
		cli, err := newClient(srv.endpoint)
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		conns[i] = cli
	}
	var next, done, errs atomic.Int64
	var lastErr atomic.Pointer[error]
	tenths := make([]time.Time, 11) // tenths[k]: when k tenths were done
	var tenthsMu sync.Mutex
	hists := make([]histogram, cfg.Clients)
	cpu0, cpuErr0 := srv.cpuTime()
	start := time.Now()
	tenths[0] = start
	stopProgress := tickProgress(progressOrDiscard(cfg.Progress), cfg.ProgressEvery, func(el time.Duration) string {
		d := done.Load()
		return fmt.Sprintf("bench: %s %s %d/%d (%.0f/s)", srv.system, name, d, n, float64(d)/el.Seconds())
	})
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Go(func() {
			cli := conns[c%len(conns)]
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				key, value := write(i)
				rctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
				t := time.Now()
				_, err := cli.Put(rctx, key, string(value))
				cancel()
				if err != nil {
					errs.Add(1)
					lastErr.Store(&err)
				} else {
					hists[c].record(time.Since(t))
				}
				written.Add(1)
				if k, ok := tenthEndingAt(int(done.Add(1)), n); ok {
					tenthsMu.Lock()
					tenths[k] = time.Now()
					tenthsMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	stopProgress()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := srv.alive(); err != nil {
		return nil, err
	}
	cpu1, cpuErr1 := srv.cpuTime()
	p := &FillPhase{Name: name, Writes: int64(n), Errors: errs.Load(), Seconds: elapsed.Seconds(), CPUPerWriteUs: -1}
	if e := lastErr.Load(); e != nil {
		p.LastError = (*e).Error()
	}
	var h histogram
	for i := range hists {
		h.merge(&hists[i])
	}
	p.Throughput = float64(n) / elapsed.Seconds()
	p.P50Ms, p.P99Ms = ms(h.quantile(0.50)), ms(h.quantile(0.99))
	if errors.Join(cpuErr0, cpuErr1) == nil {
		p.CPUPerWriteUs = float64((cpu1 - cpu0).Microseconds()) / float64(n)
	}
	p.TenthRates = tenthRates(tenths, n)
	if k := len(p.TenthRates); k == 10 && p.TenthRates[0] > 0 {
		p.Decay = p.TenthRates[9] / p.TenthRates[0]
	}
	return p, nil
}

// tenthEndingAt reports which tenth k (1..10) of n writes ends with write
// number d: the k for which d == k*n/10.
func tenthEndingAt(d, n int) (k int, ok bool) {
	for k = max(1, d*10/n); k <= min(10, d*10/n+1); k++ {
		if k*n/10 == d {
			return k, true
		}
	}
	return 0, false
}

// tenthRates turns the times at which each tenth of n writes was done into
// writes per second per tenth; a tenth whose end was not seen ends the list.
func tenthRates(tenths []time.Time, n int) []float64 {
	var rates []float64
	for k := 1; k < len(tenths); k++ {
		if tenths[k].IsZero() || tenths[k-1].IsZero() {
			break
		}
		writes := float64(k*n/10 - (k-1)*n/10)
		rates = append(rates, writes/tenths[k].Sub(tenths[k-1]).Seconds())
	}
	return rates
}

// sampler reads a server's resident memory every so often while it runs.
type sampler struct {
	written atomic.Int64
	phase   atomic.Pointer[string]
	quit    chan struct{}
	done    chan []RSSSample
}

func startSampler(srv *server, every time.Duration) *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan []RSSSample, 1)}
	s.setPhase(phaseFill)
	go func() {
		start := time.Now()
		var out []RSSSample
		take := func() {
			if rss, err := srv.rssBytes(); err == nil {
				out = append(out, RSSSample{Seconds: time.Since(start).Seconds(), Phase: *s.phase.Load(), Written: s.written.Load(), RSSBytes: rss})
			}
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			take()
			select {
			case <-s.quit:
				take()
				s.done <- out
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) setPhase(p string) { s.phase.Store(&p) }

// stop ends the sampling and returns the samples.
func (s *sampler) stop() []RSSSample {
	close(s.quit)
	return <-s.done
}

// dirBytes is the disk space the files under dir take (0 when it cannot be
// read): allocated blocks, not apparent sizes, since both stores preallocate
// files they have not filled.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += allocatedBytes(info)
		}
		return nil
	})
	return n
}
