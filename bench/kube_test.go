package bench

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"testing"
)

// BenchmarkKube is the go test entry to `rhizome bench kube` with its
// default settings (about 6 minutes on two cores), printing the same table:
//
//	go test -run '^$' -bench Kube -benchtime 1x -timeout 30m ./bench/
//
// The whole run is one iteration whatever b.N is; b.ReportMetric repeats the
// all-operations throughput ratio per level for benchstat.
func BenchmarkKube(b *testing.B) {
	cfg := DefaultKubeConfig()
	cfg.Progress = os.Stderr
	rep, err := RunKube(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Print("\n" + rep.Table())
	for _, c := range rep.Comparisons {
		if c.Op == kubeOpAll && c.System == SystemRhizome {
			b.ReportMetric(c.ThroughputRatio, fmt.Sprintf("all-c%d-x", c.Clients))
		}
	}
	b.ReportMetric(0, "ns/op") // one run of many cells; ns/op would mean nothing
}

// TestKubeQuick runs `rhizome bench kube --quick` end to end: two real
// control planes, every operation measured on both, a report with a plot.
func TestKubeQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Kubernetes control planes")
	}
	cfg := QuickKubeConfig()
	cfg.Progress = testWriter{t}
	rep, err := RunKube(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		c, ok := rep.cell(sys, cfg.Clients[0])
		if !ok {
			t.Fatalf("no %s cell", sys)
		}
		for _, op := range c.Ops {
			if op.Requests == 0 || op.Errors > 0 {
				t.Errorf("%s %s: %d requests, %d errors (%s)", sys, op.Op, op.Requests, op.Errors, op.LastError)
			}
		}
	}
	if len(rep.Targets) != 1 || !rep.Targets[0].Measured {
		t.Errorf("targets %+v", rep.Targets)
	}
	var buf bytes.Buffer
	if err := rep.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Table())
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
