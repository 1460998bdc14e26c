// Package store is a site's durable multi-version key-value store, shaped like etcd's
// mvcc: a revision counter that starts at 1 and grows by exactly one per committed
// change, create/mod revisions and versions per key, reads at any revision not yet
// compacted, leases, and an ordered event log for watches.
//
// Every change, local or merged from another site, takes the one commit path:
// apply it to the key's crdt.Doc (a store alone from the start has none: see
// below), materialise the value, take the next revision, write the revision
// record, key document, change-log entry and version vector in one badger
// transaction, fsync, and only then make it visible to readers, publish it to the
// watch hub and acknowledge it. Several concurrent requests share one fsync (group
// commit). Readers never see a change before it is durable.
//
// The committer is one goroutine. It applies the next batch while the previous
// batch's transaction is being written and synced, reading that batch's writes
// where badger does not hold them yet, and begins a transaction only once the
// one before it has ended: commits land in order, each shown (answered,
// published, its revision readable) as soon as it is durable, and a batch
// applied on a commit that fails fails with it (committer.go). Reads never
// wait for a commit under way: they read through a view of the last one that
// landed.
//
// What a write costs that can be paid before it
// runs there is paid in the writer's goroutine: Write runs the request dry against
// a read view, cuts the values it puts into fields and readies the documents it
// edits (decoded, automerge loaded); the committer takes them only while the
// stored document is still the one they came from (prepare.go), so compares,
// revisions and the order of events stay the committer's alone.
//
// A store alone (not Config.Replicated) has no other site's writes to merge
// with, so it neither prepares nor cuts values into fields nor keeps their
// history, and serves each value as written, as etcd does. One alone from its
// first Open keeps no documents at all: its key index and revision records
// are its whole state, and a write stores its value once (alone.go). One that
// kept documents before writes values whole into them, as registers
// (crdt.Doc.PutRegister). Opened as one of several sites, a store without
// documents first writes each live key's register; a register holding a
// document is promoted to it when first edited, alike at every site that
// holds it, so edits made anywhere merge field by field from then on.
//
// Open checks every table's checksums before badger opens them, and refuses a
// damaged data file with ErrCorruptData (preflight.go).
//
// A commit is one badger transaction: the committer closes a batch before it
// outgrows one. A single request larger than a transaction allows is written in
// parts ordered so that any prefix surviving a crash is consistent, and finished
// or discarded when the store reopens (commit.go). Readers of the change log stop
// at the version vector last made durable, so nothing handed to sync can be taken
// back by a crash. Config.Failpoint injects crashes between the parts (tests).
//
// History stays bounded: documents restart their histories (crdt rebase) and the
// change log is collected once the sync layer's Horizon says every counted site
// holds what goes; a site alone writes no change log at all. A site that lacks
// collected changes installs a Snapshot of another site's state: alone in its
// commit, as one revision, with this site's own changes the snapshot lacks
// merged again after it, each at a revision of its own, so that no revision
// changes a key twice (a watcher sees ordinary etcd events).
//
// Merges follow crdt's rules with the one Config.Validator given to every document
// the store opens, and the merge units of the built-in kinds and of the custom
// resources whose CRDs the store holds under Config.KubePrefix (loaded at Open,
// then kept current from every commit; crd.go). When a CRD's schema changes,
// values already stored under its resource are not materialised again: each
// follows the new schema from its next write or merge on. Each conflict a merge resolves (concurrent creates, validation
// fallbacks) is recorded in the same commit with its kind, winning and losing
// writes (their sites) and this site's time, the latest Config.MaxConflicts kept
// and listed by Conflicts, counted in rhizome_conflicts_total{kind} and logged.
// A caller that resolves a conflict itself (site/alloc's allocation repairs)
// records it in its write with WriteTxn.RecordConflict, listed alike.
//
// A store directory belongs to one site: the first Open records the site's name and
// later Opens under another name fail with ErrOtherSite. It also records the
// directory's incarnation (random, Config.Rand): the changes written here are
// keyed by the origin name~incarnation (Origin), so a site that lost its
// directory and starts again under its name never reuses the old one's sequence
// numbers (incarnation.go); a restored backup is a new incarnation too. OpenBackup takes one
// consistent read view of everything (writers go on) and writes it as a backup
// file; Restore creates a new store directory from one, under the site name the
// caller chooses, with the same keys, values, revisions, history and leases.
//
// A space quota (etcd's --quota-backend-bytes) bounds the store's size on disk:
// WriteTxn.Reserve refuses writes that would pass it and raises the NOSPACE alarm,
// which holds until DisarmNoSpace; Defragment gives deleted space back (quota.go).
//
// Memory is bounded by configuration, not by the data. Like etcd's key index, the
// in-memory index holds per key only where each state lives (revision, create
// revision, version, size); values are read from badger's revision records, so a
// key once read keeps nothing in memory. A key's document is decoded from badger
// when a write or a merge needs it; recently written ones stay in a cache bounded
// by bytes that counts automerge's C-side memory (DocCacheBytes), and the C memory
// the cache lets go is collected deliberately (doccache.go). badger's memtables
// and caches follow MemoryBudget (badger.go). Reads and writes are offered as the
// small views of view.go (ReadView, WriteView, TxnRead, TxnWrite).
//
// store is the only package that imports badger.
package store
