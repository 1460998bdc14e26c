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
//     one, last writer wins by Stamp, so a causally later write always wins
//     and concurrent writes are ordered deterministically. Arrays and scalars
//     are atomic leaves, which is what a field is here.
//
// crdt/ implements the same rules over automerge documents and ships changes
// in causal order; this package merges whole states. A seeded differential
// test that drives both with the same random writes and merges ties the two
// together; until it lands, crdt/'s doc comment and this one are the contract.
package consistency
