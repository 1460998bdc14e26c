// Package store is a site's durable multi-version key-value store, shaped like etcd's
// mvcc: a revision counter that starts at 1 and grows by exactly one per committed
// change, create/mod revisions and versions per key, reads at any revision not yet
// compacted, leases, and an ordered event log for watches.
//
// Every change, local or merged from another site, takes the one commit path: apply
// it to the key's crdt.Doc, materialise the value, take the next revision, write the
// revision record, key document, change-log entry and version vector in one badger
// transaction, fsync, and only then make it visible to readers, publish it to the
// watch hub and acknowledge it. Several concurrent requests share one fsync (group
// commit). Readers never see a change before it is durable.
//
// store is the only package that imports badger.
package store
