package k8s

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/checker"
)

var themeliosSeconds = flag.Int("themelios-seconds", 60, "length of each BenchmarkThemelios run")

// BenchmarkThemelios is acceptance criterion 3: BFS of themelios-baseline to
// depth 100 for a fixed time on every core, reporting microseconds per
// generated state (the figure Themelios publishes). Run with
//
//	go test -run '^$' -bench Themelios -benchtime 1x ./checker/k8s/
func BenchmarkThemelios(b *testing.B) {
	for _, c := range []Consistency{Synchronous, Causal} {
		b.Run(string(c), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Scenario = "themelios-baseline"
			cfg.Consistency = c
			for range b.N {
				rep, err := Check(cfg, checker.Config{Mode: checker.BFS, MaxDepth: 100, KeepGoing: true,
					Timeout: time.Duration(*themeliosSeconds) * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(rep.MicrosPerState, "µs/state")
				b.ReportMetric(float64(rep.States), "states")
				b.ReportMetric(float64(rep.UniqueStates), "unique")
				b.ReportMetric(float64(rep.MaxDepth), "depth")
				fmt.Printf("themelios-baseline %s: %d states (%d unique) in %.1fs, depth %d: %.3f µs/state\n",
					c, rep.States, rep.UniqueStates, rep.Seconds, rep.MaxDepth, rep.MicrosPerState)
			}
		})
	}
}
