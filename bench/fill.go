package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
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
	// UpdateFraction is the share of the pods the update phase updates
	// (0 < f <= 1), spread evenly over them: a store of many pods with a
	// sample of them updated many times, when updating all would take hours.
	UpdateFraction float64
	// Compact compacts the store's history after every update pass to the
	// revision the previous pass ended at, as kube-apiserver compacts every
	// few minutes; without it both stores keep every revision and reach
	// their 2 GiB quota after about 700,000 pod updates.
	Compact bool
	// UpdateBudget, when positive, ends the first system's update phase at
	// the end of the pass under way when it runs out; the other systems
	// then make as many passes, so that a run fits the time it has.
	UpdateBudget time.Duration
	// Clients write concurrently; they share Conns gRPC connections.
	Clients, Conns int
	// Idle is how long the store sits without requests after the updates
	// before its resident memory is read again.
	Idle time.Duration
	// Restart times a restart on the same data after the idle period.
	Restart bool
	// Replicated runs Rhizome as one of several sites (startRhizomeSite),
	// paying for field-by-field documents and a change log, instead of
	// alone.
	Replicated bool
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
		Objects: 50000, Updates: 1, UpdateFraction: 1, Compact: true, Clients: 16, Conns: 4,
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
	case !(c.UpdateFraction > 0 && c.UpdateFraction <= 1) || c.updated() < 10:
		return errors.New("bench: fill config: UpdateFraction must be in (0, 1] and leave at least 10 pods updated")
	case c.Clients < 1 || c.Conns < 1:
		return errors.New("bench: fill config: Clients and Conns must be >= 1")
	case c.Idle < 0 || c.UpdateBudget < 0:
		return errors.New("bench: fill config: Idle or UpdateBudget < 0")
	case c.SampleEvery <= 0 || c.RequestTimeout <= 0 || c.StartTimeout <= 0 || c.ProgressEvery <= 0:
		return errors.New("bench: fill config: SampleEvery, RequestTimeout, StartTimeout and ProgressEvery must be positive")
	}
	return nil
}

// updated is how many pods the update phase updates.
func (c FillConfig) updated() int { return int(math.Ceil(float64(c.Objects) * c.UpdateFraction)) }

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
	pods, err := newPodSet(cfg.Objects, cfg.updated())
	if err != nil {
		return nil, err
	}
	for _, system := range []string{SystemRhizome, SystemEtcd} {
		start, bin := startRhizome, bins.rhizome
		if cfg.Replicated {
			start = startRhizomeSite
		}
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
		if made := res.updates(pods.updated); made < cfg.Updates {
			fmt.Fprintf(progress, "bench: the update budget (%v) ran out after %d of %d passes; the other systems make %d\n", cfg.UpdateBudget, made, cfg.Updates, made)
			cfg.Updates, rep.Config.Updates = made, made
		}
		cfg.UpdateBudget = 0
	}
	rep.Host.LoadAfter = loadAvg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.judge()
	return rep, nil
}

// podSet holds every pod's key and both values, encoded once so that both
// systems get the same bytes and the clients spend no CPU encoding. The
// update phase updates `updated` of them, spread evenly.
type podSet struct {
	keys             []string
	pending, running [][]byte
	updated          int
}

func newPodSet(n, updated int) (*podSet, error) {
	p := &podSet{keys: make([]string, n), pending: make([][]byte, n), running: make([][]byte, n), updated: updated}
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

// sampled is the index of the j-th updated pod.
func (p *podSet) sampled(j int) int { return j * len(p.keys) / p.updated }

// update is write i of the update phase: pass i/m over the m updated pods,
// each pass a kubelet's status with the container's restart count at the
// pass.
func (p *podSet) update(i int) (string, []byte) {
	pass, k := i/p.updated, p.sampled(i%p.updated)
	if pass == 0 {
		return p.keys[k], p.running[k]
	}
	return p.keys[k], bytes.Replace(p.running[k], []byte(`"restartCount":0`), fmt.Appendf(nil, `"restartCount":%d`, pass), 1)
}

// lastUpdated is the last updated pod and the value the update phase
// leaves it with.
func (p *podSet) lastUpdated(updates int) (key string, value []byte) {
	return p.update(updates*p.updated - 1)
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
	hc, err := newHistoryCompactor(srv.endpoint, cfg.Compact)
	if err != nil {
		smp.stop()
		return nil, err
	}
	defer hc.close()
	for _, ph := range []struct {
		phaseSpec
		rss *int64
	}{
		{phaseSpec{name: phaseFill, n: cfg.Objects, write: pods.fill}, &res.RSSAfterFill},
		{phaseSpec{name: phaseUpdate, n: pods.updated * cfg.Updates, pass: pods.updated, write: pods.update, atPass: hc.passEnded, budget: cfg.UpdateBudget}, &res.RSSAfterUpdate},
	} {
		smp.setPhase(ph.name)
		if ph.name == phaseUpdate {
			res.DiskAfterFill = dirBytes(filepath.Join(dir, "data"))
			hc.passEnded(ctx) // the fill's end is the first revision kept
		}
		p, err := writePhase(ctx, cfg, srv, ph.phaseSpec, &smp.written)
		if err != nil {
			smp.stop()
			return nil, err
		}
		res.Phases = append(res.Phases, *p)
		*ph.rss, _ = srv.rssBytes()
		fmt.Fprintf(progress, "bench: %s %s: %d writes in %.1fs (%.0f/s, last tenth %.2fx the first), %d errors; rss %s\n",
			system, ph.name, p.Writes, p.Seconds, p.Throughput, p.Decay, p.Errors, fmtBytes(*ph.rss))
	}
	res.Compactions, res.CompactErrors, res.LastCompactError = hc.count, hc.errs, hc.lastErr
	if cfg.Compact {
		fmt.Fprintf(progress, "bench: %s: %d compactions, %d failed %s\n", system, hc.count, hc.errs, hc.lastErr)
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
		if srv, err = restartTimed(ctx, start, dir, pods, res.updates(pods.updated), res); err != nil {
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
	key, want := pods.lastUpdated(updates)
	for {
		resp, err := cli.Get(ctx, key)
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

// phaseSpec is one phase of writes: n writes, write i being write(i). When
// pass > 0, atPass runs, one call at a time beside the writers, each time
// another pass writes are done; when budget > 0 too, the phase stops at the
// end of the pass under way when the budget runs out.
type phaseSpec struct {
	name    string
	n, pass int
	write   func(i int) (string, []byte)
	atPass  func(context.Context)
	budget  time.Duration
}

// markParts is how finely a phase's progress is timed: a mark every
// n/markParts writes, from which the rate per tenth is taken.
const markParts = 1000

// writePhase makes the writes of ph with cfg.Clients clients taking the next
// in turn, and times each tenth of the writes made. written counts the
// writes done, for the sampler.
func writePhase(ctx context.Context, cfg FillConfig, srv *server, ph phaseSpec, written *atomic.Int64) (*FillPhase, error) {
	conns := make([]*clientv3.Client, cfg.Conns)
	for i := range conns {
		cli, err := newClient(srv.endpoint)
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		conns[i] = cli
	}
	n := ph.n
	tk := &taker{limit: n}
	var done, errs atomic.Int64
	var lastErr atomic.Pointer[error]
	marks := make([]time.Time, markParts+1) // marks[j]: when j*n/markParts writes were done
	var marksMu sync.Mutex
	hists := make([]histogram, cfg.Clients)
	cpu0, cpuErr0 := srv.cpuTime()
	start := time.Now()
	marks[0] = start
	stopProgress := tickProgress(progressOrDiscard(cfg.Progress), cfg.ProgressEvery, func(el time.Duration) string {
		d := done.Load()
		return fmt.Sprintf("bench: %s %s %d/%d (%.0f/s)", srv.system, ph.name, d, tk.writes(), float64(d)/el.Seconds())
	})
	if ph.pass > 0 && ph.budget > 0 {
		t := time.AfterFunc(ph.budget, func() { tk.stopAtPass(ph.pass) })
		defer t.Stop()
	}
	passes := make(chan struct{}, n/max(ph.pass, 1)+1)
	passesDone := make(chan struct{})
	go func() {
		defer close(passesDone)
		for range passes {
			ph.atPass(ctx)
		}
	}()
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Go(func() {
			cli := conns[c%len(conns)]
			for i, ok := tk.take(); ok && ctx.Err() == nil; i, ok = tk.take() {
				key, value := ph.write(i)
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
				d := int(done.Add(1))
				if ph.pass > 0 && d%ph.pass == 0 {
					passes <- struct{}{}
				}
				if lo, hi := marksEndingAt(d, n, markParts); lo <= hi {
					now := time.Now()
					marksMu.Lock()
					for j := lo; j <= hi; j++ {
						marks[j] = now
					}
					marksMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(passes)
	<-passesDone
	stopProgress()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := srv.alive(); err != nil {
		return nil, err
	}
	cpu1, cpuErr1 := srv.cpuTime()
	made := tk.writes()
	p := &FillPhase{Name: ph.name, Writes: int64(made), Errors: errs.Load(), Seconds: elapsed.Seconds(), CPUPerWriteUs: -1}
	if e := lastErr.Load(); e != nil {
		p.LastError = (*e).Error()
	}
	var h histogram
	for i := range hists {
		h.merge(&hists[i])
	}
	p.Throughput = float64(made) / elapsed.Seconds()
	p.P50Ms, p.P99Ms = ms(h.quantile(0.50)), ms(h.quantile(0.99))
	if errors.Join(cpuErr0, cpuErr1) == nil {
		p.CPUPerWriteUs = float64((cpu1 - cpu0).Microseconds()) / float64(made)
	}
	p.TenthRates = tenthRates(marks, n, made)
	if k := len(p.TenthRates); k == 10 && p.TenthRates[0] > 0 {
		p.Decay = p.TenthRates[9] / p.TenthRates[0]
	}
	return p, nil
}

// taker hands out the writes of a phase in order, up to a limit that a
// budget can lower to the end of a pass. Safe for concurrent use.
type taker struct {
	mu          sync.Mutex
	next, limit int
}

// take returns the next write, or false when the phase is done.
func (t *taker) take() (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next >= t.limit {
		return 0, false
	}
	t.next++
	return t.next - 1, true
}

// stopAtPass ends the phase with the pass under way (at least one pass).
func (t *taker) stopAtPass(pass int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.limit = min(t.limit, max(pass, (t.next+pass-1)/pass*pass))
}

// writes is how many writes the phase makes, as far as known now.
func (t *taker) writes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limit
}

// marksEndingAt reports the marks j (lo..hi; none when lo > hi) of parts
// marks over n writes that write number d reaches: those with
// j*n/parts == d.
func marksEndingAt(d, n, parts int) (lo, hi int) {
	lo = (d*parts + n - 1) / n
	hi = min(parts, ((d+1)*parts-1)/n)
	return lo, hi
}

// tenthRates turns the marks (marks[j]: when j*n/markParts writes were
// done) into writes per second over each tenth of the made writes, each
// tenth ending at the mark nearest to it; a tenth whose end was not seen
// ends the list.
func tenthRates(marks []time.Time, n, made int) []float64 {
	var rates []float64
	prev := 0
	for k := 1; k <= 10; k++ {
		j := (k*made*markParts + 5*n) / (10 * n)
		if j <= prev || j >= len(marks) || marks[j].IsZero() {
			break
		}
		writes := float64(j*n/markParts - prev*n/markParts)
		rates = append(rates, writes/marks[j].Sub(marks[prev]).Seconds())
		prev = j
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

// historyCompactor compacts a store's history at the end of every update
// pass to the revision the previous pass ended at, so the store keeps one
// pass of history, as kube-apiserver's periodic compaction keeps a few
// minutes. A disabled one does nothing. passEnded is not safe for
// concurrent use.
type historyCompactor struct {
	cli         *clientv3.Client
	kept        int64
	count, errs int
	lastErr     string
}

func newHistoryCompactor(endpoint string, enabled bool) (*historyCompactor, error) {
	if !enabled {
		return &historyCompactor{}, nil
	}
	cli, err := newClient(endpoint)
	if err != nil {
		return nil, err
	}
	return &historyCompactor{cli: cli}, nil
}

// passEnded compacts to the revision the previous call saw, if any, and
// remembers the current one.
func (h *historyCompactor) passEnded(ctx context.Context) {
	if h.cli == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := h.cli.Get(ctx, "compact-probe")
	if err == nil && h.kept > 0 {
		h.count++
		_, err = h.cli.Compact(ctx, h.kept)
	}
	if err != nil {
		h.errs++
		h.lastErr = err.Error()
		return
	}
	h.kept = resp.Header.Revision
}

func (h *historyCompactor) close() {
	if h.cli != nil {
		h.cli.Close()
	}
}
