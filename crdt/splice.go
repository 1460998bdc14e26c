package crdt

import (
	"bytes"
	"slices"
	"strings"
)

// spliceLeaves returns the value a linear edit that sets only leaves makes of
// d's value, without rebuilding it from the fields: d.value with each leaf's
// text replaced in place, and true; or false, and the caller materializes.
// It is exactly materialize(fields) for the fields after the edit, and those
// fields are exactly what flatten cuts back from it (the Doc stays clean),
// whenever it returns true:
//
//   - d is clean, so its value holds every leaf's text verbatim, and
//     materialize rebuilds the value byte for byte;
//   - the edit deletes nothing and every field it sets is a leaf the value
//     holds, whose old text occurs once in the value (so where it lies is
//     known), outside any list (an element's text or keys name it), and not
//     the apiVersion or kind (which choose the schema);
//   - each new text is one value flatten reads as a leaf there, as it read
//     the old one: a scalar for a scalar, an object for an object (a leaf
//     object is one the schema keeps whole). A list for a list is not
//     spliced: a list that could not be cut may be cut once rewritten.
//
// Rebuilding and cutting back the value was a third of a replica's CPU while
// merging other sites' status updates (sites benchmark, edit workload).
func (d *Doc) spliceLeaves(set map[string]string, del []string) ([]byte, bool) {
	if !d.clean || d.lazy || d.fields == nil || len(del) > 0 || len(set) == 0 {
		return nil, false
	}
	type span struct {
		at, end int
		text    string
	}
	spans := make([]span, 0, len(set))
	for k, text := range set {
		old, ok := d.fields[k]
		if !ok || !d.spliceable(k, old, text) {
			return nil, false
		}
		oldText := []byte(old)
		at := bytes.Index(d.value, oldText)
		if at < 0 || bytes.Contains(d.value[at+1:], oldText) {
			return nil, false
		}
		spans = append(spans, span{at, at + len(old), text})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.at - b.at })
	out := make([]byte, 0, len(d.value)+64)
	from := 0
	for _, s := range spans {
		out = append(append(out, d.value[from:s.at]...), s.text...)
		from = s.end
	}
	return append(out, d.value[from:]...), true
}

// spliceable reports whether field k, a leaf holding old, may be rewritten in
// place to hold text (spliceLeaves).
func (d *Doc) spliceable(k, old, text string) bool {
	path, isLeaf := strings.CutPrefix(k, leafPrefix)
	if !isLeaf || path == "/apiVersion" || path == "/kind" {
		return false
	}
	for path != "" { // every enclosing object up to the root
		path = path[:max(strings.LastIndexByte(path, '/'), 0)]
		if _, inList := d.fields[listPrefix+path]; inList {
			return false
		}
	}
	if old == "" || text == "" || leafClass(old) != leafClass(text) || leafClass(text) == '[' {
		return false
	}
	return oneValue(text)
}

// leafClass is what flatten makes of a value by its first byte: an object
// ('{'), a list ('['), or a scalar (0).
func leafClass(text string) byte {
	if c := text[0]; c == '{' || c == '[' {
		return c
	}
	return 0
}

// oneValue reports whether flatten reads text, in a member's place, as one
// value that ends where text does.
func oneValue(text string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false // an object or string left open: flatten reads past it
		}
	}()
	p := flattener{src: []byte(text), text: text}
	return p.skipValue() && p.pos == len(text)
}
