// Package multisite tests Rhizome's multi-site behaviour with real `rhizome serve`
// processes on a real network that the tests cut and heal (acceptance items 2
// and 3 of issue 4; issue 9's end-to-end test with the Kubernetes control plane). It has no code of its own: only tests and benchmarks.
//
// # The network
//
// Each site runs in its own Linux network namespace with two links: one to the
// root namespace, where the test reaches its etcd client port, and one to a
// bridge shared by the sites (in a namespace of its own), which carries gossip
// and sync. Cutting a site sets its bridge port down, so frames to and from it
// vanish as on a failed WAN link, while its clients keep writing. Namespaces were
// chosen over a relay on loopback because a cut then covers every packet of
// gossip and sync alike, including connections already open, with no cooperation
// from the code under test (gossip binds and advertises one address, so a relay
// could not sit in its path without changing rhizome).
//
// The tests therefore need Linux, root and iproute2's ip (they skip otherwise)
// and use 10.213.0.0/16 on links they create. Every namespace and link is named
// rhzms...; a run removes them when it ends, pass or fail, and first removes any
// that a crashed run left behind. A lock file in the temporary directory keeps
// two test processes from sharing the names. The rhizome processes die with the
// test process (parent-death signal).
//
// # Tests and benchmarks
//
//   - TestPartitionedProcesses: three sites; one is cut off while all three take
//     writes (distinct keys, concurrent edits of one object's fields, a delete
//     racing an update, concurrent creates of one key); after healing, `get
//     --prefix` is identical at all sites, the merge rules held, every site's
//     watch (opened before the writes, with prev_kv) replays to the converged
//     state with etcd's ordering and prev_kv guarantees, and MemberList lists all
//     three. It cuts once briefly (below gossip's failure detection) and once
//     until gossip has declared the site dead.
//   - BenchmarkConvergeAfterPartition: three sites each take 10,000 changes while
//     all are cut apart; reports the time from healing until every site holds
//     every change and `get --prefix` is identical. The sites run with default
//     (WAN) gossip timing and anti-entropy interval. RHIZOME_MULTISITE_CHANGES
//     sets another count; RHIZOME_MULTISITE_PERF=FILE records the sites' CPU
//     profile (perf) from healing to convergence.
//   - BenchmarkBytesPerChange: repeated one-field updates of a ~2 KB JSON object
//     at one site of three (and of two); reports the bytes the sites send each
//     other per delivered change (Ethernet frames on the peer links, and TCP
//     payload of the sync connections) against the size of the changed field's
//     value, and the size of the crdt change body for comparison.
//   - TestKubeAcrossSites (issue 9's end-to-end test and item 4): two sites,
//     each Rhizome with the unmodified kube-apiserver, kube-controller-manager
//     and kube-scheduler on default flags (leader election on; each site's
//     components in their own UTS namespace, so hostnames and identities differ)
//     and two stand-in kubelets (internal/kube). Connected, one
//     controller-manager leads; cut, each side elects its own and reconciles its
//     own changes; both sides take kubectl writes that must all succeed (scale
//     on one side, new image on the other, same-named ConfigMaps, a namespace
//     deleted on one side while a ConfigMap is created in it on the other,
//     Services asking for the same ClusterIP and NodePort). After the heal:
//     identical stores, exactly one leader (the loser exits as upstream does and
//     the harness restarts it, as deploy/systemd's Restart=always), the
//     Deployment rolled out with both changes and observedGeneration ==
//     generation at every site, nothing left in the deleted namespace, every
//     object accepts an update at every site, and no ClusterIP or NodePort held
//     twice. TestKubeOneEtcd is the control: the same writes from two control
//     planes on one real etcd (no cut), where the conflicting ones are refused.
//     RHIZOME_MULTISITE_KUBE_CUT=90s holds the cut at least that long (past the
//     node lifecycle controller's grace period).
//
// Run them with
//
//	go test ./internal/multisite/
//	go test -run '^$' -bench . -benchtime 1x ./internal/multisite/
//
// Benchmark figures are custom metrics; ns/op is the timed section only
// (healing to convergence; a batch of updates and their delivery).
package multisite
