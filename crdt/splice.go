package crdt

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/rhizome-kv/rhizome/crdt/kube"
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

// editedFields returns the fields flatten cuts from value, a Put's JSON form
// (valid: known to be valid JSON, see jsonForm), when value is d's value with
// some leaves rewritten: d's fields with those leaves' new texts, and true;
// or false, and the caller cuts value whole. It is what spliceLeaves does the
// other way round, for a local write: a pod's status update rewrites one
// leaf (the status, a unit of its own), an object's update through
// kube-apiserver a few (an annotation, the managed fields' times), and
// cutting the whole new value and diffing it with the old was a fifth of a
// replica's CPU under such writes.
//
// The two values are read side by side (changedLeaves): every object on the
// way must have the same members in the same order, each either the same
// text in both, or an object flatten cuts member by member in both (read in
// turn), or a leaf of the same class in both (scalar, object kept whole, or
// list kept whole by its schema), never in a list flatten cuts; then value
// is d's value with those leaves' texts for the old, and flatten cuts it
// into d's fields with those texts, as the walk reads the values as flatten
// does. The apiVersion and kind, which choose the schema, must not change;
// only built-in kinds take this path, so that the schemas d's fields were
// cut by and those value would be cut by agree.
func (d *Doc) editedFields(value []byte, valid bool) (map[string]string, bool) {
	if d.kind != Document || d.deleted || !d.clean {
		return nil, false
	}
	d.cutFields()
	if d.fields == nil {
		return nil, false
	}
	set, ok := changedLeaves(d.value, value)
	if !ok || len(set) == 0 {
		return nil, false
	}
	for k, text := range set {
		if _, held := d.fields[k]; !held || k == leafPrefix+"/apiVersion" || k == leafPrefix+"/kind" ||
			(!valid && !json.Valid([]byte(text))) {
			return nil, false
		}
	}
	fields := maps.Clone(d.fields)
	maps.Copy(fields, set)
	return fields, true
}

// changedLeaves returns the leaves new rewrites in old (a document's value,
// of a built-in kind), by field key, with their new texts; ok is false when
// new differs from old otherwise, or is not read as flatten reads old (see
// editedFields). The texts are not checked to be valid JSON.
func changedLeaves(old, new []byte) (set map[string]string, ok bool) {
	defer func() {
		if recover() != nil {
			set, ok = nil, false // new ended inside a string or an object
		}
	}()
	oldBody, oldNewline := bytes.CutSuffix(old, []byte("\n"))
	newBody, newNewline := bytes.CutSuffix(new, []byte("\n"))
	if oldNewline != newNewline || len(oldBody) < 2 || oldBody[0] != '{' || len(newBody) < 2 || newBody[0] != '{' {
		return nil, false
	}
	n := rootNode(oldBody, nil)
	if !n.Known() {
		return nil, false
	}
	w := leafWalk{old: flattener{src: oldBody}, new: flattener{src: newBody}, set: map[string]string{}}
	if !w.object("", n) || w.old.pos != len(oldBody) || w.new.pos != len(newBody) {
		return nil, false
	}
	return w.set, true
}

// leafWalk reads two values side by side (changedLeaves).
type leafWalk struct {
	old, new flattener
	set      map[string]string
}

// object reads the objects at old.pos and new.pos, which live at path and
// merge as n says, past their ends.
func (w *leafWalk) object(path string, n kube.Node) bool {
	w.old.pos++
	w.new.pos++
	for first := true; ; first = false {
		if w.old.peek() == '}' || w.new.peek() == '}' {
			return w.both('}')
		}
		if !first && !w.both(',') {
			return false
		}
		name, ok := w.name()
		if !ok || !w.both(':') {
			return false
		}
		if !w.member(path+"/"+kube.EscapeSegment(name), n.Member(name)) {
			return false
		}
	}
}

// member reads the member values at old.pos and new.pos, which live at path
// and merge as n says, past their ends.
func (w *leafWalk) member(path string, n kube.Node) bool {
	oldAt, newAt := w.old.pos, w.new.pos
	oldClass, newClass := w.old.peek(), w.new.peek()
	if !w.old.skipValue() || !w.new.skipValue() {
		return false
	}
	oldText, newText := w.old.src[oldAt:w.old.pos], w.new.src[newAt:w.new.pos]
	if bytes.Equal(oldText, newText) {
		return true
	}
	switch {
	case leafClass(string(oldClass)) != leafClass(string(newClass)):
		return false
	case oldClass == '{' && n.Object() == kube.Granular:
		w.old.pos, w.new.pos = oldAt, newAt
		return w.object(path, n)
	case oldClass == '[':
		if shape, _ := n.Array(); shape != kube.Atomic {
			return false // a list flatten cuts: its elements are named by their keys
		}
	}
	if c := w.new.peek(); c != ',' && c != '}' {
		return false // a scalar flatten would not read as one
	}
	w.set[leafPrefix+path] = string(newText)
	return true
}

// name reads the member names at old.pos and new.pos, which must be the
// same text.
func (w *leafWalk) name() (string, bool) {
	if w.old.peek() != '"' || w.new.peek() != '"' {
		return "", false
	}
	oldAt, newAt := w.old.pos, w.new.pos
	w.old.skipString()
	w.new.skipString()
	name := w.old.src[oldAt+1 : w.old.pos-1]
	return string(name), bytes.Equal(name, w.new.src[newAt+1:w.new.pos-1])
}

// both moves past c at old.pos and new.pos, reporting whether both are c.
func (w *leafWalk) both(c byte) bool {
	if w.old.peek() != c || w.new.peek() != c {
		return false
	}
	w.old.pos++
	w.new.pos++
	return true
}
