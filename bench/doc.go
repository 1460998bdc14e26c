// Package bench measures Rhizome against real etcd with etcd's own benchmark
// shapes, so every figure Rhizome quotes has an etcd figure from the same run
// beside it. Two comparing suites: Run (`rhizome bench kv`, below) and RunKube
// (`rhizome bench kube`: the same comparison through one kube-apiserver per
// system, with a mix of Pod and ConfigMap calls; QuickKubeConfig is its
// quick mode). RunSites (`rhizome bench sites`, issue 12) sets N Rhizome
// sites beside an N-member etcd, each site in its own network namespace
// joined by internal/netdelay's delayed links; at every delay of a sweep it
// runs Put, both Range kinds and a status-sized edit at every site at once
// (closed loop: throughput), and Put at a fixed rate per site (open loop,
// the same offered load for both systems, latency from each request's
// scheduled start: the latency targets), and charges the link bytes to the
// changes; it cuts the last site off under the fixed-rate load and times
// the convergence after the heal; then it starts a
// kube-apiserver per site against that site's server and runs RunKube's mix
// at every site at once per delay (sites.md, sites.png, sites-kube.png;
// QuickSitesConfig is its quick mode, with a tiny Kubernetes step). RunEdge (`rhizome bench edge`, issue 9's edge
// story; QuickEdgeConfig is its quick mode) is not a comparison: it starts
// three sites in network namespaces joined by the same delayed links, each a
// Rhizome site with the unmodified kube-apiserver, kube-controller-manager and
// kube-scheduler (internal/kube; the controllers restarted when they exit, as
// deploy/systemd does) and stand-in kubelets, deploys Deployments, a
// StatefulSet and Jobs, cuts the last site off while both sides scale, update
// and create same-named objects, heals, and reports (markdown, JSON, and a
// timeline plot of pods per workload per site with the cut shaded): failed
// writes per site during the cut, when every side had its own leader, time
// until the stores are identical and until the controllers stop writing, the
// most pods of each workload at once against its spec and the checker's
// derived bound, pod names bound to two nodes at once, and every conflict
// the sites list with its resolution.
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
