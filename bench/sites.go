package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/netdelay"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// SitesConfig says what RunSites measures: N Rhizome sites beside an
// N-member etcd cluster, inter-site traffic through the delay layer.
type SitesConfig struct {
	// Sites is how many Rhizome sites and etcd members run.
	Sites int
	// Delay is the one-way delay (with jitter) of every inter-site link.
	Delay netdelay.Shape
	// Duration is how long the Put load runs at every site at once.
	Duration time.Duration
	// Clients per site, each with its own connection to its site's server.
	Clients int
	// KeySize and ValueSize are in bytes, as in Config.
	KeySize, ValueSize int
	// Seed makes the values and the jitter reproducible.
	Seed uint64
	// RhizomeBin, EtcdBin and WorkDir are as in Config.
	RhizomeBin, EtcdBin, WorkDir string
	// StartTimeout bounds the start of each server (etcd: until it has a
	// leader).
	StartTimeout time.Duration
	// CutDuration, when positive, adds a phase after the load: the last
	// site is cut off (netdelay.CutStall: open connections stall, new ones
	// are refused, datagrams dropped) for this long while every site keeps
	// its load; then the link heals and the run waits until all sites hold
	// the same data.
	CutDuration time.Duration
	// RequestTimeout bounds each request, so a site that cannot commit
	// during a cut counts failures rather than hanging.
	RequestTimeout time.Duration
	// ConvergeTimeout bounds the wait for identical data after the heal.
	ConvergeTimeout time.Duration
	// ProgressEvery is how often the load prints its progress.
	ProgressEvery time.Duration
	// Progress receives setup steps and progress lines; nil discards them.
	Progress io.Writer
}

// DefaultSitesConfig is a short run: three sites, 25 ms ±10% one way.
func DefaultSitesConfig() SitesConfig {
	return SitesConfig{
		Sites:           3,
		Delay:           netdelay.Shape{Delay: 25 * time.Millisecond, Jitter: 2500 * time.Microsecond},
		Duration:        10 * time.Second,
		Clients:         8,
		KeySize:         8,
		ValueSize:       256,
		Seed:            1,
		StartTimeout:    time.Minute,
		RequestTimeout:  2 * time.Second,
		ConvergeTimeout: time.Minute,
		ProgressEvery:   time.Second,
	}
}

// Validate reports the first problem with the configuration.
func (c SitesConfig) Validate() error {
	switch {
	case c.Sites < 2 || c.Sites > 9:
		return fmt.Errorf("bench: sites: Sites %d outside 2..9", c.Sites)
	case c.Duration <= 0 || c.StartTimeout <= 0 || c.ProgressEvery <= 0 || c.RequestTimeout <= 0 || c.ConvergeTimeout <= 0:
		return errors.New("bench: sites: Duration, StartTimeout, RequestTimeout, ConvergeTimeout and ProgressEvery must be positive")
	case c.CutDuration < 0:
		return errors.New("bench: sites: CutDuration < 0")
	case c.Clients < 1:
		return errors.New("bench: sites: Clients < 1")
	case c.KeySize < 8 || c.ValueSize < 1:
		return errors.New("bench: sites: KeySize >= 8 and ValueSize >= 1 required")
	}
	return c.Delay.Validate()
}

// SiteResult is one site's Put load on one system.
type SiteResult struct {
	System string `json:"system"`
	Site   int    `json:"site"`
	// Phase is "load", or "cut" while the last site was cut off.
	Phase string `json:"phase"`
	// SuccessRate is the share of requests that succeeded.
	SuccessRate float64 `json:"success_rate"`
	Requests    int64   `json:"requests"` // that succeeded
	Errors      int64   `json:"errors"`
	Throughput  float64 `json:"throughput_rps"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	LastError   string  `json:"last_error,omitempty"`
}

// SitesReport is what RunSites measured.
type SitesReport struct {
	Started string `json:"started"`
	Host    Host   `json:"host"`
	Sites   int    `json:"sites"`
	// Delay is the one-way delay of every inter-site link.
	Delay   string       `json:"one_way_delay"`
	Clients int          `json:"clients_per_site"`
	Seconds float64      `json:"seconds"`
	Results []SiteResult `json:"results"`
	// LinkBytes are the bytes that crossed each system's inter-site links
	// during the whole run (setup included), both directions.
	LinkBytes map[string]int64 `json:"link_bytes"`
	// CutSeconds is how long the last site was cut off; ConvergeSeconds,
	// per system, how long after the heal until every site held the same
	// keys and values.
	CutSeconds      float64            `json:"cut_seconds,omitempty"`
	ConvergeSeconds map[string]float64 `json:"converge_seconds,omitempty"`
}

// cluster is one system's running servers in their topology.
type cluster struct {
	system  string
	servers []*server
	topo    *topology
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
// the delay layer (topology), then runs a Put load at every site of one
// system at once, one system after the other. Needs Linux and root.
//
// This is the skeleton of issue 12's multi-site benchmark: every
// inter-site byte — Rhizome's peer gRPC and memberlist TCP and UDP, etcd's
// peer traffic — crosses a delayed link of its own directed pair of sites.
// No link is cut yet; the cut scenario will use netdelay.CutStall (open
// connections stall, new ones are refused), which is what a WAN partition
// does to TCP.
func RunSites(ctx context.Context, cfg SitesConfig) (*SitesReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := progressOrDiscard(cfg.Progress)
	rep := &SitesReport{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host:    newHost(),
		Sites:   cfg.Sites, Delay: cfg.Delay.String(), Clients: cfg.Clients, Seconds: cfg.Duration.Seconds(),
		LinkBytes: map[string]int64{}, CutSeconds: cfg.CutDuration.Seconds(), ConvergeSeconds: map[string]float64{},
	}
	work, bins, cleanup, err := prepareRun(ctx, cfg.WorkDir, "rhizome-bench-sites-", cfg.RhizomeBin, cfg.EtcdBin, progress, &rep.Host)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	for _, system := range []string{SystemRhizome, SystemEtcd} {
		fmt.Fprintf(progress, "sites bench: starting %d %s servers, peer links %s one way\n", cfg.Sites, system, cfg.Delay)
		start := startRhizomeSites
		if system == SystemEtcd {
			start = startEtcdMembers
		}
		c := &cluster{system: system}
		err := start(ctx, cfg, bins, filepath.Join(work, system), c)
		if err == nil {
			err = runPhases(ctx, cfg, c, rep, progress)
		}
		if err := errors.Join(err, c.close()); err != nil {
			return nil, err
		}
	}
	rep.Host.LoadAfter = loadAvg()
	return rep, nil
}

// runPhases runs the load, then (if configured) the cut and the heal, on
// one system's running cluster, and adds what they measured to rep.
func runPhases(ctx context.Context, cfg SitesConfig, c *cluster, rep *SitesReport, progress io.Writer) error {
	res, err := loadSites(ctx, cfg, c, "load", cfg.Duration, progress)
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, res...)
	if cfg.CutDuration > 0 {
		cut := len(c.servers) - 1
		fmt.Fprintf(progress, "sites bench: %s: cutting site%d off for %v\n", c.system, cut, cfg.CutDuration)
		c.topo.cut(cut)
		res, err := loadSites(ctx, cfg, c, "cut", cfg.CutDuration, progress)
		c.topo.heal(cut)
		if err != nil {
			return err
		}
		rep.Results = append(rep.Results, res...)
		fmt.Fprintf(progress, "sites bench: %s: healed; waiting until every site holds the same data\n", c.system)
		took, err := converge(ctx, c, cfg.ConvergeTimeout)
		if err != nil {
			return err
		}
		rep.ConvergeSeconds[c.system] = took.Seconds()
	}
	rep.LinkBytes[c.system] = c.topo.bytes()
	return nil
}

// converge polls every site's whole keyspace until all are identical and
// returns how long that took.
func converge(ctx context.Context, c *cluster, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var clis []*clientv3.Client
	defer func() {
		for _, cli := range clis {
			cli.Close()
		}
	}()
	for _, s := range c.servers {
		cli, err := newClient(s.endpoint)
		if err != nil {
			return 0, err
		}
		clis = append(clis, cli)
	}
	for {
		same, err := sameData(ctx, clis)
		if same {
			return time.Since(start), nil
		}
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("bench: %s sites not identical %v after the heal (%v)", c.system, timeout, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sameData reports whether every client reads the same keys and values
// (serializable: each site's own copy).
func sameData(ctx context.Context, clis []*clientv3.Client) (bool, error) {
	var first map[string]string
	for i, cli := range clis {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithSerializable())
		cancel()
		if err != nil {
			return false, err
		}
		kvs := make(map[string]string, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			kvs[string(kv.Key)] = string(kv.Value)
		}
		if i == 0 {
			first = kvs
		} else if !maps.Equal(first, kvs) {
			return false, fmt.Errorf("site %d holds %d keys, site 0 %d", i, len(kvs), len(first))
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
	if c.topo, err = newTopology(cfg.Sites, "rzb"+c.system[:2], cfg.Delay, cfg.Seed); err != nil {
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

// loadSites runs cfg.Clients Put clients against every site of c at once
// for d, printing progress, and returns one result per site for phase.
func loadSites(ctx context.Context, cfg SitesConfig, c *cluster, phase string, d time.Duration, progress io.Writer) ([]SiteResult, error) {
	kv := DefaultConfig()
	kv.KeySize, kv.ValueSize, kv.Seed = cfg.KeySize, cfg.ValueSize, cfg.Seed
	var conns []*clientv3.Client
	defer func() {
		for _, cli := range conns {
			cli.Close()
		}
	}()
	phases := make([]phaseResult, len(c.servers))
	done := make([]atomic.Int64, len(c.servers))
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, s := range c.servers {
		var siteConns []*clientv3.Client
		for range cfg.Clients {
			cli, err := newClient(s.endpoint)
			if err != nil {
				return nil, err
			}
			siteConns = append(siteConns, cli)
		}
		conns = append(conns, siteConns...)
		cl := &cell{workload: WorkloadPut, clients: cfg.Clients, level: i, conns: siteConns, cfg: kv}
		ops := make([]op, cfg.Clients)
		for j := range ops {
			inner := cl.newOp(j)
			ops[j] = func(ctx context.Context) error {
				defer done[i].Add(1)
				ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
				defer cancel()
				return inner(ctx)
			}
		}
		wg.Go(func() { phases[i] = runPhase(ctx, ops, deadline, nil) })
	}
	stop := sitesProgress(progress, c.system+" "+phase, cfg.ProgressEvery, done)
	wg.Wait()
	stop()
	var res []SiteResult
	for i, ph := range phases {
		if err := c.servers[i].alive(); err != nil {
			return nil, err
		}
		r := SiteResult{System: c.system, Site: i, Phase: phase, Requests: ph.hist.count(), Errors: ph.errors,
			SuccessRate: ratio(float64(ph.hist.count()), float64(ph.hist.count()+ph.errors)),
			Throughput:  float64(ph.hist.count()) / ph.elapsed.Seconds(),
			P50Ms:       ms(ph.hist.quantile(0.5)), P99Ms: ms(ph.hist.quantile(0.99)), MaxMs: ms(ph.hist.max())}
		if ph.lastErr != nil {
			r.LastError = ph.lastErr.Error()
		}
		res = append(res, r)
	}
	return res, ctx.Err()
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

// Table renders the report: one row per system and site.
func (r *SitesReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rhizome %s (%d sites) vs %s (%d members): Put at every site at once, %d clients per site, %.0fs; peer links %s one way; fsync on\n",
		orDash(r.Host.RhizomeCommit), r.Sites, orDash(r.Host.EtcdVersion), r.Sites, r.Clients, r.Seconds, r.Delay)
	fmt.Fprintf(&b, "%s/%s, %d CPUs; started %s; load1 %.2f before, %.2f after\n\n", r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Started, r.Host.LoadBefore, r.Host.LoadAfter)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tphase\tsite\treq/s\tsucceeded\tp50\tp99\tmax\terrors\t")
	for _, s := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.1f%%\t%s\t%s\t%s\t%d\t\n", s.System, s.Phase, s.Site, s.Throughput, 100*s.SuccessRate, fmtMs(s.P50Ms), fmtMs(s.P99Ms), fmtMs(s.MaxMs), s.Errors)
	}
	tw.Flush()
	if r.CutSeconds > 0 {
		fmt.Fprintf(&b, "\ncut: site %d cut off for %.0fs (open connections stall, new ones refused); identical data at every site after the heal in: rhizome %.2fs, etcd %.2fs\n",
			r.Sites-1, r.CutSeconds, r.ConvergeSeconds[SystemRhizome], r.ConvergeSeconds[SystemEtcd])
	}
	fmt.Fprintf(&b, "\nbytes over the peer links (setup included): rhizome %s, etcd %s\n", fmtBytes(r.LinkBytes[SystemRhizome]), fmtBytes(r.LinkBytes[SystemEtcd]))
	return b.String()
}

// JSON returns the report as indented JSON.
func (r *SitesReport) JSON() ([]byte, error) {
	return indentJSON(r)
}

// WriteFiles writes <name>.json, <name>.txt and <name>.png into dir.
func (r *SitesReport) WriteFiles(dir, name string) ([]string, error) {
	return writeFiles(dir, name, r.JSON, r.Table(), r.PNG)
}

// PNG draws Rhizome's throughput against etcd's per site, then both
// systems' p50 and p99 per site.
func (r *SitesReport) PNG(w io.Writer) error {
	c := chart{
		title:     fmt.Sprintf("Rhizome %s vs %s, %d sites, peer links %s one way", orDash(r.Host.RhizomeCommit), orDash(r.Host.EtcdVersion), r.Sites, r.Delay),
		subtitle:  fmt.Sprintf("Put at every site at once, %d clients per site, %.0fs, fsync on; %d CPUs, load1 %.2f before, %.2f after; %s", r.Clients, r.Seconds, r.Host.CPUs, r.Host.LoadBefore, r.Host.LoadAfter, r.Started),
		ratioAxis: "throughput, Rhizome/etcd (higher is better)",
		latAxis:   "Put latency, ms (log; filled p99, hollow p50)",
		ratios:    []series{{name: "rhizome/etcd", colour: systemColour(SystemRhizome)}},
	}
	find := func(sys string, site int) SiteResult {
		for _, s := range r.Results {
			if s.System == sys && s.Site == site && s.Phase == "load" {
				return s
			}
		}
		return SiteResult{}
	}
	for j, sys := range []string{SystemRhizome, SystemEtcd} {
		c.p99 = append(c.p99, series{name: sys, colour: systemColour(sys)})
		c.p50 = append(c.p50, series{name: sys, colour: systemColour(sys)})
		for i := range r.Sites {
			s := find(sys, i)
			c.p99[j].values = append(c.p99[j].values, s.P99Ms)
			c.p50[j].values = append(c.p50[j].values, s.P50Ms)
		}
	}
	for i := range r.Sites {
		c.slots = append(c.slots, fmt.Sprintf("site %d", i))
		c.ratios[0].values = append(c.ratios[0].values, ratio(find(SystemRhizome, i).Throughput, find(SystemEtcd, i).Throughput))
	}
	return c.png(w)
}
