package crdt

import (
	"bytes"
	"strings"
)

// Incarnations, and the rules the model checker calls.
//
// Arrive is the rule that decides, change by change, which incarnation a key
// holds: Doc.Apply calls it for every change, and the model checker
// (checker/consistency) calls it to merge whole states, so both run one
// implementation of it. It is generic over how the caller writes a Stamp.
// ActorOrder is the order of the sites' automerge actors, by which automerge
// breaks ties between concurrent writes of one field. Both are pure.

// Ordered is a stamp: a total order of writes across sites (a Lamport
// counter, ties broken by site), whose zero value names no write.
type Ordered[S any] interface {
	comparable
	Compare(S) int
	IsZero() bool
}

// Fate is what a change does to the incarnation a key holds (Arrive).
type Fate uint8

const (
	// Dropped: nothing changes. The change is of an older incarnation (one
	// that ended here, or a concurrent create that lost), or of the held
	// incarnation after its delete (a delete beats every concurrent update
	// of its incarnation).
	Dropped Fate = iota + 1
	// Replaces: the change creates a newer incarnation, which replaces the
	// held one whole, body and all (the held one ended, or is a concurrent
	// create that lost: delete and create in one).
	Replaces
	// Edits: the change is of the held, live incarnation: an edit of its
	// body, a duplicate of its create, or its delete (OpDelete ends it).
	Edits
	// Early: the change builds on a newer incarnation whose create this
	// replica has not applied (ErrMissingDependency).
	Early
)

// Arrive decides what a change (op, of incarnation inc) does to a key that
// holds incarnation held (zero: never created), ended when held was deleted.
// conflict reports a concurrent create resolved by it: the change is a
// create that loses to the live or ended incarnation held (Dropped: held won,
// inc lost), or a create that wins over the live incarnation held (Replaces:
// inc won, held lost). It is pure.
//
// The rules: the greater incarnation wins whole; a change of an older one
// changes nothing; a delete ends its incarnation for good. Under causal
// delivery a create that followed the delete of the held incarnation arrives
// after that delete, so replacing a live incarnation is always a concurrent
// create.
func Arrive[S Ordered[S]](held S, ended bool, op Op, inc S) (fate Fate, conflict bool) {
	switch cmp := inc.Compare(held); {
	case cmp < 0:
		return Dropped, op == OpCreate
	case cmp > 0:
		if op != OpCreate {
			return Early, false
		}
		return Replaces, !held.IsZero() && !ended
	case ended:
		return Dropped, false
	}
	return Edits, false
}

// sameBody reports whether c, a create, starts the body d shows: the two
// sides of a concurrent create are then equal (sites that made the same
// deterministic write, such as an allocation repair), and the one kept
// whole loses nothing of the other, so no conflict is recorded.
func (d *Doc) sameBody(c Change) bool {
	v := c.Data
	if c.Kind == Document {
		v = c.Value
	}
	value, live := d.Value()
	return live && d.kind == c.Kind && bytes.Equal(value, v)
}

// ActorOrder compares the automerge actors of sites a and b (-1, 0, +1):
// automerge orders concurrent operations on one field by their counters, then
// by actor, and a site's actor derives from its name (actorID). The model
// checker ranks its sites by it.
func ActorOrder(a, b string) int { return strings.Compare(actorID(a), actorID(b)) }
