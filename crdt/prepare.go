package crdt

import "github.com/rhizome-kv/rhizome/crdt/kube"

// Prepared is a value cut into a document's fields ahead of its Put
// (PrepareValue), so that the cost of reading it is paid by another goroutine
// than the writer's. It is used once, by PutPrepared.
type Prepared struct {
	json   []byte            // the value's JSON form (jsonForm)
	valid  bool              // json is known to be valid JSON (jsonForm)
	fields map[string]string // json cut by the schemas given; nil once used
	isDoc  bool
	// lazy says json is a document whatever the schemas (strictDocument)
	// and was not cut: a create's Doc cuts its fields when first needed.
	lazy bool
	// builtin says the schemas given cut json as the built-in kinds' do (a
	// create's body is cut so, see newBody): its kind is built in, or not
	// one the schemas know.
	builtin bool
}

// PrepareValue cuts value as a Put to a Doc whose schemas are schemas will:
// its JSON form, and whether and how it is a document. It reads nothing but
// its arguments.
func PrepareValue(value []byte, schemas Schemas) *Prepared {
	p := &Prepared{}
	p.json, p.valid = jsonForm(value)
	return p.cutAhead(schemas)
}

// PrepareValue is the package's PrepareValue for a Put to d: the fields of
// the members the value leaves as d's are d's, and only the others are cut
// (editedFields). d must not be in use elsewhere: it may cut its own fields
// (see Prepare).
func (d *Doc) PrepareValue(value []byte, schemas Schemas) *Prepared {
	p := &Prepared{}
	p.json, p.valid = jsonForm(value)
	if fields, ok := d.editedFields(p.json, p.valid); ok {
		p.fields, p.isDoc, p.builtin = fields, true, true
		return p
	}
	return p.cutAhead(schemas)
}

// cutAhead cuts p.json by schemas (PrepareValue) and returns p.
func (p *Prepared) cutAhead(schemas Schemas) *Prepared {
	if p.valid {
		p.fields, p.isDoc = flattenValid(p.json, schemas)
	} else {
		p.fields, p.isDoc = flatten(p.json, schemas)
	}
	p.setBuiltin(schemas)
	return p
}

// PrepareNew is PrepareValue for a Put to a key that holds no document (a
// create, or a register's replace): a value that is a document whatever the
// schemas (strictDocument) is not cut, as the Doc it starts cuts its fields
// only when an edit or a merge first needs them. Put to a document all the
// same, the value is cut then.
func PrepareNew(value []byte, schemas Schemas) *Prepared {
	p := &Prepared{}
	p.json, p.valid = jsonForm(value)
	if !strictDocument(p.json) {
		return p.cutAhead(schemas) // its JSON form made once
	}
	p.isDoc, p.lazy = true, true
	p.setBuiltin(schemas)
	return p
}

// setBuiltin sets p.builtin from p.json and the schemas it is cut by.
func (p *Prepared) setBuiltin(schemas Schemas) {
	if body := p.json; p.isDoc && len(body) > 0 && body[0] == '{' {
		p.builtin = rootNode(body, nil).Known() || !rootNode(body, schemas).Known()
	} else {
		p.builtin = true
	}
}

// jsonForm is the value a Put writes: kube-apiserver's protobuf encoding
// becomes the document its JSON encoding would have written, so both
// encodings merge alike. valid says the form is JSON encoding/json wrote,
// which flatten need not check again.
func jsonForm(value []byte) (form []byte, valid bool) {
	if j, isKube := kube.ToJSON(value); isKube {
		return j, true
	}
	return value, false
}

// cut returns flatten(value, schemas), taking p's fields when p was cut
// ahead (with those schemas: see PutPrepared).
func (p *Prepared) cut(value []byte, schemas Schemas) (map[string]string, bool) {
	if !p.holdsCut() {
		return flatten(value, schemas)
	}
	fields := p.fields
	p.fields = nil
	return fields, p.isDoc
}

// holdsCut reports whether p holds what cut answers for its value: its
// fields, or that it is no document. When not (p nil, a create's value not
// cut ahead, or its fields taken already), cut flattens the value.
func (p *Prepared) holdsCut() bool { return p != nil && (p.fields != nil || !p.isDoc) }

// cutBuiltin returns flatten(value, nil), taking p's fields when p was cut
// ahead alike.
func (p *Prepared) cutBuiltin(value []byte) (map[string]string, bool) {
	if p == nil || !p.builtin {
		return flatten(value, nil)
	}
	return p.cut(value, nil)
}
