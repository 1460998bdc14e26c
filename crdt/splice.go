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
// (valid: known to be valid JSON, see jsonForm), found from d's fields and
// the parts of value that differ from d's value, and true; or false, and the
// caller cuts value whole. It is what spliceLeaves does the other way round,
// for a local write: a pod's status update rewrites one leaf (the status, a
// unit of its own), an object's update through kube-apiserver a few members
// (an annotation, the managed fields' times, a container), and cutting the
// whole new value and diffing it with the old was a fifth of a replica's CPU
// under such writes.
//
// The two values are read side by side (changedParts), from the root object
// down through every object flatten cuts member by member whose members
// have the same names in the same order in both, and every list-map whose
// elements have the same keys in the same order. Flatten cuts a member's
// value by its path, its schema and its text alone, so a member whose text
// is the same in both has the same fields, and one whose text differs has
// the fields flatten cuts from its new text alone: the old member's fields
// (its path's and those below it) make way for those. The apiVersion and
// kind, which choose the schema, must not change; only built-in kinds take
// this path, so that the schemas d's fields were cut by and those value
// would be cut by agree.
func (d *Doc) editedFields(value []byte, valid bool) (map[string]string, bool) {
	if d.kind != Document || d.deleted || !d.clean {
		return nil, false
	}
	d.cutFields()
	if d.fields == nil {
		return nil, false
	}
	parts, ok := changedParts(d.value, value, fieldsNode(nil, d.fields), valid)
	if !ok || len(parts.paths) == 0 {
		return nil, false
	}
	fields := make(map[string]string, len(d.fields)+len(parts.fields)) // sized: never grown
	for k, v := range d.fields {
		if !parts.holds(k) {
			fields[k] = v
		}
	}
	maps.Copy(fields, parts.fields)
	return fields, true
}

// parts are the members of a value that changedParts found rewritten.
type parts struct {
	paths  []string          // the members' paths
	fields map[string]string // flatten's fields of their new texts
}

// holds reports whether field key k belongs to one of the members: it is a
// member's own field (a leaf, a list's names, an object's member order) or
// one below it.
func (p parts) holds(k string) bool {
	if k == "" {
		return false
	}
	at := k[1:] // past the field kind (leafPrefix, orderPrefix, listPrefix)
	for _, path := range p.paths {
		if rest, ok := strings.CutPrefix(at, path); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// changedParts reads old (a document's value, of a built-in kind whose
// schema is n) and new side by side, and returns the members new rewrites
// (see editedFields), each cut by flatten; ok is false when new is not read
// as flatten would read it, rewrites the apiVersion or the kind, or changes
// the root object's member names. When !valid, every rewritten member's text
// must be valid JSON.
func changedParts(old, new []byte, n kube.Node, valid bool) (found parts, ok bool) {
	defer func() {
		if recover() != nil {
			found, ok = parts{}, false // new ended inside a string or an object
		}
	}()
	oldBody, oldNewline := bytes.CutSuffix(old, []byte("\n"))
	newBody, newNewline := bytes.CutSuffix(new, []byte("\n"))
	if oldNewline != newNewline || len(oldBody) < 2 || oldBody[0] != '{' || len(newBody) < 2 || newBody[0] != '{' {
		return parts{}, false
	}
	if !n.Known() {
		return parts{}, false
	}
	w := partsWalk{old: flattener{src: oldBody}, new: flattener{src: newBody}, valid: valid, found: parts{fields: make(map[string]string, 16)}}
	if !w.object("", n) || w.old.pos != len(oldBody) || w.new.pos != len(newBody) {
		return parts{}, false
	}
	for _, path := range w.found.paths {
		if path == "/apiVersion" || path == "/kind" {
			return parts{}, false
		}
	}
	return w.found, true
}

// partsWalk reads two values side by side (changedParts).
type partsWalk struct {
	old, new flattener
	valid    bool
	found    parts
}

// withText gives f, one of the walk's values, its text (flattener.text), which
// cutting and naming list elements read: made once, when first needed.
func (f *flattener) withText() *flattener {
	if f.text == "" {
		f.text = string(f.src)
	}
	return f
}

// object reads the objects at old.pos and new.pos, which live at path and
// merge as n says, past their ends; false when their member names differ.
func (w *partsWalk) object(path string, n kube.Node) bool {
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
		if !w.member(path, n, name) {
			return false
		}
	}
}

// member reads the values at old.pos and new.pos of member name of the
// object at path parent, which merges as parentNode says, past their ends
// (value).
func (w *partsWalk) member(parent string, parentNode kube.Node, name string) bool {
	return w.value(func() (string, kube.Node) {
		return parent + "/" + kube.EscapeSegment(name), parentNode.Member(name)
	})
}

// value reads the member values at old.pos and new.pos past their ends: the
// same text, or an object read member by member, or a list read element by
// element, or else the new text cut. place returns where they live and how
// they merge, asked only when the texts differ.
func (w *partsWalk) value(place func() (string, kube.Node)) bool {
	oldAt, newAt := w.old.pos, w.new.pos
	if same, ok := w.skipSame('}'); same || !ok {
		return ok // most values: the same text, read once
	}
	oldEnd := w.old.pos
	if !w.new.skipValue() {
		return false
	}
	newEnd := w.new.pos
	path, n := place()
	var within func() bool // reads them part by part from their starts
	switch c := w.old.src[oldAt]; {
	case c != w.new.src[newAt]:
	case c == '{' && n.Object() == kube.Granular:
		within = func() bool { return w.object(path, n) }
	case c == '[':
		if shape, keys := n.Array(); shape == kube.ListMap {
			within = func() bool { return w.listMap(path, n.Element(), keys) }
		}
	}
	if within != nil {
		mark := len(w.found.paths)
		w.old.pos, w.new.pos = oldAt, newAt
		if within() {
			return true
		}
		w.forget(mark) // their members or elements differ: cut whole
		w.old.pos, w.new.pos = oldEnd, newEnd
	}
	return w.cut(path, n, newAt, newEnd)
}

// listMap reads the lists at old.pos and new.pos, which live at path and
// whose elements merge as el says, keyed by keys, past their ends; false
// unless both name the same elements in the same order, simply (keyName),
// and distinctly (else flatten keeps the list whole).
func (w *partsWalk) listMap(path string, el kube.Node, keys []string) bool {
	w.old.withText()
	w.new.withText()
	w.old.pos++
	w.new.pos++
	var names []string
	var seen distinct
	for {
		if w.old.peek() == ']' || w.new.peek() == ']' {
			return w.both(']')
		}
		if len(names) > 0 && !w.both(',') {
			return false
		}
		if w.old.peek() != '{' || w.new.peek() != '{' {
			return false
		}
		name, ok := w.old.keyName(el, keys)
		if newName, newOK := w.new.keyName(el, keys); !ok || !newOK || name != newName || !seen.add(name, names) {
			return false
		}
		names = append(names, name)
		if !w.element(path+"/"+kube.EscapeSegment(name), el) {
			return false
		}
	}
}

// element reads the list-map elements at old.pos and new.pos, which live at
// path and merge as el says, past their ends: the same text, or objects
// read member by member (flatten cuts an element so, whatever el says of
// objects); false otherwise, and the list is cut whole.
func (w *partsWalk) element(path string, el kube.Node) bool {
	oldAt := w.old.pos
	if same, ok := w.skipSame(']'); same || !ok {
		return ok
	}
	w.old.pos = oldAt
	return w.object(path, el)
}

// skipSame moves past the value at old.pos and reports whether the value at
// new.pos is the same text (followed by ',' or closer, which ends the object
// or list it is in), and if so moves past it too; ok is false when old.pos
// holds no value.
func (w *partsWalk) skipSame(closer byte) (same, ok bool) {
	oldAt := w.old.pos
	if !w.old.skipValue() {
		return false, false
	}
	text := w.old.src[oldAt:w.old.pos]
	if end := w.new.pos + len(text); end < len(w.new.src) && (w.new.src[end] == ',' || w.new.src[end] == closer) &&
		bytes.Equal(w.new.src[w.new.pos:end], text) {
		w.new.pos = end
		return true, true
	}
	return false, true
}

// forget drops the members found from the mark-th on, and their fields.
func (w *partsWalk) forget(mark int) {
	dropped := parts{paths: w.found.paths[mark:]}
	for k := range w.found.fields {
		if dropped.holds(k) {
			delete(w.found.fields, k)
		}
	}
	w.found.paths = w.found.paths[:mark]
}

// cut adds flatten's fields of the member value new holds at [at, end),
// which lives at path and merges as n says.
func (w *partsWalk) cut(path string, n kube.Node, at, end int) bool {
	if !w.valid && !json.Valid(w.new.src[at:end]) {
		return false
	}
	if end-at > len(w.new.src)/4 && cutApart(n, w.new.src[at]) {
		// Most of the value's fields are in it (a pod's containers): the
		// caller cuts the whole value, which costs less than the walk and
		// this member's cut together.
		return false
	}
	p := flattener{src: w.new.src, text: w.new.withText().text, pos: at, fields: w.found.fields, keys: &keyArena{}}
	if !p.member(leafPrefix+path, n) || p.pos != end {
		return false
	}
	w.found.paths = append(w.found.paths, path)
	return true
}

// cutApart reports whether flatten cuts a value starting with c, which
// merges as n says, into fields of its own: an object it cuts member by
// member or a list it cuts by its elements.
func cutApart(n kube.Node, c byte) bool {
	switch c {
	case '{':
		return n.Object() == kube.Granular
	case '[':
		shape, _ := n.Array()
		return shape != kube.Atomic
	}
	return false
}

// name reads the member names at old.pos and new.pos, which must be the
// same text.
func (w *partsWalk) name() (string, bool) {
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
func (w *partsWalk) both(c byte) bool {
	if w.old.peek() != c || w.new.peek() != c {
		return false
	}
	w.old.pos++
	w.new.pos++
	return true
}
