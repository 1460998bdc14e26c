// Package e2e tests the real `rhizome` binary end to end, as users run it: a
// `rhizome serve` subprocess on a loopback port with its own data directory,
// driven by real clients.
//
//   - TestEtcdctl runs one scenario of etcdctl v3.7.3 commands (KV, Txn, watch,
//     leases, compaction, endpoint and member commands) against Rhizome and,
//     step by step, against a real etcd v3.7.3 process. Each step's output,
//     with cluster/member ids, lease ids, ports and timings normalised away, must
//     match etcd's and, where the table spells it out, the expected text; a
//     difference is a Rhizome bug.
//   - TestCrashSafety puts Rhizome under concurrent write load, SIGKILLs it at a
//     seeded random moment, restarts it on the same data directory and checks
//     that every acknowledged write survived with its revision, that the
//     history has no gaps or strangers, and that new writes get higher
//     revisions; three kill cycles on one data directory by default,
//     RHIZOME_CRASH_CYCLES of them in the long mode (100), each restart's time
//     reported.
//   - TestFailpointCrash does the same with the crash at a named point of the
//     commit path instead of a random moment: the process, armed through
//     RHIZOME_FAILPOINTS (store.ParseFailpoints), SIGKILLs itself before the
//     badger commit, after it, or before the events reach watchers.
//     TestFailpointCrashMidSync crashes a site of a real two-site cluster
//     while it merges the other's changes, TestFailpointCrashMidSnapshot a
//     new site while it installs the snapshot it bootstraps from; both check
//     that the sites reopen and converge.
//   - TestBadInput sends each bad request of the README's bad-input table to
//     Rhizome and to a real etcd and compares the errors; its siblings cover
//     malformed TLS, a site of another cluster and a damaged data file.
//   - TestResourceBounds measures the site's Go heap, resident memory and a
//     well-behaved client's latency under a write load with and without a
//     misbehaving client (watchers that stop reading, unpaged lists of
//     everything, a peer site that stops reading), and bounds them.
//
// The tests build the binary once per test process (`go build ./cmd/rhizome`,
// cgo on) and take etcd and etcdctl from internal/testbin. All processes listen
// on 127.0.0.1 only and are killed when the test ends (and, on Linux, when the
// test process dies). Set RHIZOME_E2E_SEED to replay TestCrashSafety's kill
// schedule and operation mix.
package e2e
