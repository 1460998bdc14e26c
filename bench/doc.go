// Package bench measures Rhizome against real etcd with etcd's own benchmark
// shapes, so every figure Rhizome quotes has an etcd figure from the same run
// beside it. Two suites: Run (`rhizome bench kv`, below) and RunKube
// (`rhizome bench kube`: the same comparison through one kube-apiserver per
// system, with a mix of Pod and ConfigMap calls; QuickKubeConfig is its
// quick mode). RunSites (`rhizome bench sites`, a skeleton of issue 12) sets
// N Rhizome sites beside an N-member etcd, each site in its own network
// namespace joined by internal/netdelay's delayed links, runs a Put load at
// every site, optionally cuts the last site off under load and times the
// convergence after the heal.
//
// Run starts a real `rhizome serve` process and a real etcd v3.7 process (each
// with its own temporary data directory on loopback ports, fsync on for both:
// that is each server's default), drives both with identical workloads through
// go.etcd.io/etcd/client/v3, and returns a Report: throughput and latency
// quantiles per cell (workload × concurrency × system), the Rhizome/etcd
// ratios, and whether the targets of the single-site milestone are met.
// Report.Table, Report.JSON and Report.PNG render it; WriteFiles writes all
// three. Plots are drawn with gonum.org/v1/plot: throughput ratios, then
// p50 and p99 of every system on a log scale.
//
// Workloads follow tools/benchmark in etcd: 8-byte keys, 256-byte values, a
// fixed random value per client; Put over a sequential key space, single-key
// Range (serializable and linearizable) over preloaded keys, and the
// compare-and-put kube-apiserver sends for an update:
// If(ModRevision(k) = rev) Then(Put(k, v)) Else(Get(k)). Each concurrency
// level spreads its clients round-robin over up to Config.Conns gRPC
// connections, as etcd's --conns/--clients do.
//
// What the numbers mean and do not mean:
//   - Both servers and the load generator share one machine. The client's own
//     CPU is part of every figure, for both systems alike; on a small machine it
//     dilutes the ratios towards 1. The load average is recorded next to every
//     cell, and so is each server's CPU time per request, which other load on
//     the machine disturbs less than throughput does.
//   - Each cell is measured in rounds (Config.Rounds) that take turns between
//     Rhizome and etcd, alternating which goes first, so a burst of load from
//     elsewhere falls on both sides rather than on one.
//   - Latencies are recorded per request in an HDR histogram
//     (github.com/HdrHistogram/hdrhistogram-go; relative error under 1%), so
//     long runs use constant memory.
//
// Servers are started with internal/testbin's process starter and their
// binaries come from scripts/bins.sh through it. The package starts
// processes and reads /proc (server CPU time, load), so it
// is meant for Linux; elsewhere those columns are left empty.
package bench
