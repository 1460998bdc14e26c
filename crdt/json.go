package crdt

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
)

// A document is held as flat fields: for every object at JSON pointer P an entry
// orderPrefix+P listing its member names in written order, and for every other value
// an entry leafPrefix+P holding its exact JSON text. Arrays are leaves: they are
// replaced whole, never merged element by element.
const (
	orderPrefix = "#"
	leafPrefix  = "="
	orderSep    = "\x00" // cannot occur in JSON text, so it can join raw member names
	// newlineField marks a value written with one trailing newline, as Go's
	// json.Encoder (and so kube-apiserver's JSON storage encoding) writes them.
	newlineField = "\n"
)

// flatten returns the fields of value when value is a document: a JSON object written
// compactly (no white space between tokens outside arrays) with no duplicate member
// names. Exactly such values are rebuilt byte for byte by materialize; anything else
// is an opaque register, so a client always reads back the bytes it wrote.
func flatten(value []byte) (map[string]string, bool) {
	body, newline := bytes.CutSuffix(value, []byte("\n"))
	if len(body) < 2 || body[0] != '{' || !json.Valid(body) {
		return nil, false
	}
	p := flattener{src: body, fields: make(map[string]string)}
	if !p.object("") || p.pos != len(body) {
		return nil, false
	}
	if newline {
		p.fields[newlineField] = ""
	}
	return p.fields, true
}

type flattener struct {
	src    []byte
	pos    int
	fields map[string]string
}

func (p *flattener) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

// object parses the object at p.pos, which lives at JSON pointer path.
func (p *flattener) object(path string) bool {
	p.pos++ // '{'
	var names []string
	seen := make(map[string]bool)
	for p.peek() != '}' {
		if len(names) > 0 {
			if p.peek() != ',' {
				return false
			}
			p.pos++
		}
		if p.peek() != '"' {
			return false
		}
		start := p.pos
		p.skipString()
		name := string(p.src[start+1 : p.pos-1])
		if seen[name] || p.peek() != ':' {
			return false
		}
		seen[name] = true
		names = append(names, name)
		p.pos++
		child := path + "/" + escapeSegment(name)
		if p.peek() == '{' {
			if !p.object(child) {
				return false
			}
			continue
		}
		start = p.pos
		if !p.skipValue() {
			return false
		}
		p.fields[leafPrefix+child] = string(p.src[start:p.pos])
	}
	p.pos++ // '}'
	p.fields[orderPrefix+path] = strings.Join(names, orderSep)
	return true
}

// skipString moves past a string token; the input is already known to be valid JSON.
func (p *flattener) skipString() {
	p.pos++
	for p.src[p.pos] != '"' {
		if p.src[p.pos] == '\\' {
			p.pos++
		}
		p.pos++
	}
	p.pos++
}

// skipValue moves past a non-object value; white space is allowed only inside arrays.
func (p *flattener) skipValue() bool {
	switch c := p.peek(); {
	case c == '"':
		p.skipString()
	case c == '[':
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

func escapeSegment(name string) string {
	if !strings.ContainsAny(name, "~/") {
		return name
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

func unescapeSegment(seg string) string {
	if !strings.Contains(seg, "~") {
		return seg
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
}

// materialize rebuilds the JSON text of flat fields. It is total: fields merged from
// concurrent edits may disagree (a member both leaf and object, an order entry that
// lists a removed member or misses an added one) and are resolved deterministically:
// members appear in their recorded order, then unrecorded members in byte order; a
// member that is both an object and a leaf is an object.
func materialize(fields map[string]string) []byte {
	children := make(map[string][]string) // object path -> member segments seen
	addChild := func(parent, seg string) {
		children[parent] = append(children[parent], seg)
	}
	for k := range fields {
		if k == newlineField {
			continue
		}
		path := k[1:]
		// Register every ancestor, so a field whose parent entry was removed
		// concurrently is still reachable.
		for path != "" {
			i := strings.LastIndexByte(path, '/')
			addChild(path[:i], path[i+1:])
			path = path[:i]
		}
	}
	var buf bytes.Buffer
	writeObject(&buf, "", fields, children)
	if _, ok := fields[newlineField]; ok {
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func writeObject(buf *bytes.Buffer, path string, fields map[string]string, children map[string][]string) {
	present := make(map[string]bool, len(children[path]))
	for _, seg := range children[path] {
		present[seg] = true
	}
	var ordered []string
	if order, ok := fields[orderPrefix+path]; ok && order != "" {
		for _, name := range strings.Split(order, orderSep) {
			seg := escapeSegment(name)
			if present[seg] {
				ordered = append(ordered, seg)
				delete(present, seg)
			}
		}
	}
	rest := make([]string, 0, len(present))
	for seg := range present {
		rest = append(rest, seg)
	}
	sort.Strings(rest)
	ordered = append(ordered, rest...)

	buf.WriteByte('{')
	for i, seg := range ordered {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('"')
		buf.WriteString(unescapeSegment(seg))
		buf.WriteString(`":`)
		child := path + "/" + seg
		_, isObject := fields[orderPrefix+child]
		if leaf, isLeaf := fields[leafPrefix+child]; isLeaf && !isObject && len(children[child]) == 0 {
			buf.WriteString(leaf)
		} else {
			writeObject(buf, child, fields, children)
		}
	}
	buf.WriteByte('}')
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
