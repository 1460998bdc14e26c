package kube

import "strings"

// Concurrent edits.
//
// When an object's history ends in concurrent edits (heads), the field merge
// alone keeps neither of two of Kubernetes' rules, and Concurrent applies
// them. It is generic over how the caller holds an object's fields (crdt's
// flat fields, the model checker's slots), so that crdt and the checker run
// one implementation of these rules; it reads nothing but what HeadRules
// gives it, and is pure.

// HeadRules are the operations Concurrent needs on F, one way of holding an
// object's fields. Every function must be pure and deterministic.
type HeadRules[F any] struct {
	// Generation returns f's metadata.generation, and whether f is an
	// object whose generation a merge moves (a built-in kind with a
	// generation and a spec). A missing generation is 0.
	Generation func(f F) (int64, bool)
	// WithGeneration returns f with metadata.generation set to g, leaving f
	// itself unchanged.
	WithGeneration func(f F, g int64) F
	// SameSpec reports whether a and b hold the same spec.
	SameSpec func(a, b F) bool
	// Valid reports whether the object's API accepts f (nil: every object).
	// Concurrent calls it once, with the object the merge would show.
	Valid func(f F) bool
}

// Concurrent returns the object shown for merged, the field merge of n > 1
// concurrent edits, and which edit it is: -1 for the merge, else the index
// of the edit shown whole. head(i) returns the fields as the i-th edit's
// writer left them, the edits ordered by their writes' stamps (the last is
// the Lamport-latest write); Concurrent calls it only when a rule needs it,
// and returns its error.
//
// The rules: an object whose merged spec differs from the spec some edit's
// writer saw gets metadata.generation one past the greatest of the edits'
// generations, so that status.observedGeneration sends the controllers that
// observed that edit to reconcile again; and when r.Valid rejects the result,
// the object shown is the Lamport-latest edit's whole object (its own
// generation), and the other edits are the merge's conflicts.
func Concurrent[F any](merged F, n int, head func(i int) (F, error), r *HeadRules[F]) (F, int, error) {
	if _, moves := r.Generation(merged); moves {
		var top int64
		differs := false
		for i := range n {
			h, err := head(i)
			if err != nil {
				return merged, -1, err
			}
			g, _ := r.Generation(h)
			top = max(top, g)
			differs = differs || !r.SameSpec(merged, h)
		}
		if differs {
			merged = r.WithGeneration(merged, top+1)
		}
	}
	if r.Valid == nil || r.Valid(merged) {
		return merged, -1, nil
	}
	win, err := head(n - 1)
	if err != nil {
		return merged, -1, err
	}
	return win, n - 1, nil
}

// Unit returns the JSON pointer of the merge unit that holds the value at
// path, a JSON pointer below n (list elements named as crdt names them: a
// list-map element by its key fields' JSON text joined by commas, a set
// element by its own JSON text; "/" and "~" escaped as in JSON pointers):
// path itself when every place on the way merges member by member or element
// by element, else the first place on the way that merges whole (an atomic
// struct, map or list, or a unit Kubernetes' rules make, such as status).
func (n Node) Unit(path string) string {
	end := 0 // path[:end] is the place n describes
	for end < len(path) {
		if n.Object() == Atomic || n.atom.List != nil && !n.granularList() {
			return path[:end]
		}
		seg, rest, more := strings.Cut(path[end+1:], "/")
		if n.atom.List != nil {
			n = n.Element()
		} else {
			n = n.Member(UnescapeSegment(seg))
		}
		if !more {
			break
		}
		end = len(path) - len(rest) - 1
	}
	return path
}

// granularList reports whether the list here merges element by element.
func (n Node) granularList() bool {
	shape, _ := n.Array()
	return shape != Atomic
}

// EscapeSegment escapes a name as one segment of a JSON pointer (RFC 6901).
func EscapeSegment(name string) string {
	if !strings.ContainsAny(name, "~/") {
		return name
	}
	// '~' first, so the '~' that escapes '/' is not escaped again.
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// UnescapeSegment returns the name one segment of a JSON pointer stands for.
func UnescapeSegment(seg string) string {
	if !strings.Contains(seg, "~") {
		return seg
	}
	// "~1" first, so "~01" is "~1" (RFC 6901, section 4).
	return strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
}
