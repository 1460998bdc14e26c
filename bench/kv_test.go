package bench

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/etcdpair"
)

// BenchmarkKV is the Go-benchmark entry point to the same run as
// `rhizome bench kv`, shortened (1 s per cell after 250 ms of warm-up: about
// 45 s in all) and printing the same table:
//
//	go test -run '^$' -bench KV ./bench/
//
// It builds rhizome and takes etcd from scripts/bins.sh like the command.
// The whole run is one iteration whatever b.N is: the figures are in the
// table, and b.ReportMetric repeats the headline ratios for benchstat.
func BenchmarkKV(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Duration, cfg.Warmup, cfg.Rounds = time.Second, 250*time.Millisecond, 2
	cfg.Progress = os.Stderr
	rep, err := Run(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Print("\n" + rep.Table())
	for _, c := range rep.Comparisons {
		if c.Clients == 100 && (c.Workload == WorkloadPut || c.Workload == WorkloadRangeSerializable) {
			b.ReportMetric(c.ThroughputRatio, c.Workload+"-c100-x")
		}
	}
	b.ReportMetric(0, "ns/op") // one run of many cells; ns/op would mean nothing
}

// BenchmarkPut100 drives Put with 100 clients over 10 connections at an
// in-process server (fsync on), so a CPU profile of the test binary shows the
// server's Put path (and the client's, which is in the same process):
//
//	go test -run '^$' -bench 'Put100/rhizome' -benchtime 20000x -cpuprofile cpu.out ./bench/
//	go tool pprof -top bench.test cpu.out
//
// ns/op is wall time per request at this concurrency (the inverse of
// throughput); p50 and p99 are reported beside it.
func BenchmarkPut100(b *testing.B) {
	for _, system := range []string{SystemRhizome, SystemEtcd} {
		b.Run(system, func(b *testing.B) {
			var endpoint string
			if system == SystemRhizome {
				_, endpoint = etcdpair.StartRhizome(b, etcdpair.Options{})
			} else {
				endpoint = etcdpair.StartEtcd(b, etcdpair.Options{})
			}
			cfg := DefaultConfig()
			var conns []*clientv3.Client
			for range cfg.Conns {
				conns = append(conns, etcdpair.Client(b, endpoint))
			}
			cl := &cell{workload: WorkloadPut, clients: 100, level: 1, conns: conns, cfg: cfg}
			ops := make([]op, cl.clients)
			for i := range ops {
				ops[i] = cl.newOp(i)
			}
			runPhase(context.Background(), ops, time.Now().Add(500*time.Millisecond), nil)
			var budget atomic.Int64
			budget.Store(int64(b.N))
			b.ResetTimer()
			ph := runPhase(context.Background(), ops, time.Time{}, &budget)
			b.StopTimer()
			if ph.errors > 0 {
				b.Fatalf("%d errors, last: %v", ph.errors, ph.lastErr)
			}
			b.ReportMetric(ms(ph.hist.quantile(0.5)), "p50-ms")
			b.ReportMetric(ms(ph.hist.quantile(0.99)), "p99-ms")
		})
	}
}
