package bench

import (
	"bytes"
	"image/png"
	"io"
	"os"
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
		"one site":         func(c *SitesConfig) { c.Sites = 1 },
		"no duration":      func(c *SitesConfig) { c.Duration = 0 },
		"no clients":       func(c *SitesConfig) { c.Clients = 0 },
		"no delays":        func(c *SitesConfig) { c.Delays = nil },
		"negative delay":   func(c *SitesConfig) { c.Delays = []time.Duration{-time.Millisecond} },
		"jitter 1":         func(c *SitesConfig) { c.Jitter = 1 },
		"unknown workload": func(c *SitesConfig) { c.Workloads = []string{"txn-cas"} },
		"cut, no bucket":   func(c *SitesConfig) { c.Bucket = 0 },
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
// a three-member etcd, each in its own network namespace, every workload at
// 0 and 25 ms one way, then the last site cut off under load. Every site
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
		if n != 2*len(cfg.Delays) {
			t.Errorf("%s: %d link measurements, want put and edit at every delay: %+v", sys, n, rep.Links)
		}
	}
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
