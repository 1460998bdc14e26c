package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/crdt/kube"
	"github.com/rhizome-kv/rhizome/internal/netdelay"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// The workloads of the sites benchmark, beside Put and the two Range kinds.
const (
	// WorkloadEdit rewrites one of a few pod-shaped objects with a
	// status-sized change (editBytes of one status field), as a kubelet's
	// status update does: what crosses the links per change is set against
	// the changed field's size.
	WorkloadEdit = "edit"
	editBytes    = 100
	editObjects  = 64 // per site
)

// SitesWorkloads lists the sites benchmark's workloads in the order a run
// measures them.
func SitesWorkloads() []string {
	return []string{WorkloadPut, WorkloadPutRate, WorkloadRangeSerializable, WorkloadRangeLinearizable, WorkloadEdit}
}

// SitesConfig says what RunSites measures: N Rhizome sites beside an
// N-member etcd cluster, inter-site traffic through the delay layer, clients
// at each site talking to their own site's server.
type SitesConfig struct {
	// Sites is how many Rhizome sites and etcd members run.
	Sites int
	// Delays are the one-way delays of every inter-site link the run sweeps
	// over; each varies by Jitter (a fraction of it) either way.
	Delays []time.Duration
	Jitter float64
	// Workloads are measured at every delay (SitesWorkloads names them).
	Workloads []string
	// Duration is how long each workload runs at every site at once, per
	// delay.
	Duration time.Duration
	// Clients per site, each with its own connection to its site's server.
	Clients int
	// Rate is the offered load of the fixed-rate Put (WorkloadPutRate) and
	// of the cut, in requests per second at every site: requests start at
	// their scheduled times whatever the latency (an open loop), spread
	// round-robin over the site's Clients connections, and their latency
	// runs from the scheduled start. It should be a rate etcd sustains at
	// every delay, so both systems serve the same load. Arrivals is
	// ArrivalsPoisson or ArrivalsEven; MaxOutstanding bounds a site's
	// requests in flight (a request due beyond it is not started and
	// counts as failed); Clock times the schedule.
	Rate           float64
	Arrivals       string
	MaxOutstanding int
	Clock          clockwork.Clock
	// KeySize and ValueSize are in bytes, as in Config; RangeKeys are
	// preloaded at every site for the Range workloads.
	KeySize, ValueSize, RangeKeys int
	// Seed makes the values and the jitter reproducible.
	Seed uint64
	// RhizomeBin, EtcdBin and WorkDir are as in Config.
	RhizomeBin, EtcdBin, WorkDir string
	// StartTimeout bounds the start of each server (etcd: until it has a
	// leader).
	StartTimeout time.Duration
	// CutDuration, when positive, adds a phase after the sweep, at
	// CutDelay: Put at Rate at every site (WorkloadPutRate, so its p99 and
	// the sweep's compare at the same load) for CutLead, then the last
	// site cut off (netdelay.CutStall: open connections stall, new ones
	// are refused, datagrams dropped) for CutDuration under the same load;
	// then the load stops, its requests answer or time out, the links heal
	// and the run times until all sites hold the same data. Success and
	// latency are recorded per Bucket, by scheduled start.
	CutDuration, CutDelay, CutLead, Bucket time.Duration
	// ConvergePending, when not empty, adds a sweep after the cut, at
	// CutDelay: per entry n, the last site is cut off while every site
	// that takes writes makes n Puts of new keys (as fast as Clients
	// clients can), then the links heal and the run times until every
	// site holds them all (ConvergePoint).
	ConvergePending []int
	// RequestTimeout bounds each request, so a site that cannot commit
	// during a cut counts failures rather than hanging.
	RequestTimeout time.Duration
	// ConvergeTimeout bounds the wait for identical data after the heal.
	ConvergeTimeout time.Duration
	// KubeDelays, when not empty, add the Kubernetes part after the cut:
	// one kube-apiserver per site (Rhizome: each site's own store; etcd:
	// each member's own apiserver against its local member), and the
	// create/get/list/update/delete mix of Pods and ConfigMaps
	// (kube_workload.go) by KubeClients clients at every site at once, for
	// KubeDuration after KubeWarmup, at each of these delays. KubePool is
	// how many Pods and how many ConfigMaps each client keeps.
	KubeDelays               []time.Duration
	KubeDuration, KubeWarmup time.Duration
	KubeClients, KubePool    int
	// Notes are printed at the top of the report (what the machine was
	// doing meanwhile, say).
	Notes []string
	// ProgressEvery is how often the load prints its progress.
	ProgressEvery time.Duration
	// Progress receives setup steps and progress lines; nil discards them.
	Progress io.Writer
}

// DefaultSitesConfig is issue 12's full run: three sites, the delay swept
// over 0 to 100 ms, a 30 s cut at 25 ms.
func DefaultSitesConfig() SitesConfig {
	return SitesConfig{
		Sites:           3,
		Delays:          []time.Duration{0, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		Jitter:          0.1,
		Workloads:       SitesWorkloads(),
		Duration:        10 * time.Second,
		Clients:         8,
		Rate:            50,
		Arrivals:        ArrivalsPoisson,
		MaxOutstanding:  1000,
		Clock:           clockwork.NewRealClock(),
		KeySize:         8,
		ValueSize:       256,
		RangeKeys:       1000,
		Seed:            1,
		StartTimeout:    time.Minute,
		CutDuration:     30 * time.Second,
		CutDelay:        25 * time.Millisecond,
		CutLead:         5 * time.Second,
		Bucket:          500 * time.Millisecond,
		RequestTimeout:  2 * time.Second,
		ConvergeTimeout: time.Minute,
		ConvergePending: []int{1000, 3000, 10000},
		KubeDelays:      []time.Duration{0, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		KubeDuration:    10 * time.Second,
		KubeWarmup:      2 * time.Second,
		KubeClients:     8,
		KubePool:        10,
		ProgressEvery:   time.Second,
	}
}

// QuickSitesConfig is a run of a few minutes that proves the benchmark
// works: two delays, short phases, a short cut.
func QuickSitesConfig() SitesConfig {
	c := DefaultSitesConfig()
	c.Delays = []time.Duration{0, 25 * time.Millisecond}
	c.Duration, c.Clients, c.Rate = 2*time.Second, 4, 25
	c.CutDuration, c.CutLead, c.Bucket = 4*time.Second, 2*time.Second, 250*time.Millisecond
	c.ConvergePending = []int{300}
	c.KubeDelays, c.KubeDuration, c.KubeWarmup, c.KubeClients, c.KubePool = []time.Duration{0, 25 * time.Millisecond}, 2*time.Second, time.Second, 2, 3
	return c
}

// Validate reports the first problem with the configuration.
func (c SitesConfig) Validate() error {
	switch {
	case c.Sites < 2 || c.Sites > 9:
		return fmt.Errorf("bench: sites: Sites %d outside 2..9", c.Sites)
	case len(c.Delays) == 0:
		return errors.New("bench: sites: no Delays")
	case c.Jitter < 0 || c.Jitter >= 1:
		return errors.New("bench: sites: Jitter must be in [0, 1)")
	case c.Duration <= 0 || c.StartTimeout <= 0 || c.ProgressEvery <= 0 || c.RequestTimeout <= 0 || c.ConvergeTimeout <= 0:
		return errors.New("bench: sites: Duration, StartTimeout, RequestTimeout, ConvergeTimeout and ProgressEvery must be positive")
	case c.CutDuration < 0 || c.CutDelay < 0 || c.CutLead < 0:
		return errors.New("bench: sites: CutDuration, CutDelay and CutLead must not be negative")
	case c.CutDuration > 0 && c.Bucket <= 0:
		return errors.New("bench: sites: Bucket must be positive with a cut")
	case c.Clients < 1:
		return errors.New("bench: sites: Clients < 1")
	case !(c.Rate > 0 && c.Rate <= 1e6) || c.MaxOutstanding < 1 || c.Clock == nil:
		return errors.New("bench: sites: Rate must be in (0, 1e6] per second, MaxOutstanding at least 1, and a Clock set")
	case c.Arrivals != ArrivalsPoisson && c.Arrivals != ArrivalsEven:
		return fmt.Errorf("bench: sites: Arrivals %q: want %s or %s", c.Arrivals, ArrivalsPoisson, ArrivalsEven)
	case slices.ContainsFunc(c.ConvergePending, func(n int) bool { return n < 1 }):
		return errors.New("bench: sites: every ConvergePending entry must be at least 1")
	case c.KeySize < 8 || c.ValueSize < 1 || c.RangeKeys < 1:
		return errors.New("bench: sites: KeySize >= 8, ValueSize >= 1 and RangeKeys >= 1 required")
	}
	if len(c.KubeDelays) > 0 && (c.KubeDuration <= 0 || c.KubeWarmup < 0 || c.KubeClients < 1 || c.KubePool < 1) {
		return errors.New("bench: sites: the Kubernetes part needs a positive KubeDuration, KubeClients and KubePool, and KubeWarmup >= 0")
	}
	for _, d := range slices.Concat(c.Delays, c.KubeDelays) {
		if d < 0 {
			return fmt.Errorf("bench: sites: negative delay %v", d)
		}
	}
	for _, w := range c.Workloads {
		if !slices.Contains(SitesWorkloads(), w) {
			return fmt.Errorf("bench: sites: unknown workload %q (want %s)", w, strings.Join(SitesWorkloads(), ", "))
		}
	}
	return nil
}

// shape is the delay layer's shape for one-way delay d.
func (c SitesConfig) shape(d time.Duration) netdelay.Shape {
	return netdelay.Shape{Delay: d, Jitter: time.Duration(float64(d) * c.Jitter)}
}

// kv is the KV benchmark configuration the sites' workloads take their
// key and value shapes from.
func (c SitesConfig) kv() Config {
	kv := DefaultConfig()
	kv.KeySize, kv.ValueSize, kv.Seed, kv.RangeKeys = c.KeySize, c.ValueSize, c.Seed, c.RangeKeys
	return kv
}

// SiteResult is one site's load in one phase on one system.
type SiteResult struct {
	System string `json:"system"`
	Site   int    `json:"site"`
	// Phase is "load", or "cut" while the last site was cut off.
	Phase    string  `json:"phase"`
	Workload string  `json:"workload"`
	DelayMs  float64 `json:"one_way_delay_ms"`
	// SuccessRate is the share of requests that succeeded.
	SuccessRate float64 `json:"success_rate"`
	Requests    int64   `json:"requests"` // that succeeded
	Errors      int64   `json:"errors"`
	// Throughput is the rate of requests that succeeded. At a fixed rate
	// (WorkloadPutRate): OfferedRate is the rate they were due at and
	// Throughput is over the same schedule; NotStarted is how many of them
	// (counted in Errors) the cap on outstanding requests held back;
	// StartLagP99Ms is the p99 of how late the generator sent a request
	// after its intended start (its own delay on a busy machine, part of
	// every latency).
	Throughput    float64 `json:"throughput_rps"`
	OfferedRate   float64 `json:"offered_rps,omitempty"`
	NotStarted    int64   `json:"not_started,omitempty"`
	StartLagP99Ms float64 `json:"start_lag_p99_ms,omitempty"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	LastError     string  `json:"last_error,omitempty"`
}

// LinkUse is what crossed the inter-site links during one write workload.
type LinkUse struct {
	System   string  `json:"system"`
	Workload string  `json:"workload"`
	DelayMs  float64 `json:"one_way_delay_ms"`
	Changes  int64   `json:"changes"`
	Bytes    int64   `json:"bytes"`
	// PerChange is Bytes/Changes; ChangedBytes is the size of what each
	// change changed (the value for Put, the edited field for edit).
	PerChange    float64 `json:"bytes_per_change"`
	ChangedBytes int     `json:"changed_bytes"`
	// Rhizome only, summed over the sites, from their metrics: the bytes of
	// peer messages sent (rhizome_peer_sent_bytes_total: the messages
	// themselves as sent, compressed, without gRPC's framing; what the links carried beyond
	// them is framing, HTTP/2 control frames and gossip), and the remote
	// changes merged (rhizome_merges_applied_total; a change made at one of
	// n sites is merged n-1 times).
	PeerMessageBytes int64 `json:"peer_message_bytes,omitempty"`
	Merges           int64 `json:"merges,omitempty"`
}

// Bucket is one site's requests in one interval of the cut timeline.
type Bucket struct {
	System    string  `json:"system"`
	Site      int     `json:"site"`
	Seconds   float64 `json:"seconds"` // the interval's start, from the load's start
	Succeeded int64   `json:"succeeded"`
	Failed    int64   `json:"failed"`
	P99Ms     float64 `json:"p99_ms"`
}

// SitesReport is what RunSites measured.
type SitesReport struct {
	Started  string    `json:"started"`
	Finished string    `json:"finished"`
	Host     Host      `json:"host"`
	Sites    int       `json:"sites"`
	DelaysMs []float64 `json:"one_way_delays_ms"`
	Jitter   float64   `json:"jitter_fraction"`
	Clients  int       `json:"clients_per_site"`
	// Rate and Arrivals are the fixed-rate load's (SitesConfig).
	Rate      float64      `json:"rate_per_site"`
	Arrivals  string       `json:"arrivals"`
	Seconds   float64      `json:"seconds_per_workload"`
	ValueSize int          `json:"value_size"`
	Results   []SiteResult `json:"results"`
	Links     []LinkUse    `json:"links"`
	// LinkBytes are the bytes that crossed each system's inter-site links
	// during the whole run (setup included), both directions.
	LinkBytes map[string]int64 `json:"link_bytes"`
	// The cut: the last site was cut off from CutStart to CutEnd (seconds
	// from the timeline's start) at CutDelayMs; Timeline holds every
	// site's buckets; ConvergeSeconds, per system, is how long after the
	// heal until every site held the same keys and values, and Pending how
	// many writes the sites made during the cut.
	CutDelayMs      float64            `json:"cut_one_way_delay_ms,omitempty"`
	CutStart        float64            `json:"cut_start_seconds,omitempty"`
	CutEnd          float64            `json:"cut_end_seconds,omitempty"`
	Timeline        []Bucket           `json:"timeline,omitempty"`
	ConvergeSeconds map[string]float64 `json:"converge_seconds,omitempty"`
	Pending         map[string]int64   `json:"pending_changes,omitempty"`
	// Convergence is the sweep after the cut (SitesConfig.ConvergePending),
	// at ConvergeDelayMs.
	Convergence     []ConvergePoint `json:"convergence,omitempty"`
	ConvergeDelayMs float64         `json:"converge_one_way_delay_ms,omitempty"`
	// Kube is the Kubernetes part: per system, delay, site and verb.
	Kube        []KubeSiteResult `json:"kube,omitempty"`
	KubeClients int              `json:"kube_clients_per_site,omitempty"`
	KubeSeconds float64          `json:"kube_seconds_per_delay,omitempty"`
	Notes       []string         `json:"notes,omitempty"`
	Targets     []Target         `json:"targets"`
}

// cluster is one system's running servers in their topology.
type cluster struct {
	system  string
	servers []*server
	topo    *topology
	// prepared names the workloads whose data is written (prepareWorkload).
	prepared map[string]bool
	// local are the servers' client addresses inside their namespaces.
	local []string
	// loads counts the write loads run so far (loadSites, loadSitesRate):
	// each stamps its values with its number (sitePut).
	loads int
}

// syncTotals are peer-protocol counters summed over a cluster's sites.
type syncTotals struct {
	sent, merged, duplicates float64
	ok                       bool // every site answered (never for etcd)
}

// syncCounters reads every Rhizome site's peer counters from its /metrics.
func (c *cluster) syncCounters(ctx context.Context) syncTotals {
	if c.system != SystemRhizome {
		return syncTotals{}
	}
	t := syncTotals{ok: true}
	for _, s := range c.servers {
		m, err := s.metrics(ctx)
		if err != nil {
			return syncTotals{}
		}
		t.sent += m.Sum("rhizome_peer_sent_bytes_total", nil)
		t.merged += m.Sum("rhizome_merges_applied_total", nil)
		t.duplicates += m.Sum("rhizome_peer_duplicate_changes_total", nil)
	}
	return t
}

func (c *cluster) close() error {
	for _, s := range c.servers {
		s.stop()
	}
	if c.topo == nil {
		return nil
	}
	return c.topo.close()
}

// RunSites starts cfg.Sites Rhizome sites and an etcd cluster of as many
// members, each site (and member) in its own network namespace joined by
// the delay layer (topology), and measures one system after the other:
// every workload at every delay, clients at every site at once; then the
// cut. Every inter-site byte — Rhizome's peer gRPC and memberlist TCP and
// UDP, etcd's peer traffic — crosses a delayed link of its own directed
// pair of sites. Needs Linux and root.
func RunSites(ctx context.Context, cfg SitesConfig) (*SitesReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := progressOrDiscard(cfg.Progress)
	rep := &SitesReport{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host:    newHost(),
		Sites:   cfg.Sites, Jitter: cfg.Jitter, Clients: cfg.Clients, Rate: cfg.Rate, Arrivals: cfg.Arrivals, Seconds: cfg.Duration.Seconds(), ValueSize: cfg.ValueSize,
		LinkBytes: map[string]int64{}, ConvergeSeconds: map[string]float64{}, Pending: map[string]int64{},
		Notes: cfg.Notes,
	}
	if len(cfg.KubeDelays) > 0 {
		rep.KubeClients, rep.KubeSeconds = cfg.KubeClients, cfg.KubeDuration.Seconds()
	}
	for _, d := range cfg.Delays {
		rep.DelaysMs = append(rep.DelaysMs, ms(d))
	}
	work, bins, cleanup, err := prepareRun(ctx, cfg.WorkDir, "rhizome-bench-sites-", cfg.RhizomeBin, cfg.EtcdBin, progress, &rep.Host)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	for _, system := range []string{SystemRhizome, SystemEtcd} {
		fmt.Fprintf(progress, "sites bench: starting %d %s servers\n", cfg.Sites, system)
		start := startRhizomeSites
		if system == SystemEtcd {
			start = startEtcdMembers
		}
		c := &cluster{system: system}
		err := start(ctx, cfg, bins, filepath.Join(work, system), c)
		if err == nil {
			err = runPhases(ctx, cfg, c, filepath.Join(work, system), rep, progress)
		}
		if err := errors.Join(err, c.close()); err != nil {
			return nil, err
		}
	}
	rep.Host.LoadAfter = loadAvg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.judge()
	return rep, nil
}

// runPhases runs the sweep, then (if configured) the cut and the heal, on
// one system's running cluster, and adds what they measured to rep.
func runPhases(ctx context.Context, cfg SitesConfig, c *cluster, dir string, rep *SitesReport, progress io.Writer) error {
	for _, delay := range cfg.Delays {
		if err := c.topo.setShape(cfg.shape(delay)); err != nil {
			return err
		}
		for _, w := range cfg.Workloads {
			if err := runWorkload(ctx, cfg, c, rep, w, delay, progress); err != nil {
				return err
			}
		}
	}
	if cfg.CutDuration > 0 {
		if err := c.topo.setShape(cfg.shape(cfg.CutDelay)); err != nil {
			return err
		}
		if err := runCut(ctx, cfg, c, rep, progress); err != nil {
			return err
		}
	}
	if len(cfg.ConvergePending) > 0 {
		if err := c.topo.setShape(cfg.shape(cfg.CutDelay)); err != nil {
			return err
		}
		if err := runConvergeSweep(ctx, cfg, c, rep, progress); err != nil {
			return err
		}
	}
	rep.LinkBytes[c.system] = c.topo.bytes()
	if len(cfg.KubeDelays) > 0 {
		res, err := runKubeSites(ctx, cfg, c, filepath.Join(dir, "kube"), progress)
		if err != nil {
			return err
		}
		rep.Kube = append(rep.Kube, res...)
	}
	return nil
}

// runWorkload measures workload w at one delay at every site at once. A
// write workload then waits until every site holds the same data, and the
// bytes that crossed the links until then are charged to its changes.
func runWorkload(ctx context.Context, cfg SitesConfig, c *cluster, rep *SitesReport, w string, delay time.Duration, progress io.Writer) error {
	if err := prepareWorkload(ctx, cfg, c, w); err != nil {
		return err
	}
	bytes0 := c.topo.bytes()
	sync0 := c.syncCounters(ctx)
	var res []SiteResult
	var err error
	if w == WorkloadPutRate {
		res, err = loadSitesRate(ctx, cfg, c, "load", delay, cfg.Duration, progress, nil)
	} else {
		res, err = loadSites(ctx, cfg, c, "load", w, delay, cfg.Duration, progress, nil)
	}
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, res...)
	if w != WorkloadPut && w != WorkloadPutRate && w != WorkloadEdit {
		return nil
	}
	if _, err := converge(ctx, c, cfg.ConvergeTimeout); err != nil {
		return err
	}
	use := LinkUse{System: c.system, Workload: w, DelayMs: ms(delay), Bytes: c.topo.bytes() - bytes0, ChangedBytes: cfg.ValueSize}
	if w == WorkloadEdit {
		use.ChangedBytes = editBytes
	}
	for _, r := range res {
		use.Changes += r.Requests
	}
	if sync1 := c.syncCounters(ctx); sync0.ok && sync1.ok {
		use.PeerMessageBytes, use.Merges = int64(sync1.sent-sync0.sent), int64(sync1.merged-sync0.merged)
	}
	use.PerChange = ratio(float64(use.Bytes), float64(use.Changes))
	rep.Links = append(rep.Links, use)
	fmt.Fprintf(progress, "sites bench: %s %s at %v: %.0f bytes crossed the links per change of %d bytes\n", c.system, w, delay, use.PerChange, use.ChangedBytes)
	return nil
}

// prepareWorkload writes what a workload reads or edits, at every site, the
// first time it is needed.
func prepareWorkload(ctx context.Context, cfg SitesConfig, c *cluster, w string) error {
	if c.prepared == nil {
		c.prepared = map[string]bool{}
	}
	kind := w
	if w == WorkloadRangeLinearizable {
		kind = WorkloadRangeSerializable // the same keys
	}
	if c.prepared[kind] || (kind != WorkloadRangeSerializable && kind != WorkloadEdit) {
		return nil
	}
	for i, s := range c.servers {
		cli, err := newClient(s.endpoint)
		if err != nil {
			return err
		}
		if kind == WorkloadEdit {
			err = preloadEdits(ctx, cli, i)
		} else {
			err = preloadRange(ctx, []*clientv3.Client{cli}, cfg.kv())
		}
		cli.Close()
		if err != nil {
			return fmt.Errorf("%w (%s site %d)", err, c.system, i)
		}
	}
	c.prepared[kind] = true
	return nil
}

// runCut loads every site at the fixed Rate for CutLead, cuts the last site
// off for CutDuration under the same load, stops the load, heals and times the
// convergence; every site's requests are recorded in buckets throughout.
func runCut(ctx context.Context, cfg SitesConfig, c *cluster, rep *SitesReport, progress io.Writer) error {
	cut := len(c.servers) - 1
	tl := newTimeline(len(c.servers), cfg.Bucket)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.CutLead):
		}
		fmt.Fprintf(progress, "sites bench: %s: cutting site%d off for %v\n", c.system, cut, cfg.CutDuration)
		tl.mark(&rep.CutStart)
		c.topo.cut(cut)
	}()
	_, err := loadSitesRate(ctx, cfg, c, "cut", cfg.CutDelay, cfg.CutLead+cfg.CutDuration, progress, tl)
	tl.mark(&rep.CutEnd)
	c.topo.heal(cut)
	if err != nil {
		return err
	}
	rep.CutDelayMs = ms(cfg.CutDelay)
	window := tl.window(c.system, WorkloadPutRate, rep.CutStart, rep.CutEnd)
	rep.Results = append(rep.Results, window...)
	for _, r := range window {
		rep.Pending[c.system] += r.Requests
	}
	rep.Timeline = append(rep.Timeline, tl.buckets(c.system)...)
	fmt.Fprintf(progress, "sites bench: %s: healed; waiting until every site holds the same data\n", c.system)
	took, err := converge(ctx, c, cfg.ConvergeTimeout)
	if err != nil {
		return err
	}
	rep.ConvergeSeconds[c.system] = took.Seconds()
	return nil
}

// converge polls every site's key count and, once the counts agree, its whole
// keyspace, until all are identical; it returns how long until the poll that
// found them so began (poll).
func converge(ctx context.Context, c *cluster, timeout time.Duration) (time.Duration, error) {
	clis, closeAll, err := c.clients()
	if err != nil {
		return 0, err
	}
	defer closeAll()
	took, err := poll(ctx, 20*time.Millisecond, timeout, func() (bool, error) {
		if agree, err := countsAgree(ctx, clis, "", 0); !agree {
			return false, err
		}
		return sameData(ctx, clis, "")
	})
	if err != nil {
		return 0, fmt.Errorf("bench: %s sites not identical after the heal: %w", c.system, err)
	}
	return took, nil
}

// poll calls check every interval until it reports done, and returns how long
// after poll's call the check that reported done began (its reads found what
// it waited for; a check of a whole keyspace takes a second or more to read,
// which is not the systems' time); after timeout, an error with check's last one.
func poll(ctx context.Context, every, timeout time.Duration, check func() (done bool, err error)) (time.Duration, error) {
	start := time.Now()
	for {
		began := time.Since(start)
		done, err := check()
		if done {
			return began, nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("not within %v (%v)", timeout, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(every):
		}
	}
}

// clients opens a client to every server, and a function that closes them.
func (c *cluster) clients() ([]*clientv3.Client, func(), error) {
	var clis []*clientv3.Client
	closeAll := func() {
		for _, cli := range clis {
			cli.Close()
		}
	}
	for _, s := range c.servers {
		cli, err := newClient(s.endpoint)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clis = append(clis, cli)
	}
	return clis, closeAll, nil
}

// sameData reports whether every client reads the same keys and values
// under prefix (all keys if empty; serializable: each site's own copy). The
// sites are read at once, so a check takes one site's read, not their sum: a
// converge poll's own time is part of what it measures.
func sameData(ctx context.Context, clis []*clientv3.Client, prefix string) (bool, error) {
	key, opt := prefix, clientv3.WithPrefix()
	if prefix == "" {
		key, opt = "\x00", clientv3.WithFromKey()
	}
	held := make([]map[string]string, len(clis))
	errs := make([]error, len(clis))
	var wg sync.WaitGroup
	for i, cli := range clis {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			resp, err := cli.Get(ctx, key, opt, clientv3.WithSerializable())
			if err != nil {
				errs[i] = err
				return
			}
			held[i] = make(map[string]string, len(resp.Kvs))
			for _, kv := range resp.Kvs {
				held[i][string(kv.Key)] = string(kube.Canonical(kv.Value))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	for i := 1; i < len(held); i++ {
		if !maps.Equal(held[0], held[i]) {
			return false, fmt.Errorf("site %d holds %d keys, site 0 %d", i, len(held[i]), len(held[0]))
		}
	}
	return true, nil
}

// sitePorts are the loopback addresses of one site's listeners, each in
// the site's own namespace.
type sitePorts struct{ client, peer, gossip string }

// freeSitePorts picks distinct ports for n sites. They are free in the root
// namespace, and the sites' namespaces hold nothing else.
func freeSitePorts(n int) ([]sitePorts, error) {
	ports := make([]sitePorts, n)
	for i := range ports {
		var errs [3]error
		ports[i].client, errs[0] = testbin.FreePort()
		ports[i].peer, errs[1] = testbin.FreePort()
		ports[i].gossip, errs[2] = testbin.FreePort()
		if err := errors.Join(errs[:]...); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return ports, nil
}

// wire makes c's topology: namespaces, a delayed link for each port in
// tcp(i) of every site, relays between the UDP addresses udp (if any), and
// an undelayed way in to every site's client port.
func wire(cfg SitesConfig, c *cluster, ports []sitePorts, udp []string, tcp func(sitePorts) []string) ([]string, error) {
	var err error
	if c.topo, err = newTopology(cfg.Sites, "rzb"+c.system[:2], cfg.shape(cfg.Delays[0]), cfg.Seed); err != nil {
		return nil, err
	}
	for i, p := range ports {
		for _, addr := range tcp(p) {
			if err := c.topo.linkTCP(i, addr); err != nil {
				return nil, err
			}
		}
	}
	if udp != nil {
		if err := c.topo.linkUDP(udp); err != nil {
			return nil, err
		}
	}
	clients := make([]string, len(ports))
	for i, p := range ports {
		if clients[i], err = c.topo.expose(i, p.client); err != nil {
			return nil, err
		}
		c.local = append(c.local, p.client)
	}
	return clients, nil
}

// startRhizomeSites starts the sites, each in its namespace; peer gRPC and
// gossip (TCP and UDP) cross the delayed links.
func startRhizomeSites(ctx context.Context, cfg SitesConfig, bins binaries, dir string, c *cluster) error {
	ports, err := freeSitePorts(cfg.Sites)
	if err != nil {
		return err
	}
	var gossip []string
	for _, p := range ports {
		gossip = append(gossip, p.gossip)
	}
	clients, err := wire(cfg, c, ports, gossip, func(p sitePorts) []string { return []string{p.peer, p.gossip} })
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	for i, p := range ports {
		args := []string{"serve", "--name", fmt.Sprintf("site%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("site%d", i), "data"),
			"--listen-client-urls", "http://" + p.client,
			"--listen-peer-urls", "http://" + p.peer,
			"--gossip-addr", p.gossip,
			"--gossip-key", base64.StdEncoding.EncodeToString(key),
			"--initial-cluster-token", "rhizome-bench-sites",
			"--gossip-lan",
			"--log-level", "warn"}
		if i > 0 {
			args = append(args, "--join", ports[0].gossip)
		}
		path, argv := c.topo.command(i, bins.rhizome, args)
		s, err := startSite(ctx, SystemRhizome, i, path, argv, dir, clients[i], cfg.StartTimeout, (*server).answers)
		if err != nil {
			return err
		}
		c.servers = append(c.servers, s)
	}
	return nil
}

// startEtcdMembers starts an etcd cluster, one member per namespace, peer
// traffic across the delayed links, and waits until every member sees a
// leader.
func startEtcdMembers(ctx context.Context, cfg SitesConfig, bins binaries, dir string, c *cluster) error {
	ports, err := freeSitePorts(cfg.Sites)
	if err != nil {
		return err
	}
	clients, err := wire(cfg, c, ports, nil, func(p sitePorts) []string { return []string{p.peer} })
	if err != nil {
		return err
	}
	var initial []string
	for i, p := range ports {
		initial = append(initial, fmt.Sprintf("member%d=http://%s", i, p.peer))
	}
	// Every member must be running before any has a leader.
	for i, p := range ports {
		args := []string{"--name", fmt.Sprintf("member%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("member%d", i), "data"),
			"--listen-client-urls", "http://" + p.client, "--advertise-client-urls", "http://" + p.client,
			"--listen-peer-urls", "http://" + p.peer, "--initial-advertise-peer-urls", "http://" + p.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "rhizome-bench-sites", "--log-level", "warn"}
		path, argv := c.topo.command(i, bins.etcd, args)
		s, err := startSite(ctx, SystemEtcd, i, path, argv, dir, clients[i], 0, nil)
		if err != nil {
			return err
		}
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		if err := s.proc.WaitReady(ctx, cfg.StartTimeout, s.hasLeader); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// startSite starts one server (path, argv) in dir/<system><i>, answering
// clients at client; with a ready check it waits for it.
func startSite(ctx context.Context, system string, i int, path string, argv []string, dir, client string, timeout time.Duration, ready func(*server, context.Context) error) (*server, error) {
	own := filepath.Join(dir, fmt.Sprintf("%s%d", system, i))
	if err := os.MkdirAll(own, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	pc := testbin.DefaultProcessConfig()
	pc.Name, pc.Path, pc.Args, pc.Dir = fmt.Sprintf("%s %d", system, i), path, argv, own
	pc.LogPath = filepath.Join(own, system+".log")
	p, err := testbin.StartProcess(pc)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &server{system: system, proc: p, endpoint: client}
	if ready != nil {
		if err := p.WaitReady(ctx, timeout, func(ctx context.Context) error { return ready(s, ctx) }); err != nil {
			s.stop()
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return s, nil
}

// hasLeader is a readiness check for a cluster member: it answers and
// knows a leader.
func (s *server) hasLeader(ctx context.Context) error {
	cli, err := newClient(s.endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(ctx, s.endpoint)
	if err == nil && st.Leader == 0 {
		err = errors.New("no leader yet")
	}
	return err
}

// loadSites runs cfg.Clients clients of workload w against every site of c
// at once for d, printing progress, and returns one result per site for
// phase. With a timeline, every request is also recorded in it.
func loadSites(ctx context.Context, cfg SitesConfig, c *cluster, phase, w string, delay, d time.Duration, progress io.Writer, tl *timeline) ([]SiteResult, error) {
	conns, closeAll, err := siteClients(cfg, c)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	c.loads++
	phases := make([]phaseResult, len(c.servers))
	done := make([]atomic.Int64, len(c.servers))
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range c.servers {
		ops := make([]op, cfg.Clients)
		put, next := newSitePut(cfg, 'p', i, c.loads), new(atomic.Int64)
		for j := range ops {
			inner := siteOp(cfg, w, i, j, conns[i], put, next)
			ops[j] = func(ctx context.Context) error {
				defer done[i].Add(1)
				ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
				defer cancel()
				t0 := time.Now()
				err := inner(ctx)
				tl.record(i, t0, time.Since(t0), err)
				return err
			}
		}
		wg.Go(func() { phases[i] = runPhase(ctx, ops, deadline, nil) })
	}
	stop := sitesProgress(progress, fmt.Sprintf("%s %s %s at %v", c.system, phase, w, delay), cfg.ProgressEvery, done)
	wg.Wait()
	stop()
	return siteResults(ctx, c, phase, w, delay, func(i int, r *SiteResult) {
		ph := &phases[i]
		r.fill(ph.hist.count(), ph.errors, ph.elapsed, &ph.hist, ph.lastErr)
	})
}

// siteClients opens cfg.Clients connections to every site's server, by
// site, and a function that closes them all. On an error none stays open.
func siteClients(cfg SitesConfig, c *cluster) ([][]*clientv3.Client, func(), error) {
	conns := make([][]*clientv3.Client, len(c.servers))
	closeAll := func() {
		for _, site := range conns {
			for _, cli := range site {
				cli.Close()
			}
		}
	}
	for i, s := range c.servers {
		for range cfg.Clients {
			cli, err := newClient(s.endpoint)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			conns[i] = append(conns[i], cli)
		}
	}
	return conns, closeAll, nil
}

// siteResults checks that every server of c is still running and returns
// one result per site for phase, workload w and delay, its figures set by
// fill; then ctx's error, if it ended.
func siteResults(ctx context.Context, c *cluster, phase, w string, delay time.Duration, fill func(site int, r *SiteResult)) ([]SiteResult, error) {
	var res []SiteResult
	for i, s := range c.servers {
		if err := s.alive(); err != nil {
			return nil, err
		}
		r := SiteResult{System: c.system, Site: i, Phase: phase, Workload: w, DelayMs: ms(delay)}
		fill(i, &r)
		res = append(res, r)
	}
	return res, ctx.Err()
}

// fill sets a result's figures from its requests.
func (r *SiteResult) fill(ok, failed int64, elapsed time.Duration, h *histogram, lastErr error) {
	r.Requests, r.Errors = ok, failed
	r.SuccessRate = ratio(float64(ok), float64(ok+failed))
	r.Throughput = ratio(float64(ok), elapsed.Seconds())
	r.P50Ms, r.P99Ms, r.MaxMs = ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.max())
	if lastErr != nil {
		r.LastError = lastErr.Error()
	}
}

// siteOp is client j of site i's request function for workload w. The
// site's clients of the Put workload share put and next, the number of the
// site's next request.
func siteOp(cfg SitesConfig, w string, i, j int, conns []*clientv3.Client, put sitePut, next *atomic.Int64) op {
	switch w {
	case WorkloadEdit:
		return editOp(cfg, i, j, conns[j%len(conns)])
	case WorkloadPut:
		cli := conns[j%len(conns)]
		return func(ctx context.Context) error {
			key, value := put.request(next.Add(1) - 1)
			_, err := cli.Put(ctx, key, value)
			return err
		}
	}
	cl := &cell{workload: w, clients: cfg.Clients, level: i, conns: conns, cfg: cfg.kv()}
	return cl.newOp(j)
}

// editKey is where site i keeps edited object k.
func editKey(site, k int) string { return fmt.Sprintf("/registry/pods/edit-site%d/web-%04d", site, k) }

// editBase is object k's value with the edited field holding msg; editBytes
// of msg is what an edit changes.
func editBase(k int, msg string) (string, error) {
	pod, err := podObject(k, true)
	if err != nil {
		return "", err
	}
	var obj map[string]any
	if err := json.Unmarshal(pod, &obj); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	obj["status"].(map[string]any)["message"] = msg
	out, err := json.Marshal(obj)
	return string(out), err
}

// editBlank is the message an edited object is preloaded with.
var editBlank = strings.Repeat("0", editBytes)

// editValue is base (editBase with editBlank) with msg in place of the
// blank message: editBase(k, msg) without encoding the object again.
func editValue(base, msg string) string {
	return strings.Replace(base, `"message":"`+editBlank+`"`, `"message":"`+msg+`"`, 1)
}

// preloadEdits writes site i's edited objects.
func preloadEdits(ctx context.Context, cli *clientv3.Client, site int) error {
	for k := range editObjects {
		v, err := editBase(k, editBlank)
		if err != nil {
			return err
		}
		if _, err := cli.Put(ctx, editKey(site, k), v); err != nil {
			return fmt.Errorf("bench: preloading edited objects: %w", err)
		}
	}
	return nil
}

// editOp rewrites client j's objects in turn, each time with a fresh
// editBytes-long status message. Clients never share objects. Each object is
// encoded once; an edit swaps the message into its bytes.
func editOp(cfg SitesConfig, site, j int, cli *clientv3.Client) op {
	rng := mathrand.New(mathrand.NewPCG(cfg.Seed, uint64(site<<16|j)))
	var mine []int
	for k := j; k < editObjects; k += cfg.Clients {
		mine = append(mine, k)
	}
	if len(mine) == 0 {
		mine = []int{j % editObjects}
	}
	bases := make([]string, len(mine))
	var baseErr error
	for i, k := range mine {
		var err error
		bases[i], err = editBase(k, editBlank)
		baseErr = errors.Join(baseErr, err)
	}
	next := 0
	msg := make([]byte, editBytes/2)
	return func(ctx context.Context) error {
		if baseErr != nil {
			return baseErr
		}
		i := next % len(mine)
		next++
		for b := range msg {
			msg[b] = byte(rng.Uint32())
		}
		_, err := cli.Put(ctx, editKey(site, mine[i]), editValue(bases[i], hex.EncodeToString(msg)))
		return err
	}
}

// sitesProgress prints every site's requests so far each interval until
// the returned function is called.
func sitesProgress(w io.Writer, system string, every time.Duration, done []atomic.Int64) (stop func()) {
	return tickProgress(w, every, func(el time.Duration) string {
		parts := make([]string, len(done))
		for i := range done {
			parts[i] = fmt.Sprintf("site%d %d", i, done[i].Load())
		}
		return fmt.Sprintf("sites bench: %s %4.0fs  requests: %s  (load1 %.2f)", system, el.Seconds(), strings.Join(parts, ", "), loadAvg())
	})
}
