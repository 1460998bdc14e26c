// Package consistency holds Rhizome's replica merge rules in the small, pure,
// deterministic form the model checker uses: one key's document with a fixed
// number of leaf fields, stamped writes, and a Merge that is commutative,
// associative and idempotent.
//
// The rules mirror crdt/ (see DESIGN.md, "Semantics"):
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
// These are crdt/'s rules for objects that are not built-in Kubernetes kinds.
// For built-in kinds crdt/ merges by Kubernetes' merge units (status whole,
// list-maps by key, ...), moves metadata.generation and falls back to one side's
// whole object when a merge fails validation; this model does not follow those
// yet (issue 9, item 6).
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
