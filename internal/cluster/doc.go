// Package cluster runs N real Rhizome sites in one process for tests, in the
// style of raft's exported testing harness: each site is a real store (on disk,
// in its own data directory), watch hub, etcd API on a loopback port and sync
// runner, and the runners talk over one in-memory peer.Fabric, so a test can
// Partition, Disconnect and Heal the sites, make the fabric drop, duplicate,
// delay and reorder messages, Crash a site and Restart it from its data
// directory (or Wipe it first, as a lost disk), and then EnsureSame: wait until every running site holds the same
// changes, the same state digest and the same keys and values.
//
// Membership is fixed (no gossip): every site knows every other as a peer and
// counts it for collection, unless a test makes one site forget another on its
// own (Forget), as a site's --forget-site-after clock does. Clients reach a site with an
// ordinary etcd client at Site.Endpoint, which stays the same across restarts.
//
// The package's own tests are the randomised fault schedules (TestChaos) and the
// per-site linearizability and watch checks (TestLinearizable): see their doc
// comments for the seeds they run and how to replay one.
package cluster
