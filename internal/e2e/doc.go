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
//     revisions; three kill cycles on one data directory.
//
// The tests build the binary once per test process (`go build ./cmd/rhizome`,
// cgo on) and take etcd and etcdctl from internal/testbin. All processes listen
// on 127.0.0.1 only and are killed when the test ends (and, on Linux, when the
// test process dies). Set RHIZOME_E2E_SEED to replay TestCrashSafety's kill
// schedule and operation mix.
package e2e
