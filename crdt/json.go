package crdt

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// A document is held as flat fields: for every object at JSON pointer P an entry
// orderPrefix+P listing its member names in written order; for every array merged
// element by element (a list-map or a set, see kube.Node) an entry listPrefix+P
// listing its elements' names in order, each element living at P/name; and for
// every other value — a scalar, or a unit the schema makes atomic, such as an
// atomic list, an atomic struct, or an object's status — an entry leafPrefix+P
// holding its exact JSON text.
const (
	orderPrefix = "#"
	leafPrefix  = "="
	listPrefix  = "["
	orderSep    = "\x00" // cannot occur in JSON text, so it can join raw member names
	// newlineField marks a value written with one trailing newline, as Go's
	// json.Encoder (and so kube-apiserver's JSON storage encoding) writes them.
	newlineField = "\n"
)

// flatten returns the fields of value when value is a document: a JSON object written
// compactly (no white space between tokens outside leaves) with no duplicate member
// names. Exactly such values are rebuilt byte for byte by materialize; anything else
// is an opaque register, so a client always reads back the bytes it wrote. A
// Kubernetes object's fields follow its kind's merge units (as schemas finds them).
func flatten(value []byte, schemas Schemas) (map[string]string, bool) {
	if body, _ := bytes.CutSuffix(value, []byte("\n")); !json.Valid(body) {
		return nil, false
	}
	return flattenValid(value, schemas)
}

// flattenValid is flatten of a value known to be valid JSON: a Doc's value,
// which was flattened (or materialised from fields) when it became the value,
// and is stored checksummed. It skips the validation, an eighth of flatten's
// time. The parser indexes past the end of text that is not JSON: should it
// be handed such text all the same, it reports no document rather than fail.
func flattenValid(value []byte, schemas Schemas) (fields map[string]string, ok bool) {
	defer func() {
		if recover() != nil {
			fields, ok = nil, false
		}
	}()
	body, newline := bytes.CutSuffix(value, []byte("\n"))
	if len(body) < 2 || body[0] != '{' {
		return nil, false
	}
	p := newFlattener(body)
	if !p.object("", rootNode(body, schemas)) || p.pos != len(body) {
		return nil, false
	}
	if newline {
		p.fields[newlineField] = ""
	}
	return p.fields, true
}

// strictDocument reports whether value is a document whatever the schema: a
// JSON object (with at most one trailing newline) with no white space outside
// strings and distinct member names in every object. flatten cuts such a value
// under any schema (a schema only keeps parts of it whole, where flatten asks
// less); a value it rejects may still be a document, which flatten decides. It
// is a fraction of flatten's cost: it builds no fields.
func strictDocument(value []byte) bool {
	body, _ := bytes.CutSuffix(value, []byte("\n"))
	if len(body) < 2 || body[0] != '{' || !json.Valid(body) {
		return false
	}
	p := flattener{src: body, text: string(body)}
	return p.strict() && p.pos == len(body)
}

// strict moves past the valid JSON value at p.pos, reporting whether it and
// everything in it is compact with distinct member names (strictDocument).
func (p *flattener) strict() bool {
	switch p.peek() {
	case '{':
		p.pos++
		var names []string
		var seen distinct
		for {
			name, more, ok := p.nextName(names, &seen)
			if !ok || !more {
				return ok
			}
			names = append(names, name)
			if !p.strict() {
				return false
			}
		}
	case '[':
		p.pos++
		for first := true; p.peek() != ']'; first = false {
			if !first {
				if p.peek() != ',' {
					return false
				}
				p.pos++
			}
			if !p.strict() {
				return false
			}
		}
		p.pos++ // ']'
		return true
	default:
		return p.skipValue() // a string, or a scalar that stops short of white space
	}
}

// rootNode finds the schema of the object in body from its top-level apiVersion
// and kind (the zero Node when schemas does not know it).
func rootNode(body []byte, schemas Schemas) kube.Node {
	p := flattener{src: body, pos: 1}
	var apiVersion, kind []byte
	for p.peek() != '}' {
		if p.peek() == ',' {
			p.pos++
		}
		if p.peek() != '"' {
			return kube.Node{}
		}
		start := p.pos
		p.skipString()
		name := string(p.src[start+1 : p.pos-1])
		if p.peek() != ':' {
			return kube.Node{}
		}
		p.pos++
		start = p.pos
		if !p.skipValue() {
			return kube.Node{}
		}
		switch name {
		case "apiVersion":
			apiVersion = p.src[start:p.pos]
		case "kind":
			kind = p.src[start:p.pos]
		}
	}
	return kindNode(schemas, apiVersion, kind)
}

// kindNode returns the schema of a kind named by the JSON text of an object's
// apiVersion and kind members, as schemas finds it (nil: the built-in kinds').
func kindNode(schemas Schemas, apiVersion, kind []byte) kube.Node {
	av, ok1 := jsonString(apiVersion)
	k, ok2 := jsonString(kind)
	if !ok1 || !ok2 {
		return kube.Node{}
	}
	if schemas == nil {
		schemas = kube.Object
	}
	n, _ := schemas(av, k)
	return n
}

// jsonString returns the string the JSON text t holds (ok false: t is not a
// string).
func jsonString(t []byte) (string, bool) {
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' && bytes.IndexByte(t, '\\') < 0 {
		return string(t[1 : len(t)-1]), true // no escapes: the text between the quotes
	}
	var v string
	return v, json.Unmarshal(t, &v) == nil
}

// fieldsNode returns the schema of the object held as fields.
func fieldsNode(schemas Schemas, fields map[string]string) kube.Node {
	return kindNode(schemas, []byte(fields[leafPrefix+"/apiVersion"]), []byte(fields[leafPrefix+"/kind"]))
}

// maybeCustom reports whether the object held as fields names a kind that is
// not built in: some replica's schemas (a CRD's) may have cut it, so a shipped
// body of it is read rather than rebuilt from its value by the local schemas.
func maybeCustom(fields map[string]string) bool {
	_, av := fields[leafPrefix+"/apiVersion"]
	_, k := fields[leafPrefix+"/kind"]
	return av && k && !fieldsNode(nil, fields).Known()
}

// flattener cuts src into fields. Leaves and names are substrings of text,
// one copy of src, and keys are written in the flattener's keys, so that a
// field costs no allocation of its own.
type flattener struct {
	src    []byte
	text   string // src as a string
	pos    int
	fields map[string]string
	keys   *keyArena
}

// keyArena holds the keys of one flatten's fields, written one after another
// into a few large buffers: a field's key lives as long as the fields, and a
// string of its own each was a tenth of flatten's time, with the collector's
// share.
type keyArena struct{ buf []byte }

// key returns the concatenation of parts. Its bytes are never written again:
// later keys go after it, or into a new buffer once this one is full.
func (a *keyArena) key(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n == 0 {
		return ""
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, 512))
	}
	start := len(a.buf)
	for _, p := range parts {
		a.buf = append(a.buf, p...)
	}
	return unsafe.String(&a.buf[start], n)
}

// newFlattener returns a flattener of body, from its start.
func newFlattener(body []byte) flattener {
	// About one field per 25 bytes of a pod: sized so, the map seldom grows
	// (growing it was a twelfth of flatten's time). Capped, as the map is kept
	// with the Doc: an object of a few long fields would hold empty slots. Its
	// keys take about 1.3 times the body (a pod's).
	return flattener{src: body, text: string(body), fields: make(map[string]string, min(len(body)/24, 256)),
		keys: &keyArena{buf: make([]byte, 0, min(len(body)*3/2, 16<<10))}}
}

func (p *flattener) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

// object parses the object at p.pos, which lives at JSON pointer path and merges
// as n says.
func (p *flattener) object(path string, n kube.Node) bool {
	p.pos++ // '{'
	var names []string
	var seen distinct
	for {
		name, more, ok := p.nextName(names, &seen)
		if !ok {
			return false
		}
		if !more {
			break
		}
		names = append(names, name)
		if !p.member(p.keys.key(leafPrefix, path, "/", kube.EscapeSegment(name)), n.Member(name)) {
			return false
		}
	}
	p.fields[p.keys.key(orderPrefix, path)] = strings.Join(names, orderSep)
	return true
}

// nextName moves past the next member's name and colon in the object being
// read (its '{' passed; names holds the names read so far), or past the
// object's '}', when more is false. ok is false when the object is not
// compact there or the name was read before.
func (p *flattener) nextName(names []string, seen *distinct) (name string, more, ok bool) {
	if p.peek() == '}' {
		p.pos++
		return "", false, true
	}
	if len(names) > 0 {
		if p.peek() != ',' {
			return "", false, false
		}
		p.pos++
	}
	if p.peek() != '"' {
		return "", false, false
	}
	start := p.pos
	p.skipString()
	name = p.text[start+1 : p.pos-1]
	if !seen.add(name, names) || p.peek() != ':' {
		return "", false, false
	}
	p.pos++
	return name, true, true
}

// member parses the value at p.pos, which merges as n says and lives at the
// path leaf names (leafPrefix and the path: its key when it is a leaf).
func (p *flattener) member(leaf string, n kube.Node) bool {
	path := leaf[len(leafPrefix):]
	switch p.peek() {
	case '{':
		if n.Object() == kube.Granular {
			return p.object(path, n)
		}
	case '[':
		if shape, keys := n.Array(); shape != kube.Atomic && p.list(path, n, shape, keys) {
			return true
		}
	}
	start := p.pos
	if !p.skipValue() {
		return false
	}
	p.fields[leaf] = p.text[start:p.pos]
	return true
}

// list parses the array at p.pos as elements named by their keys (a list-map) or
// by themselves (a set). It fails, consuming nothing, when the array is not
// compact or its elements do not have distinct names; the caller then keeps the
// array as one leaf.
func (p *flattener) list(path string, n kube.Node, shape kube.Shape, keys []string) bool {
	start := p.pos
	el := n.Element()
	p.pos++
	var names []string
	var seen distinct
	for p.peek() != ']' {
		if len(names) > 0 {
			if p.peek() != ',' {
				p.undoList(start, path)
				return false
			}
			p.pos++
		}
		name, ok := p.element(path, el, shape, keys)
		if !ok || !seen.add(name, names) {
			p.undoList(start, path)
			return false
		}
		names = append(names, name)
	}
	p.pos++ // ']'
	p.fields[p.keys.key(listPrefix, path)] = strings.Join(names, orderSep)
	return true
}

// undoList forgets a list at path that list could not take: its elements'
// fields (no other member's fields lie under path: segments are escaped),
// and the position it reached.
func (p *flattener) undoList(start int, path string) {
	p.pos = start
	for k := range p.fields {
		if len(k) > len(path)+1 && k[1:len(path)+1] == path && k[len(path)+1] == '/' {
			delete(p.fields, k)
		}
	}
}

// distinct tells whether a name was seen before among names: by scanning them
// while few, then by a set.
type distinct map[string]bool

// add reports whether name is not among names (the names added so far), and
// records it.
func (s *distinct) add(name string, names []string) bool {
	const scan = 16
	if len(names) < scan {
		return !slices.Contains(names, name)
	}
	if *s == nil {
		*s = make(distinct, 2*scan)
		for _, n := range names {
			(*s)[n] = true
		}
	}
	if (*s)[name] {
		return false
	}
	(*s)[name] = true
	return true
}

// element parses one element of a list at path and returns its name.
func (p *flattener) element(path string, el kube.Node, shape kube.Shape, keys []string) (string, bool) {
	if shape == kube.Set {
		start := p.pos
		if c := p.peek(); c == '{' || c == '[' || !p.skipValue() {
			return "", false
		}
		name := p.text[start:p.pos]
		p.fields[p.keys.key(leafPrefix, path, "/", kube.EscapeSegment(name))] = name
		return name, true
	}
	if p.peek() != '{' {
		return "", false
	}
	if name, ok := p.keyName(el, keys); ok {
		// Named before it is parsed: its fields go straight to their places.
		return name, p.object(p.keys.key(path, "/", kube.EscapeSegment(name)), el)
	}
	obj := flattener{src: p.src, text: p.text, pos: p.pos, fields: make(map[string]string), keys: p.keys}
	if !obj.object("", el) {
		return "", false
	}
	p.pos = obj.pos
	name, ok := elementName(obj.fields, "", el, keys)
	if !ok {
		return "", false
	}
	prefix := path + "/" + kube.EscapeSegment(name)
	for k, v := range obj.fields {
		p.fields[p.keys.key(k[:1], prefix, k[1:])] = v
	}
	return name, true
}

// keyName names the list-map element whose object starts at p.pos, as
// elementName would once it is parsed, by scanning its members for key fields
// that are scalars (whose leaf is their text). ok is false when it cannot say
// so simply: a key field is a container or absent without a default, or the
// object is not compact.
func (p *flattener) keyName(el kube.Node, keys []string) (string, bool) {
	texts := make([]string, len(keys))
	scan := flattener{src: p.src, text: p.text, pos: p.pos + 1}
	for scan.peek() != '}' {
		if scan.pos > p.pos+1 {
			if scan.peek() != ',' {
				return "", false
			}
			scan.pos++
		}
		if scan.peek() != '"' {
			return "", false
		}
		start := scan.pos
		scan.skipString()
		name := scan.src[start+1 : scan.pos-1]
		if scan.peek() != ':' {
			return "", false
		}
		scan.pos++
		start = scan.pos
		if !scan.skipValue() {
			return "", false
		}
		for i, k := range keys {
			if string(name) != k {
				continue
			}
			if c := scan.src[start]; c == '{' || c == '[' || texts[i] != "" {
				return "", false
			}
			texts[i] = scan.text[start:scan.pos]
		}
	}
	for i, k := range keys {
		if texts[i] != "" {
			continue
		}
		var ok bool
		if texts[i], ok = el.KeyDefault(k); !ok {
			return "", false
		}
	}
	return strings.Join(texts, ","), true
}

// elementName names the list-map element at path in fields by the JSON text of
// its key fields (a key it omits by its default), joined by commas. ok is false
// when a key is absent and has no default: such an element is not addressable.
func elementName(fields map[string]string, path string, el kube.Node, keys []string) (string, bool) {
	texts := make([]string, len(keys))
	for i, k := range keys {
		var ok bool
		if texts[i], ok = fields[leafPrefix+path+"/"+kube.EscapeSegment(k)]; !ok {
			if texts[i], ok = el.KeyDefault(k); !ok {
				return "", false
			}
		}
	}
	return strings.Join(texts, ","), true
}

// skipString moves past a string token; the input is already known to be valid JSON.
func (p *flattener) skipString() {
	p.pos++
	// Most strings hold no escapes: find the closing quote at once.
	if end := bytes.IndexByte(p.src[p.pos:], '"'); end >= 0 && bytes.IndexByte(p.src[p.pos:p.pos+end], '\\') < 0 {
		p.pos += end + 1
		return
	}
	for p.src[p.pos] != '"' {
		if p.src[p.pos] == '\\' {
			p.pos++
		}
		p.pos++
	}
	p.pos++
}

// skipValue moves past a value; white space is allowed only inside arrays and
// objects kept whole.
func (p *flattener) skipValue() bool {
	switch c := p.peek(); {
	case c == '"':
		p.skipString()
	case c == '[' || c == '{':
		depth := 0
		for {
			switch p.src[p.pos] {
			case '"':
				p.skipString()
				continue
			case '[', '{':
				depth++
			case ']', '}':
				depth--
			}
			p.pos++
			if depth == 0 {
				return true
			}
		}
	default:
		start := p.pos
		for p.pos < len(p.src) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(p.src[p.pos])) {
			p.pos++
		}
		return p.pos > start
	}
	return true
}

// materialize rebuilds the JSON text of flat fields. It is total: fields merged from
// concurrent edits may disagree (a member both leaf and object, an order entry that
// lists a removed member or misses an added one) and are resolved deterministically:
// members and elements appear in their recorded order, then unrecorded ones in byte
// order; a place that is an object is an object, else one that is a list is a list,
// else a leaf; entries left under a place whose own entry was removed concurrently
// form the object or list its schema says it is. A list-map element that lost a
// key field (removed at one site while another edited one of its fields) is
// dropped: it is no longer addressable, so the removal wins; a list-map left with
// no elements by that is dropped too.
func materialize(fields map[string]string, schemas Schemas) []byte {
	m := materializer{fields: fields, children: make(map[string][]string)}
	for k := range fields {
		if k == newlineField {
			continue
		}
		path := k[1:]
		// Register every ancestor, so a field whose parent entry was removed
		// concurrently is still reachable.
		for path != "" {
			i := strings.LastIndexByte(path, '/')
			m.children[path[:i]] = append(m.children[path[:i]], path[i+1:])
			path = path[:i]
		}
	}
	var buf bytes.Buffer
	m.object(&buf, "", fieldsNode(schemas, fields))
	if _, ok := fields[newlineField]; ok {
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

type materializer struct {
	fields   map[string]string
	children map[string][]string // object or list path -> member segments seen
}

func (m *materializer) value(buf *bytes.Buffer, path string, n kube.Node) {
	_, isObject := m.fields[orderPrefix+path]
	_, isList := m.fields[listPrefix+path]
	leaf, isLeaf := m.fields[leafPrefix+path]
	shape, _ := n.Array()
	switch {
	case isObject:
		m.object(buf, path, n)
	case isList:
		m.list(buf, path, n)
	case isLeaf && len(m.children[path]) == 0:
		buf.WriteString(leaf)
	case shape == kube.ListMap || shape == kube.Set:
		m.list(buf, path, n)
	default:
		m.object(buf, path, n)
	}
}

func (m *materializer) object(buf *bytes.Buffer, path string, n kube.Node) {
	buf.WriteByte('{')
	i := 0
	for _, seg := range m.ordered(path, m.fields[orderPrefix+path]) {
		name := kube.UnescapeSegment(seg)
		if m.vanished(path+"/"+seg, n.Member(name)) {
			continue
		}
		if i++; i > 1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		buf.WriteString(name)
		buf.WriteString(`":`)
		m.value(buf, path+"/"+seg, n.Member(name))
	}
	buf.WriteByte('}')
}

func (m *materializer) list(buf *bytes.Buffer, path string, n kube.Node) {
	buf.WriteByte('[')
	el := n.Element()
	i := 0
	for _, seg := range m.ordered(path, m.fields[listPrefix+path]) {
		if !m.keyed(path, seg, n, el) {
			continue
		}
		if i++; i > 1 {
			buf.WriteByte(',')
		}
		m.value(buf, path+"/"+seg, el)
	}
	buf.WriteByte(']')
}

// keyed reports whether the element seg of the list at path still has the key
// fields it is named by (each present, or absent with its default).
func (m *materializer) keyed(path, seg string, n, el kube.Node) bool {
	shape, keys := n.Array()
	if shape != kube.ListMap {
		return true
	}
	name, ok := elementName(m.fields, path+"/"+seg, el, keys)
	return ok && kube.EscapeSegment(name) == seg
}

// vanished reports whether path is a list-map that was removed, leaving only
// edits of elements that are no longer addressable.
func (m *materializer) vanished(path string, n kube.Node) bool {
	if shape, _ := n.Array(); shape != kube.ListMap {
		return false
	}
	for _, p := range []string{orderPrefix, listPrefix, leafPrefix} {
		if _, ok := m.fields[p+path]; ok {
			return false
		}
	}
	el := n.Element()
	for _, seg := range m.children[path] {
		if m.keyed(path, seg, n, el) {
			return false
		}
	}
	return true
}

// ordered returns the segments of the members of path: those named in order (raw
// names joined by orderSep) in that order, then the others in byte order.
func (m *materializer) ordered(path, order string) []string {
	present := make(map[string]bool, len(m.children[path]))
	for _, seg := range m.children[path] {
		present[seg] = true
	}
	var out []string
	if order != "" {
		for _, name := range strings.Split(order, orderSep) {
			seg := kube.EscapeSegment(name)
			if present[seg] {
				out = append(out, seg)
				delete(present, seg)
			}
		}
	}
	rest := make([]string, 0, len(present))
	for seg := range present {
		rest = append(rest, seg)
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// diffFields lists what turns old into new: the entries to set and to remove.
func diffFields(old, new map[string]string) (set map[string]string, del []string) {
	set = make(map[string]string)
	for k, v := range new {
		if ov, ok := old[k]; !ok || ov != v {
			set[k] = v
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			del = append(del, k)
		}
	}
	sort.Strings(del)
	return set, del
}
