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
//     incarnation and stands. Both rules are Arrive, which the model checker
//     (checker/consistency) calls too.
//   - Bodies. A value that is a compact JSON object is a document: an automerge map
//     of its fields, so concurrent edits of different fields both survive.
//     Concurrent writes of one field resolve by automerge's operation ids (a
//     Lamport counter that advances once per field a change writes; ties go to the
//     greater actor), so a causally later write always wins; a member removed at
//     one site and written concurrently at another stays (add-wins). The checker's
//     pure model (checker/consistency) models this per-field order (automerge
//     keeps it internally) for objects that are not built-in Kubernetes kinds,
//     tied to this package by a seeded differential test. Any other value is an opaque register. A write that cannot be
//     expressed as a field diff of the current document (a register, or a switch
//     between kinds) starts a new body epoch, which replaces older epochs whole.
//     A replica no other replica merges with writes every value as a register
//     (PutRegister); a register holding a document is promoted, at its epoch,
//     to the body a create of its value makes before an edit of it is written or
//     applied, alike at every replica (promote).
//   - Kubernetes' merge units. What a field is follows the object's kind
//     (apiVersion and kind members), by the structured-merge-diff schema
//     server-side apply uses for the built-in types (see crdt/kube): a scalar; an
//     atomic struct, map or list (SMD's default for a list without a list-type)
//     whole; a list-map element by element, each named by its key fields
//     (containers by name, ports by port and protocol), the elements in the
//     written order, then concurrently added ones in byte order of their keys; a
//     set list element by element (a list-map element removed at one site and
//     edited at another loses the key it is named by, and is dropped). An
//     object's status is one unit, so the Lamport
//     later writer's whole status wins; a coordination.k8s.io Lease's spec is one
//     unit (never one holder with another's renew time). Metadata: labels and
//     annotations per key, finalizers as a set, ownerReferences by uid,
//     managedFields whole. Custom resources follow their CRD's schema when the
//     caller's Schemas (SetSchemas, DecodeDoc) knows it, from their first edit
//     on: a create's body, which replicas build themselves, is cut by the
//     built-in kinds' schemas that every replica knows alike, and an edited
//     body's fields are read from automerge, never re-cut from its value, so
//     a replica that learns a CRD (or its new schema) later diverges from none.
//     Replicas must hold the same CRDs for their materialised values to agree.
//     Kinds no schema knows keep JSON-path fields as above.
//   - Concurrent heads. When a document's history ends in more than one
//     concurrent edit, the value shown is the field merge corrected by rules a
//     field merge alone does not keep, decided from the set of changes held so
//     every replica decides alike: a built-in object whose merged spec differs
//     from the spec some head's writer saw gets metadata.generation one past the
//     greatest of the heads' generations (so status.observedGeneration sends its
//     controllers to reconcile again); and when the Validator the caller gave
//     (SetValidator) rejects the merged value, the value shown is the whole value
//     written by the head with the greatest Stamp (each edit carries its write's
//     stamp), and the other heads are recorded as Validation conflicts. These two
//     rules are kube.Concurrent, which the model checker calls too. A later
//     local write diffs against the merged fields, not the value shown, so it
//     writes every field the value shown differs in, and its value stands.
//   - Conflicts. Every resolved conflict (concurrent creates, validation
//     fallbacks) is recorded with its kind and the winning and losing writes'
//     stamps (ConflictLog, ConflictCount). The record is an event of this
//     replica, outside the Digest: which replica sees a conflict depends on the
//     order changes arrive, the value never does.
//
// Documents are stored flat (one automerge map entry per merge unit, keyed by its
// JSON pointer; list elements by their names) so that no two replicas ever race
// to create the same nested container, which automerge would resolve by hiding
// one side's entries.
//
// A document's create or replace ships no automerge body: the body is the
// automerge document holding the value's fields, built deterministically
// (sorted fields, the writer's actor, no timestamp), so every replica builds
// the same one, with the same change hash, when an edit first needs it; an
// object never edited never builds one. Nor are its fields cut before they are
// needed: a value that is a document whatever the schemas say (no white space
// outside strings, distinct member names everywhere) is only checked so at its
// create, and cut when an edit or a merge first needs its fields. The body's
// change and the edits of a history that is one branch (no concurrent edits; a
// never-edited body's first edit is one) are written in Go, byte for byte as
// automerge writes them (amchange.go, amhistory.go), so that such an edit loads
// no automerge document at the writer, nor at a replica that confirms the edit
// by writing it again to the same hash; a merge of concurrent edits loads them
// into automerge as its own (and a history automerge saved whole stays
// automerge's until its next rebase). A Doc stores its one-branch history's
// state with it (histstore.go), so an edit costs the same however many edits
// the history holds, and the changes edits in Go append (each packed with S2)
// are deflated together in batches (batch.go), never saved whole by automerge;
// a rebase of such a history (rebase.go) is made and taken without automerge
// too. A Doc reports what it costs in Go's heap and on automerge's C side, and
// can let its loaded automerge documents go (memory.go).
//
// Everything here is pure and deterministic: no goroutines, clocks or globals
// (but a pool of inflate buffers, chunk.go).
package crdt
