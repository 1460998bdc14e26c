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
// Pulls are numbered and their answers carry the number back, so that a site
// answers a Pull from what it already sent, not from the puller's vector, while
// its previous answer may still be on the way (the Pull acks an older one):
// Pulls queued behind a cut, all with one vector, are not each answered with
// the same changes. An answer carries this site's own changes first, so a site
// catching up from several gets each site's changes from that site. An answer
// is a few Batches, no more than the puller's mailbox here has room for (a
// dropped Batch would leave a gap, and a gap asks for everything again), and
// only its last acknowledges the Pull (Message.Continued).
//
// New local changes are pushed eagerly as unsolicited Batches (after
// Config.PushDelay, so that changes logged meanwhile share the message);
// periodic Pulls repair whatever a push lost and carry changes onward from site
// to site. Changes are read from the store's durable change log, never queued
// in memory, so a slow or distant peer costs no memory and never holds up local
// writes: it only falls further behind in the log.
//
// From the vectors the sites report, each Engine computes a store.Horizon: how far
// every site the cluster counts holds every origin's log. The store collects its
// change log and old document histories behind it (bounded history).
//
// # Incarnations
//
// A site's own changes are keyed by its origin, the site's name and its data
// directory's incarnation (store.Store.Origin), and every message carries the
// sender's origin beside its name. A site that lost its data directory and starts
// again under its name is a new origin: its new changes never collide with the
// old ones, even when it writes before it reaches any peer (local writes need no
// peer), and it is sent everything it lacks like any other site, its old
// incarnation's changes included (or a snapshot where the logs no longer hold
// them). Incarnations of one name order by their creation time, so every site
// tells alike which is the newest: the Engine counts that one for the name, and
// no longer waits for the older one, which makes no changes any more
// (store.Horizon.Counted holds origins).
//
// # Forgetting
//
// A site away long enough (site's --forget-site-after) stops being waited for,
// so that the others collect their change logs and drop old histories without
// it. Which incarnations are forgotten is a replicated decision, not each
// site's own:
//
//   - A site's clock only proposes. For each known site it no longer counts,
//     SetCounted records a decision to forget that site's newest incarnation,
//     dated on this site's clock and signed with its origin (store.Forgetting).
//     The store keeps decisions durably (they survive restarts); every Pull
//     carries all the sender holds, so they reach every site, restarted and
//     snapshot-installed ones included, and merge by union.
//   - Every site folds the decisions it holds in one total order (date,
//     decider, incarnation): a decision forgets its incarnation unless an
//     earlier one forgot it, or forgot its decider. The result depends on the
//     set of decisions alone, so sites holding the same decisions forget the
//     same incarnations; and the decider of the last decision that counts is
//     never forgotten, so two sides of a cut that decide to forget each other
//     leave one standing. A forgotten incarnation stays forgotten: its site
//     counts again as a new incarnation (see below).
//   - The sites that count are every site known (heard from, holding changes
//     here, or named by the clock) but those whose newest incarnation is
//     forgotten. Collection waits for them alone; a new rebase keeps their
//     concurrent edits, a choice written into the rebase change, so every site
//     applies it alike; a prior (old history) is dropped only once every site
//     whose edits its rebase keeps has taken the rebase, counted or not
//     (store's priorDone). A site's own changes stay in its log until the
//     newest incarnation of every site known holds them, forgotten ones heard
//     from included.
//
// Why it converges. A forgotten site that returns may lack changes no log
// holds any more: it is sent a snapshot. A snapshot replaces state, it does not
// merge it, so a site takes one only if it holds nothing the sender lacks,
// except its own changes still in its log (merged again on top) and changes of
// origins replaced by a newer incarnation, which make no more changes and
// which no site sends any more: it gives those up, as a wiped disk would. Two sites may
// still each hold what the other lacks and can no longer send (each collected
// past the other: one was forgotten, or a wipe lost what a site had reported
// holding). Then the forgotten one yields: a forgotten incarnation that cannot
// take the snapshot of a site not forgotten installs it anew
// (store.InstallOptions.Anew), giving up its changes the snapshot lacks and
// going on as a new incarnation, whose sequence numbers cannot be mistaken for
// the ones given up; the others treat it as a site that lost its data. What
// it gives up is its own changes alone (and replaced origins'): it never goes on
// anew on a snapshot lacking another origin's changes it holds, which that
// origin may have collected from its log (every site held them) and a wipe
// elsewhere may since have lost; it waits until the sender holds them, got from
// their origin or by taking this site's snapshot. Its own changes that build on
// a replaced origin's changes the snapshot lacks cannot be merged again on it:
// while it can send those (they are in its log) the sender's next snapshot
// will hold them; once it cannot (it took them by a snapshot, or collected
// them), none ever will, and it goes on anew. It goes on anew only on a
// snapshot not older than what its sender has since reported holding (a
// snapshot delivered late says nothing of what the sender can send now), and
// only if its holdings are still those it judged by (the store checks, in the
// install's transaction: another install or merge may run while the engine is
// unlocked). Sites not forgotten wait for each other, so in time a snapshot of
// one of them is one a forgotten site can take anew. The price is the rule a
// client sees:
// writes a forgotten incarnation acknowledged that no other site held when it
// rejoined are lost, as they would be with its disk; and, as for a wiped site,
// the new incarnation's edits of a document whose history the old one had
// rebased, unknown to it, are dropped by that rebase (crdt's rule for sites a
// rebase does not name).
//
// Every site must tell alike which incarnation of a name is the newest: the
// peers count that one and give up an older one's changes as replaced. So
// incarnations order by the time they were made, to the nanosecond (store,
// Incarnations), and a site that hears of a newer incarnation of its own name
// than its own logs it as an error: two data directories claim the name, or the
// site's clock went back across a wipe, and the sites will not converge. (Seed
// 41 of internal/cluster TestChaosForgetting once stopped converging this way,
// when incarnations ordered by the second: a disk wiped within the second of
// its first Open sorted, half the time, older than the incarnation it replaced.)
//
// # What it reports
//
// The Engine knows, per site, the newest vector that site reported, so it tells
// how many changes each side lacks (Missing) and counts what it merged, the
// changes it received but held already (duplicates: bytes sent for nothing), and the
// snapshots it sent and installed (Stats). It logs one line when a catch-up from a
// peer starts (this site is more than a batch behind it) and when it ends, and when
// a snapshot is sent, received and installed (or refused). The Runner adds the
// sync lag in seconds — how long this site has held the oldest change a site is
// not known to hold, from samples of its own vector — and the Prometheus metrics,
// on the Registerer in its Config: rhizome_peer_changes_pending{peer},
// rhizome_peer_sync_lag_seconds{peer}, rhizome_peer_sent_bytes_total{peer},
// rhizome_peer_received_bytes_total{peer}, rhizome_merges_applied_total,
// rhizome_peer_duplicate_changes_total, rhizome_snapshots_sent_total and rhizome_snapshots_installed_total. Per-site
// figures are as of that site's newest report: during a cut they stop at what
// it last said, so pending changes and lag grow; after healing, its first
// report brings them back to zero.
//
// The Engine is pure protocol logic, driven by its caller (the Runner in real
// sites; a deterministic scheduler, Network, in tests), so a failing seed
// replays exactly.
//
// # Transports
//
// The Runner — reconnects, one mailbox per peer, backpressure, gap detection —
// talks to peers through a Transport: one-way streams of Messages, dialled to a
// peer and accepted from peers. GRPC is the transport between real sites (one
// gRPC client stream per peer, TLS, keepalives, and by default each stream's
// messages compressed as one zstd stream, so what they repeat of each other
// is sent once: compress.go). A compressed stream also packs edits (packEdits): an edit's
// dependency on the key's last edit sent on the same stream, a 32-byte hash,
// and its checksum are left out and put back by the receiver
// (crdt.EditHashes), which cut the bytes per 100-byte status edit to two
// peers from 278 to 174-195 (TestBytesPerEditGRPC).
// Its streams are opened only between sites that hold the same cluster token,
// each end proving it to the other with an HMAC over fresh nonces before a
// message passes (auth.go): a site of another cluster, or a client that knows
// the peer port but not the token, is refused (codes.Unauthenticated, logged
// with its address) and can neither send nor receive changes. Fabric is an
// in-memory one in normal code, for tests and internal/cluster: it partitions
// and cuts sites (breaking their streams and refusing dials until healed),
// stalls links (streams hold their messages until healed, as a silent cut does
// to TCP), and delays, drops, duplicates and reorders messages, from a seeded
// source.
//
// After a cut heals, the sites converge without waiting for an anti-entropy
// round: a stream whose message waits longer than Config.StallTimeout to be
// written is dropped, broken streams are dialled again within Config.Redial,
// and every fresh stream, and every mailbox that overflowed once it has
// drained, starts with a resync: a Pull for what this site lacks, and pushes
// again from what the peer is known to hold (Engine.Rewind), so that messages
// the cut lost are sent again at once. After a heal each change is sent about
// once: a fresh stream first drops what its mailbox kept through the cut (the
// resync supersedes it; sent first, it would arrive with gaps and beside the
// resync's push of the same changes), pushes wait while a mailbox is nearly
// full rather than overflow it, a resync's Pull asks the peer not to forward
// other sites' changes (each sends its own: Engine.ExpectDirect), and an
// answer is acknowledged only once its changes are durable at the puller (a
// Pull's vector says what is durable: acknowledged sooner, they would look
// lost and be sent again). The Runner holds its
// lock on the Engine only while the Engine computes, never across the store's
// fsyncs (Engine.SetUnlocker). A stream whose message does not decode, or that
// the Engine refuses, is ended and logged with the peer that sent it; the store
// is left as it was.
package peer
