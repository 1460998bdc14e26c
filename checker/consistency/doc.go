// Package consistency holds Rhizome's replica merge rules in the small, pure,
// deterministic form the model checker uses: one key's document with a fixed
// number of leaf fields, stamped writes, and a Merge that is commutative,
// associative and idempotent. It calls crdt's rule for incarnations and
// deletes (crdt.Arrive) and, for built-in Kubernetes kinds, crdt/kube's rules
// (see Kube below); the rest follows crdt/ as modelled here.
//
// The rules follow crdt/ (see DESIGN.md, "Semantics"):
//
//   - Incarnations. A create of a key that the writing site sees as absent
//     starts a new incarnation named by the write's Stamp (Lamport counter,
//     site). When two sites create the same key concurrently, the incarnation
//     with the greater Stamp wins whole, with no blending of fields, and the
//     loser is remembered as a conflict.
//   - Deletes. A delete ends its incarnation for good: it beats every
//     concurrent update of that incarnation (a sticky tombstone, whose body is
//     forgotten). A create that causally follows the delete carries a greater
//     Stamp, so it is a new incarnation and stands.
//   - Fields. Within one incarnation the document's leaf fields merge one by
//     one, last writer wins, where "last" is automerge's order of operations:
//     every field a write changes is one operation, numbered on from the
//     highest operation the body holds (in field order), ties going to the
//     greater site (automerge's actor id). So a causally later write always
//     wins, and of concurrent writes of one field the one with the greater
//     operation id wins - not necessarily the one with the greater Stamp (a
//     write that changes more fields numbers its last ones higher). Arrays
//     and scalars are atomic leaves, which is what a field is here.
//
// Incarnations and deletes are decided by crdt.Arrive, the function every
// crdt.Doc applies each change by: Merge hands it the changes the other state
// stands for, in causal order (the delete of the incarnation its create followed, its create, its
// edits, its delete), and keeps or replaces the body as it says. What Merge
// models is only which changes a state stands for and which of them the
// receiver already holds: a state remembers one incarnation before its own
// (Prev), so a receiver that took a concurrent create it lost to earlier, or a
// chain of re-creates, may see a create again and count a conflict crdt/ does
// not record, as it counts one between equal values, which crdt/ does not
// (never the other way round; the differential test checks both the
// incarnation and that every conflict crdt/ records, the model does).
//
// These are crdt/'s rules for objects that are not built-in Kubernetes kinds.
// For built-in kinds (Kube, kube.go) the model calls crdt/kube's own rules
// rather than a copy of them: NewKube places each field slot in the kind's
// object and takes from crdt/kube's structured-merge-diff schema with
// Kubernetes' rules on top (kube.Node.Unit) which slots are one merge unit
// (an object's status, a Lease's spec), written by one operation and merged
// whole, in the order crdt/ writes units (by key); Write numbers operations
// so; each document keeps every site's latest write (Doc.Heads: what it
// followed and the fields it left), so the concurrent heads are known
// exactly; and Shown gives the object a reader sees by kube.Concurrent, the
// function crdt/'s own merge calls when a history ends in concurrent edits
// (metadata.generation one past the heads' greatest when the merged spec
// differs from some head's; when the validator rejects that, the whole
// object written by the head with the greatest Stamp). A later write diffs
// against the merged fields, as crdt/'s does. What stays modelled here is
// what crdt/ leaves to automerge: the order of operations on one field
// (automerge's operation ids, which crdt/ never compares itself), and which
// changes a merged state stands for (see Merge). A second
// seeded differential test (kube_diff_test.go) drives crdt.Docs of an
// apps/v1 Deployment (spec.replicas, rollingUpdate maxSurge/maxUnavailable,
// status, generation; a validator that rejects both zero and readyReplicas
// > replicas) and this model with the same random concurrent edits at 2-3
// sites, and requires the same object at every site after every step.
//
// crdt/ implements the same rules over automerge documents and ships changes
// in causal order; this package merges whole states. The seeded differential
// test in crdt_diff_test.go drives both with the same random histories (2-3
// sites, creates, puts, deletes, re-creates, causal deliveries in random
// orders, duplicates) and requires the same existence, incarnation and field
// values at every site after every step, for documents whose fields are
// always present. Where a field is an omitempty JSON member, a model write
// of 0 is a member removal in crdt/, and automerge keeps a concurrent set of
// a removed member whatever the operation ids: there the two can pick
// different winners for that field (TestSparseFieldRemovalLosesToConcurrentSet).
// Site numbers stand for both orders crdt/ uses, site names (concurrent
// creates) and actor ids (field ties); callers pass the actor rank to Update.
package consistency
