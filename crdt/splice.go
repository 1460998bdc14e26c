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
// one leaf rewritten: d's fields with that leaf's new text, and true; or
// false, and the caller cuts value whole. It is what spliceLeaves does the
// other way round, for a local write: a status update of a pod rewrites one
// leaf (the status, a unit of its own), and cutting the whole new value and
// diffing it with the old was a fifth of a replica's CPU under such writes.
//
// The leaf is found from the bytes value and d's value share at their start
// and at their end: the changed bytes between must lie within one member's
// value in d's value, reached through objects flatten cuts member by member
// and no list. The member's new text is then the bytes of value in its
// place, and value is d's value with that text for the old; it is a leaf
// flatten cuts alike when spliceLeaves could have made it (spliceable): of
// the same class as the old text, one value, outside any list, neither the
// apiVersion nor the kind. Only built-in kinds take this path, so that the
// schemas d's fields were cut by and those value would be cut by agree.
func (d *Doc) editedFields(value []byte, valid bool) (map[string]string, bool) {
	if d.kind != Document || d.deleted || !d.clean {
		return nil, false
	}
	d.cutFields()
	if d.fields == nil {
		return nil, false
	}
	key, text, ok := changedLeaf(d.value, value)
	if !ok {
		return nil, false
	}
	old, held := d.fields[key]
	if !held || !d.spliceable(key, old, text) || (!valid && !json.Valid([]byte(text))) {
		return nil, false
	}
	fields := maps.Clone(d.fields)
	fields[key] = text
	return fields, true
}

// changedLeaf returns the field key of the one member value of old (a
// document's value, a built-in kind's) that holds every byte new changes,
// and the text new holds in its place; ok is false when no member's value
// holds them all, when they are in a list, or when old is not a built-in
// kind. The text is not checked: see editedFields.
func changedLeaf(old, new []byte) (key, text string, ok bool) {
	defer func() {
		if recover() != nil {
			key, text, ok = "", "", false // old is a document's value: not reached
		}
	}()
	oldBody, oldNewline := bytes.CutSuffix(old, []byte("\n"))
	newBody, newNewline := bytes.CutSuffix(new, []byte("\n"))
	if oldNewline != newNewline || len(oldBody) < 2 || oldBody[0] != '{' {
		return "", "", false
	}
	n := rootNode(oldBody, nil)
	if !n.Known() {
		return "", "", false
	}
	from := commonPrefix(oldBody, newBody)
	to := len(oldBody) - commonSuffix(oldBody[from:], newBody[from:]) // oldBody[from:to] changed
	grow := len(newBody) - len(oldBody)
	p := flattener{src: oldBody}
	path := ""
	for { // p.pos is at the '{' of an object flatten cuts member by member
		p.pos++
		var name string
		var at, end int
		for {
			if p.peek() == ',' {
				p.pos++
			}
			if p.peek() != '"' {
				return "", "", false // the object ended before the change
			}
			start := p.pos
			p.skipString()
			name = string(oldBody[start+1 : p.pos-1])
			p.pos++ // ':'
			at = p.pos
			if !p.skipValue() {
				return "", "", false
			}
			end = p.pos
			if at <= from && to <= end {
				break
			}
			if end >= from {
				return "", "", false // the change starts in this member and ends past it
			}
		}
		member := n.Member(name)
		segment := path + "/" + kube.EscapeSegment(name)
		switch oldBody[at] {
		case '[':
			return "", "", false
		case '{':
			if member.Object() == kube.Granular {
				p.pos, path, n = at, segment, member
				continue
			}
		}
		if end+grow < at {
			return "", "", false
		}
		return leafPrefix + segment, string(newBody[at : end+grow]), true
	}
}

// commonPrefix returns how many bytes a and b start with alike.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// commonSuffix returns how many bytes a and b end with alike.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[len(a)-1-i] != b[len(b)-1-i] {
			return i
		}
	}
	return n
}
