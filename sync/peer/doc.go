// Package peer streams changes between sites and runs anti-entropy, so that every
// site ends up holding every change and (by crdt's merge rules) identical state.
//
// The protocol is three idempotent messages over any Transport, which may delay,
// drop, duplicate or reorder them:
//
//   - Pull carries the sender's version vector (and the newest vectors it knows of
//     other sites) and asks for what it lacks;
//   - Batch carries changes, of any origin (so a chain A–B–C converges even if A and
//     C never talk), and whether more are waiting;
//   - Snapshot carries, in parts, the sender's whole state, for a site that lacks
//     changes the others have collected from their logs.
//
// New local changes are pushed eagerly as unsolicited Batches; periodic Pulls repair
// whatever a push lost and carry changes onward from site to site. Changes are read
// from the store's durable change log, never queued in memory, so a slow or distant
// peer costs no memory and never holds up local writes: it only falls further behind
// in the log.
//
// From the vectors the sites report, each Engine computes a store.Horizon: how far
// every site the cluster counts holds every origin's log. The store collects its
// change log and old document histories behind it (bounded history).
//
// The Engine is pure protocol logic, driven by its caller (the Runner in real
// sites; a deterministic scheduler in tests), so a failing seed replays exactly.
package peer
