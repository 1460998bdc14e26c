// Package crdt holds one key's value as a conflict-free replicated document and
// defines how replicas of it merge. It is the only package that imports automerge.
//
// A key's state is a Doc. Every local write produces a Change; applying the same set
// of Changes in any order, any number of times, yields the same Doc, the same
// materialised value and the same Digest (merge is commutative, associative and
// idempotent). The rules, from DESIGN.md:
//
//   - Incarnations. Writing a key that is absent (never created, or deleted) starts
//     a new incarnation named by the writer's Stamp. When replicas created the same
//     key concurrently, the incarnation with the greatest Stamp wins whole; the
//     others are recorded as conflicts.
//   - Deletes. A delete ends its incarnation for good: it beats every concurrent
//     update of that incarnation. A create that follows the delete is a newer
//     incarnation and stands.
//   - Bodies. A value that is a compact JSON object is a document: an automerge map
//     of its fields, so concurrent edits of different fields both survive.
//     Concurrent writes of one field resolve by automerge's operation ids (a
//     Lamport counter that advances once per field a change writes; ties go to the
//     greater actor), so a causally later write always wins; a member removed at
//     one site and written concurrently at another stays (add-wins). The checker's
//     pure model (checker/consistency) follows these rules, tied to this package by
//     a seeded differential test. Any other value is an opaque register. A write that cannot be expressed as a field diff of the
//     current document (a register, or a switch between kinds) starts a new body
//     epoch, which replaces older epochs whole.
//
// Documents are stored flat (one automerge map entry per leaf, keyed by its JSON
// pointer) so that no two replicas ever race to create the same nested container,
// which automerge would resolve by hiding one side's entries.
//
// Everything here is pure and deterministic: no goroutines, clocks or globals.
package crdt
