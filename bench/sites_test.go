package bench

import (
	"bytes"
	"image/png"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSitesConfigValidate(t *testing.T) {
	for _, c := range []SitesConfig{DefaultSitesConfig(), QuickSitesConfig()} {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	for name, mut := range map[string]func(*SitesConfig){
		"one site":          func(c *SitesConfig) { c.Sites = 1 },
		"no duration":       func(c *SitesConfig) { c.Duration = 0 },
		"no clients":        func(c *SitesConfig) { c.Clients = 0 },
		"no delays":         func(c *SitesConfig) { c.Delays = nil },
		"negative delay":    func(c *SitesConfig) { c.Delays = []time.Duration{-time.Millisecond} },
		"jitter 1":          func(c *SitesConfig) { c.Jitter = 1 },
		"unknown workload":  func(c *SitesConfig) { c.Workloads = []string{"txn-cas"} },
		"cut, no bucket":    func(c *SitesConfig) { c.Bucket = 0 },
		"no writes pending": func(c *SitesConfig) { c.ConvergePending = []int{100, 0} },
		"no rate":           func(c *SitesConfig) { c.Rate = 0 },
		"NaN rate":          func(c *SitesConfig) { c.Rate = math.NaN() },
		"no outstanding":    func(c *SitesConfig) { c.MaxOutstanding = 0 },
		"unknown arrivals":  func(c *SitesConfig) { c.Arrivals = "bursty" },
		"no clock":          func(c *SitesConfig) { c.Clock = nil },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultSitesConfig()
			mut(&c)
			if c.Validate() == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// An edit swapped into a preloaded object's bytes is the object encoded
// with that message.
func TestEditValue(t *testing.T) {
	msg := strings.Repeat("ab", editBytes/2)
	for _, k := range []int{0, 7, editObjects - 1} {
		base, err := editBase(k, editBlank)
		if err != nil {
			t.Fatal(err)
		}
		want, err := editBase(k, msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := editValue(base, msg); got != want {
			t.Errorf("object %d: the swapped value differs from the encoded one", k)
		}
	}
}

// TestSitesQuick runs `rhizome bench sites --quick`: three Rhizome sites and
// a three-member etcd, each in its own network namespace, every workload
// (the fixed-rate Put too) at 0 and 25 ms one way, then the last site cut
// off under the fixed-rate load. Every site
// must serve every workload without errors; at 25 ms an etcd member's Put
// must take at least a round trip to the quorum, which shows the delay
// layer carries etcd's peer traffic; during the cut every Rhizome site
// keeps writing and etcd's cut-off member does not; after the heal both
// converge; the timeline and the bytes per change are there; and a
// kube-apiserver per site serves the Kubernetes mix at every site at 0 and
// 25 ms (a tiny step: 2 clients per site, 2 s per delay).
func TestSitesQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six servers")
	}
	if os.Geteuid() != 0 {
		t.Skip("the sites' network namespaces need root")
	}
	cfg := QuickSitesConfig()
	cfg.Progress = testWriter{t}
	rep, err := RunSites(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rtt := 2 * (25*time.Millisecond - time.Duration(float64(25*time.Millisecond)*cfg.Jitter))
	delayed, cut := 0, cfg.Sites-1
	for _, r := range rep.Results {
		switch {
		case r.Phase == "load" && (r.Requests == 0 || r.Errors > 0):
			t.Errorf("%s %s at %gms site %d: %d requests, %d errors (%s)", r.System, r.Workload, r.DelayMs, r.Site, r.Requests, r.Errors, r.LastError)
		case r.Phase == "load" && r.System == SystemEtcd && r.Workload == WorkloadPut && r.DelayMs == 25 && time.Duration(r.P50Ms*float64(time.Millisecond)) >= rtt:
			delayed++
		case r.Phase == "cut" && r.System == SystemRhizome && r.SuccessRate < 0.99:
			t.Errorf("rhizome site %d during the cut: %.1f%% of writes succeeded (%s)", r.Site, 100*r.SuccessRate, r.LastError)
		case r.Phase == "cut" && r.System == SystemEtcd && r.Site == cut && r.SuccessRate > 0.1:
			t.Errorf("etcd's cut-off member: %.1f%% of writes succeeded", 100*r.SuccessRate)
		}
	}
	if want := 2 * cfg.Sites * (len(cfg.Delays)*len(cfg.Workloads) + 1); len(rep.Results) != want {
		t.Errorf("%d results, want %d", len(rep.Results), want)
	}
	if delayed < cfg.Sites {
		t.Errorf("%d of %d etcd members had a Put p50 at 25 ms of at least %v", delayed, cfg.Sites, rtt)
	}
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		if _, ok := rep.ConvergeSeconds[sys]; !ok {
			t.Errorf("%s: no convergence time", sys)
		}
		if rep.LinkBytes[sys] == 0 {
			t.Errorf("no %s bytes crossed the peer links", sys)
		}
		n := 0
		for _, u := range rep.Links {
			if u.System == sys && u.Changes > 0 && u.PerChange > 0 {
				n++
			}
		}
		if n != 3*len(cfg.Delays) {
			t.Errorf("%s: %d link measurements, want put, put-rate and edit at every delay: %+v", sys, n, rep.Links)
		}
	}
	checkConvergeSweep(t, cfg, rep)
	checkRateCells(t, cfg, rep)
	if rep.CutEnd-rep.CutStart < cfg.CutDuration.Seconds()*0.9 || len(rep.Timeline) == 0 {
		t.Errorf("cut from %.2fs to %.2fs, %d timeline buckets", rep.CutStart, rep.CutEnd, len(rep.Timeline))
	}
	checkKubeSites(t, cfg, rep)
	for _, draw := range []func(io.Writer) error{rep.PNG, rep.KubePNG} {
		var buf bytes.Buffer
		if err := draw(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(&buf); err != nil {
			t.Fatal(err)
		}
	}
	if table := rep.Table(); !strings.Contains(table, "etcd v3.7.3") || !strings.Contains(table, "Bytes between sites per change") || !strings.Contains(table, "Kubernetes mix across sites") {
		t.Errorf("table:\n%s", table)
	}
	t.Log("\n" + rep.Table())
}

// checkRateCells: both systems ran the fixed-rate Put at every site at
// every delay, with positive latencies; Rhizome served what was offered
// (the achieved rate within 10% of the offered one, nothing held back);
// both systems were offered the same load; the report tables the cells and
// judges the 25 ms targets on them.
func checkRateCells(t *testing.T, cfg SitesConfig, rep *SitesReport) {
	t.Helper()
	for _, d := range rep.DelaysMs {
		var load [2]float64
		for k, sys := range []string{SystemRhizome, SystemEtcd} {
			rows := rep.results(sys, "load", WorkloadPutRate, d)
			if len(rows) != cfg.Sites {
				t.Fatalf("%s at %g ms: %d fixed-rate results, want %d", sys, d, len(rows), cfg.Sites)
			}
			for _, r := range rows {
				if r.Requests == 0 || r.P50Ms <= 0 || r.P99Ms < r.P50Ms || r.OfferedRate <= 0 {
					t.Errorf("%s put-rate at %g ms site %d: %d requests, p50 %.2f ms, p99 %.2f ms, offered %.1f/s", sys, d, r.Site, r.Requests, r.P50Ms, r.P99Ms, r.OfferedRate)
				}
				if sys == SystemRhizome && (r.NotStarted > 0 || math.Abs(r.Throughput-r.OfferedRate) > 0.1*r.OfferedRate) {
					t.Errorf("rhizome put-rate at %g ms site %d: achieved %.1f/s of %.1f/s offered, %d not started", d, r.Site, r.Throughput, r.OfferedRate, r.NotStarted)
				}
			}
			load[k] = offered(rows)
		}
		if load[0] != load[1] || math.Abs(load[0]-float64(cfg.Sites)*cfg.Rate) > 0.5*float64(cfg.Sites)*cfg.Rate {
			t.Errorf("at %g ms: offered rhizome %.1f/s, etcd %.1f/s; want the same, near %g/s", d, load[0], load[1], float64(cfg.Sites)*cfg.Rate)
		}
	}
	table := rep.Table()
	if !strings.Contains(table, "## Put at a fixed rate") || !strings.Contains(table, "| 25 ms | ") {
		t.Errorf("no fixed-rate table in:\n%s", table)
	}
	n := 0
	for _, tg := range rep.Targets {
		if strings.Contains(tg.Name, "equal load") && strings.HasPrefix(tg.Name, "25 ms") && tg.Measured && tg.Ratio > 0 && strings.Contains(table, tg.Name) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d measured 25 ms equal-load targets in the report, want p50 and p99: %+v", n, rep.Targets)
	}
}

// checkConvergeSweep: every round of the sweep ran for both systems; every
// Rhizome site, the cut-off one too, made all its writes, and etcd's majority
// made theirs (its cut-off member is given none); all converged.
func checkConvergeSweep(t *testing.T, cfg SitesConfig, rep *SitesReport) {
	t.Helper()
	if len(rep.Convergence) != 2*len(cfg.ConvergePending) {
		t.Fatalf("%d convergence rounds, want %d: %+v", len(rep.Convergence), 2*len(cfg.ConvergePending), rep.Convergence)
	}
	for _, p := range rep.Convergence {
		writers := cfg.Sites
		if p.System == SystemEtcd {
			writers--
		}
		if p.Pending != int64(writers*p.PerSite) || p.Failed != 0 || p.Seconds <= 0 {
			t.Errorf("%s, %d writes per site: %d pending, %d failed, %.2fs; want %d pending, none failed", p.System, p.PerSite, p.Pending, p.Failed, p.Seconds, writers*p.PerSite)
		}
	}
	if !strings.Contains(rep.Table(), "## Convergence against pending writes") {
		t.Error("the report has no convergence table")
	}
}

// checkKubeSites: the Kubernetes part measured every verb at every site of
// both systems at every delay, and every call succeeded.
func checkKubeSites(t *testing.T, cfg SitesConfig, rep *SitesReport) {
	t.Helper()
	if want := 2 * len(cfg.KubeDelays) * cfg.Sites * (int(numKubeOps) + 1); len(rep.Kube) != want {
		t.Errorf("%d Kubernetes rows, want %d", len(rep.Kube), want)
	}
	for _, r := range rep.Kube {
		if r.Errors > 0 || (r.Op == kubeOpAll && (r.Requests == 0 || r.P99Ms <= 0)) {
			t.Errorf("kube %s %s at %gms site %d: %d calls, %d errors, p99 %.2f ms (%s)", r.System, r.Op, r.DelayMs, r.Site, r.Requests, r.Errors, r.P99Ms, r.LastError)
		}
	}
}

// A report without Put (--workloads edit) still draws, and the peer
// message table sets the link bytes beside them.
func TestSitesReportWithoutPut(t *testing.T) {
	r := &SitesReport{Sites: 3, DelaysMs: []float64{0}, Clients: 8,
		Results: []SiteResult{{System: SystemRhizome, Phase: "load", Workload: WorkloadEdit, Requests: 100, P50Ms: 3, P99Ms: 9}},
		Links:   []LinkUse{{System: SystemRhizome, Workload: WorkloadEdit, Changes: 100, Bytes: 300000, PerChange: 3000, ChangedBytes: 100, PeerMessageBytes: 280000, Merges: 200}},
	}
	var buf bytes.Buffer
	if err := r.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
	if table := r.Table(); !strings.Contains(table, "| edit | 0 ms | 3000 | 2800 | 1.07 | 2.00 |") {
		t.Errorf("no peer message row in:\n%s", table)
	}
}

// The convergence sweep is tabled, judged on its largest round against a
// round trip plus 0.5 s, and drawn.
func TestSitesReportConvergence(t *testing.T) {
	r := &SitesReport{Sites: 3, DelaysMs: []float64{25}, Clients: 8, ConvergeDelayMs: 25,
		Convergence: []ConvergePoint{
			{System: SystemRhizome, PerSite: 10000, Pending: 30000, Seconds: 1.1, Merged: 2, Duplicates: 2.63},
			{System: SystemRhizome, PerSite: 1000, Pending: 3000, Seconds: 0.2, Merged: 2},
			{System: SystemEtcd, PerSite: 1000, Pending: 2000, Seconds: 0.1},
			{System: SystemEtcd, PerSite: 10000, Pending: 20000, Seconds: 0.3},
		}}
	r.judge()
	i := slices.IndexFunc(r.Targets, func(x Target) bool { return strings.Contains(x.Name, "10000 writes per site (30000 pending)") })
	if i < 0 || !r.Targets[i].Measured || r.Targets[i].Met || math.Abs(r.Targets[i].Ratio-2) > 1e-9 {
		t.Fatalf("targets: %+v", r.Targets)
	}
	if table := r.Table(); !strings.Contains(table, "| 1000 | 3000 | 0.20s | 2000 | 0.10s | 2.00 / 0.00 |\n| 10000 | 30000 | 1.10s | 20000 | 0.30s | 2.00 / 2.63 |") {
		t.Errorf("no convergence rows in:\n%s", table)
	}
	var buf bytes.Buffer
	if err := r.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
}

// The latency targets are judged on the fixed-rate cells, not on the
// closed-loop Put beside them; the fixed-rate table and its panel are drawn.
func TestSitesReportFixedRate(t *testing.T) {
	r := &SitesReport{Sites: 2, DelaysMs: []float64{0, 25, 100}, Clients: 8, Rate: 50, Arrivals: ArrivalsPoisson}
	row := func(sys, phase, w string, d, p50, p99 float64) {
		for site := range r.Sites {
			r.Results = append(r.Results, SiteResult{System: sys, Site: site, Phase: phase, Workload: w, DelayMs: d,
				Requests: 500, Throughput: 50, OfferedRate: 50, SuccessRate: 1, P50Ms: p50 * float64(site+1), P99Ms: p99 * float64(site+1)})
		}
	}
	for _, d := range r.DelaysMs {
		row(SystemRhizome, "load", WorkloadPut, d, 10, 80)
		row(SystemEtcd, "load", WorkloadPut, d, 100+d, 200+d)
		row(SystemRhizome, "load", WorkloadPutRate, d, 1, 4)
		row(SystemEtcd, "load", WorkloadPutRate, d, 2+4*d, 3+4*d)
	}
	row(SystemRhizome, "cut", WorkloadPutRate, 0, 1, 5)
	r.judge()
	want := map[string]float64{
		"25 ms, equal load, 50 Puts/s per site: etcd's best put p50 / Rhizome's worst": 51, // 102 / 2
		"25 ms, equal load, 50 Puts/s per site: etcd's best put p99 / Rhizome's worst": 12.875,
		"Rhizome put p99 at 100 ms / at 0 ms, equal load, 50 Puts/s per site":          1,
		"Rhizome put p99 during the cut / at 0 ms, equal load, 50 Puts/s per site":     1.25,
	}
	for _, tg := range r.Targets {
		if v, ok := want[tg.Name]; ok {
			if !tg.Measured || math.Abs(tg.Ratio-v) > 1e-9 {
				t.Errorf("%s: %+v, want ratio %g", tg.Name, tg, v)
			}
			delete(want, tg.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("targets missing: %v in %+v", want, r.Targets)
	}
	if table := r.Table(); !strings.Contains(table, "| 25 ms | 100.0 / 100.0 | 100.0 / 100.0 | 2.00 ms | 102 ms / 204 ms | 51.0x | 8.00 ms | 103 ms / 206 ms | 12.9x | 0 / 0 | 0.00 ms / 0.00 ms |") {
		t.Errorf("no fixed-rate row in:\n%s", table)
	}
	var buf bytes.Buffer
	if err := r.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
}
