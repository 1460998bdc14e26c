package bench

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.count() != 0 || h.quantile(0.5) != 0 || h.mean() != 0 || h.max() != 0 {
		t.Error("an empty histogram is not all zero")
	}
	// 1..10000 µs: the q-quantile is q×10 ms.
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.9, 9 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		t.Run(time.Duration(tc.q*1000).String(), func(t *testing.T) {
			got := h.quantile(tc.q)
			if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.01 {
				t.Errorf("quantile(%v) = %v, want %v within 1%%", tc.q, got, tc.want)
			}
		})
	}
	if got, want := h.mean(), 5000500*time.Nanosecond; math.Abs(float64(got-want))/float64(want) > 0.01 {
		t.Errorf("mean = %v, want %v within 1%%", got, want)
	}
	if h.count() != 10000 {
		t.Errorf("count = %d", h.count())
	}
	// Beyond the range: clamped, not lost.
	h.record(2 * time.Hour)
	if h.count() != 10001 || h.max() < 59*time.Minute {
		t.Errorf("after a 2h latency: count %d, max %v", h.count(), h.max())
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	var empty histogram
	a.merge(&empty)
	a.merge(&b)
	for _, q := range []float64{0, 0.5, 0.99, 1} {
		if a.quantile(q) != all.quantile(q) {
			t.Errorf("quantile(%v): merged %v, direct %v", q, a.quantile(q), all.quantile(q))
		}
	}
}

func TestKeys(t *testing.T) {
	cfg := DefaultConfig()
	k := keyer{workload: 'p', cell: '1', size: cfg.KeySize, digits: cfg.keyDigits()}
	if got := k.key(0x2a); got != "p100002a" {
		t.Errorf("key = %q, want p100002a", got)
	}
	k.size = 12
	if got := k.key(0xabc); got != "p1000abc____" {
		t.Errorf("12-byte key = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no duration":      func(c *Config) { c.Duration = 0 },
		"no clients":       func(c *Config) { c.Clients = nil },
		"zero clients":     func(c *Config) { c.Clients = []int{0} },
		"unknown workload": func(c *Config) { c.Workloads = []string{"scan"} },
		"short keys":       func(c *Config) { c.KeySize = 4 },
		"key space":        func(c *Config) { c.KeySpace = 1 << 25 },
		"no conns":         func(c *Config) { c.Conns = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			mut(&c)
			if c.Validate() == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// sampleReport is a report as a run would produce it, without servers.
func sampleReport() *Report {
	r := &Report{
		Started: "2026-01-02T03:04:05Z",
		Host:    Host{OS: "linux", Arch: "amd64", CPUs: 2, EtcdVersion: "etcd v3.7.3", RhizomeCommit: "abc1234", LoadBefore: 0.5, LoadAfter: 1.5},
		Config:  reportConfig(DefaultConfig()),
	}
	for i, w := range Workloads() {
		for _, n := range []int{1, 100} {
			base := float64(1000 * (i + 1) * n / 10)
			r.Cells = append(r.Cells,
				Cell{Workload: w, Clients: n, Conns: min(n, 10), System: SystemRhizome, Throughput: base * 1.1, P50Ms: 0.3 * float64(n), P99Ms: 1.1 * float64(n), ServerCPUPerRequestUs: 50, LoadEnd: 1},
				Cell{Workload: w, Clients: n, Conns: min(n, 10), System: SystemEtcd, Throughput: base, P50Ms: 0.25 * float64(n), P99Ms: 0.9 * float64(n), ServerCPUPerRequestUs: -1, LoadEnd: 1.2})
		}
	}
	r.compare()
	return r
}

func TestReportTableAndTargets(t *testing.T) {
	r := sampleReport()
	if len(r.Comparisons) != 8 {
		t.Fatalf("%d comparisons, want 8", len(r.Comparisons))
	}
	// Throughput 1.1x (met for put, not for range's 1.2x); p99 1.22x (not met).
	wantMet := []bool{true, false, false}
	for i, tg := range r.Targets {
		if !tg.Measured || tg.Met != wantMet[i] {
			t.Errorf("target %q: measured %v met %v, want met %v", tg.Name, tg.Measured, tg.Met, wantMet[i])
		}
	}
	table := r.Table()
	for _, want := range []string{"range-serializable", "1.10x", "NOT MET", "put, 100 clients: throughput"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if _, err := r.JSON(); err != nil {
		t.Fatal(err)
	}
}

func TestReportPNG(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().PNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Errorf("plot is %v", b)
	}
}
