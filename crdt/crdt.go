package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/automerge/automerge-go"
)

// Kind is what a body holds.
type Kind uint8

const (
	Register Kind = iota + 1 // opaque bytes, replaced whole
	Document                 // a JSON object merged field by field
)

// Op is what a Change does.
type Op uint8

const (
	OpCreate  Op = iota + 1 // start incarnation Inc with a body
	OpReplace               // start a newer body epoch of incarnation Inc
	OpUpdate                // edit the fields of body epoch Epoch (automerge change)
	OpDelete                // end incarnation Inc
	OpRebase                // restart the history of body epoch From as body epoch Epoch (see Rebase)
)

// Change is one write to one key, as shipped between sites.
type Change struct {
	Op    Op
	Inc   Stamp // the incarnation written
	Epoch Stamp // create, replace: the new body's epoch; update: the epoch edited
	Kind  Kind  // create, replace: the body's kind
	// Data is a register's value, an edit's automerge change, a rebase's new
	// body; empty for a document's create or replace, whose body every replica
	// builds from Value (newDocAM).
	Data []byte
	// Value is, for a document's create, replace or rebase, its materialised value,
	// so that a replica knows it without reading the automerge document.
	Value []byte
	// Rebase only: the epoch whose history restarts, the heads of that history the
	// new body holds, the rebaser's change-log position (see Doc.Prior), and the
	// sites whose concurrent edits of the old history are kept (none: all).
	From  Stamp
	Cut   []automerge.ChangeHash
	Mark  uint64
	Sites []string
}

// ErrMissingDependency is returned by Apply for a change that builds on a change this
// replica has not seen; the caller must deliver changes in causal order.
var ErrMissingDependency = errors.New("crdt: change depends on an unseen change")

// maxConflicts bounds how many losing incarnations a Doc remembers.
const maxConflicts = 16

// Doc is the state of one key at one site. The zero Doc is a key never written.
// A Doc is not safe for concurrent use.
type Doc struct {
	inc       Stamp
	deleted   bool
	epoch     Stamp
	kind      Kind
	value     []byte            // the materialised value
	fields    map[string]string // documents: the flat fields, kept equal to am
	clean     bool              // documents: fields == flatten(value), so value can rebuild them
	lazy      bool              // documents: fields not cut yet; they are flattenValid(value, nil) (cutFields)
	edits     int               // documents: field edits applied since the body's epoch began
	savedLen  int               // documents: length of amBytes when it was last saved whole or batched (or as a body's first changes)
	am        *automerge.Doc    // documents: nil until needed
	built     *builtBody        // documents: the body loadBody built, while never saved
	amBytes   []byte            // documents: saved form (a save or a body's first changes, then incremental chunks and batches of them), always current
	prior     *prior            // documents: the epoch the current one rebased, while edits of it may arrive
	conflicts []Conflict        // the latest maxConflicts conflicts seen here
	recorded  uint64            // conflicts ever recorded here
	validate  Validator         // not state: given by the caller (SetValidator)
	schemas   Schemas           // not state: given by the caller (SetSchemas, DecodeDoc)
	churn     int               // not state: C-side bytes of automerge documents made and dropped since Unload
	hist      *history          // not state: the one-branch history last read (see history)
	// not state: the history the Doc's record held (histstore.go), until read
	storedHist []byte
}

// Value returns the materialised value and whether the key exists.
func (d *Doc) Value() ([]byte, bool) {
	if d.inc.IsZero() || d.deleted {
		return nil, false
	}
	return d.value, true
}

// Incarnation returns the winning incarnation's stamp (zero if never created).
func (d *Doc) Incarnation() Stamp { return d.inc }

// Kind returns the kind of the current body (0 when the key does not exist).
func (d *Doc) Kind() Kind {
	if _, ok := d.Value(); !ok {
		return 0
	}
	return d.kind
}

// Digest summarises the visible state: replicas that have applied the same changes
// have equal digests.
func (d *Doc) Digest() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%t|%s|", d.inc, d.deleted, d.epoch)
	v, _ := d.Value()
	h.Write(v)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Put writes a whole value as site st.Site at Lamport time st and returns the change
// to ship. A put of the value already held returns ok=false: nothing to ship.
func (d *Doc) Put(value []byte, st Stamp) (c Change, ok bool, err error) {
	form, _ := jsonForm(value)
	return d.put(form, nil, st)
}

// PutPrepared is Put of a value PrepareValue cut with the Doc's schemas. A
// Prepared is used once.
func (d *Doc) PutPrepared(p *Prepared, st Stamp) (c Change, ok bool, err error) {
	return d.put(p.json, p, st)
}

// put is Put of value in its JSON form, cut ahead when p is not nil.
func (d *Doc) put(value []byte, p *Prepared, st Stamp) (c Change, ok bool, err error) {
	if _, exists := d.Value(); !exists {
		body, kind, cut := newBody(value, p)
		c = Change{Op: OpCreate, Inc: st, Epoch: st, Kind: kind, Data: body}
		if kind == Document {
			c.Value = value
		}
		_, err = d.apply(c, cut)
		return c, err == nil, err
	}
	d.promote()
	if fields, isDoc := d.cutPut(value, p); isDoc && d.kind == Document {
		return d.update(value, fields, st)
	}
	if d.kind == Register && bytes.Equal(d.value, value) {
		return Change{}, false, nil
	}
	body, kind, cut := newBody(value, p)
	c = Change{Op: OpReplace, Inc: d.inc, Epoch: st, Kind: kind, Data: body}
	if kind == Document {
		c.Value = value
	}
	_, err = d.apply(c, cut)
	return c, err == nil, err
}

// cutPut returns the fields of value, put to d in its JSON form: those cut
// ahead (p), else those editedFields finds, else flatten's.
func (d *Doc) cutPut(value []byte, p *Prepared) (map[string]string, bool) {
	if !p.holdsCut() {
		if fields, ok := d.editedFields(value, p != nil && p.valid); ok {
			return fields, true
		}
	}
	return p.cut(value, d.schemas)
}

// PutRegister writes value whole, as an opaque register whatever it holds,
// and returns the change to ship; ok is false when the register already holds
// those bytes. It is Put for a replica no other replica merges with: such a
// replica has no concurrent write to merge field by field, so it neither cuts
// values into fields nor keeps their history. A document it replaces ends
// there; a later Put of a document promotes the register when it holds one
// (promote), else replaces it.
func (d *Doc) PutRegister(value []byte, st Stamp) (c Change, ok bool, err error) {
	_, exists := d.Value()
	switch {
	case !exists:
		c = Change{Op: OpCreate, Inc: st, Epoch: st, Kind: Register, Data: value}
	case d.kind == Register && bytes.Equal(d.value, value):
		return Change{}, false, nil
	default:
		c = Change{Op: OpReplace, Inc: d.inc, Epoch: st, Kind: Register, Data: value}
	}
	_, err = d.apply(c, cutBody{})
	return c, err == nil, err
}

// promote makes a register holding a document (a replica alone writes every
// value as a register: PutRegister) the document body a create of that value
// at the register's epoch makes (newBody), before the document is edited.
// Every replica promotes such a register alike, so an edit of it made at one
// applies at all, and concurrent edits merge field by field. Any other Doc is
// left as it is.
func (d *Doc) promote() {
	if _, exists := d.Value(); !exists || d.kind != Register {
		return
	}
	form, _ := jsonForm(d.value)
	if fields, isDoc := flatten(form, nil); isDoc {
		// A document's body with no automerge bytes cannot fail to set.
		_ = d.setBody(Change{Epoch: d.epoch, Kind: Document, Value: form}, cutBody{fields: fields})
	}
}

// Delete ends the current incarnation. ok is false when the key does not exist.
func (d *Doc) Delete() (c Change, ok bool, err error) {
	if _, exists := d.Value(); !exists {
		return Change{}, false, nil
	}
	c = Change{Op: OpDelete, Inc: d.inc}
	_, err = d.Apply(c)
	return c, err == nil, err
}

// Edits returns how many field edits the document's history holds: what Rebase
// would drop.
func (d *Doc) Edits() int { return d.edits }

// update expresses a document write as the field edits it makes.
func (d *Doc) update(value []byte, fields map[string]string, st Stamp) (Change, bool, error) {
	d.cutFields()
	set, del := diffFields(d.fields, fields)
	if len(set) == 0 && len(del) == 0 && bytes.Equal(value, d.value) {
		return Change{}, false, nil
	}
	if len(set)+len(del) > 0 && encodable(set) {
		if h, ok := d.history(); ok {
			if c, ok := d.linearEdit(h, value, fields, set, del, st); ok {
				return c, true, nil
			}
		}
	}
	// With no field to write, the value may still differ from the one shown
	// (merge rules at concurrent heads): an empty change that follows every head
	// makes the merged fields the value.
	am, err := d.automerge(st.Site)
	if err != nil {
		return Change{}, false, err
	}
	if err := writeFields(am, set, del); err != nil {
		return Change{}, false, err
	}
	// The change carries its write's stamp, which orders concurrent edits
	// (see mergeRules).
	hash, err := am.Commit(st.String(), commitOptions())
	if err != nil {
		return Change{}, false, fmt.Errorf("crdt: commit: %w", err)
	}
	ch, err := am.Change(hash)
	if err != nil {
		return Change{}, false, fmt.Errorf("crdt: read change: %w", err)
	}
	// The local replica already holds the edit, which follows every head: only
	// the cached views move.
	d.fields, d.value, d.clean = fields, value, true
	data := ch.Save()
	d.appendSaved(am, data)
	d.edits++
	return Change{Op: OpUpdate, Inc: d.inc, Epoch: d.epoch, Data: data}, true, nil
}

// history returns the document's history when it is one branch of field
// writes (amhistory.go): the one carried forward or stored with the Doc
// (histstore.go), else read from a body never saved, or from a saved form of
// changes that ends with the fields held. It keeps what it read until the Doc
// moves on.
func (d *Doc) history() (*history, bool) {
	d.cutFields()
	if d.kind != Document || d.deleted || d.fields == nil {
		return nil, false
	}
	if h := d.currentHistory(); h != nil {
		return h, !h.none
	}
	var h *history
	switch fields := map[string]string(nil); {
	case len(d.amBytes) == 0 && d.edits == 0:
		if encodable(d.fields) {
			h = bodyHistory(d.fields, d.epoch.Site)
		}
	default:
		if h, fields, _ = readHistory(d.amBytes); h != nil && !maps.Equal(fields, d.fields) {
			h = nil
		}
	}
	if h == nil {
		h = &history{none: true}
	}
	h.epoch, h.edits, h.saved = d.epoch, d.edits, len(d.amBytes)
	d.hist = h
	return h, !h.none
}

// linearEdit is update of a one-branch history: the edit's change is written
// in Go (amhistory.go), as automerge would write it, so no automerge document
// is loaded here; one loaded before is let go (it lacks the edit). ok is
// false, with nothing changed, when the saved form would outgrow its bound
// (see took): automerge then writes the edit and saves the document whole.
func (d *Doc) linearEdit(h *history, value []byte, fields, set map[string]string, del []string, st Stamp) (Change, bool) {
	c := h.edit(set, del, actorID(st.Site), st.String())
	edit, hash := c.encode()
	if !d.took(h, c, edit, hash) {
		return Change{}, false
	}
	d.fields, d.value, d.clean = fields, value, true
	return Change{Op: OpUpdate, Inc: d.inc, Epoch: d.epoch, Data: edit}, true
}

// took moves the saved form and the history past edit, the encoding of c
// (whose hash is hash), an edit of history h. The edit is appended packed,
// and the edits appended are deflated together once they outgrow their bound
// (bounded), so the saved form grows by a fraction of an edit's change (and
// the history, carried forward and stored, is not read from it again). ok is
// false, with nothing changed, when the saved form cannot be read.
func (d *Doc) took(h *history, c *amChange, edit []byte, hash automerge.ChangeHash) (ok bool) {
	saved := d.amBytes
	if h.body != nil {
		// The saved form of a body's change and its first edit is the two,
		// each packed (what appendSaved would make of them).
		saved = h.body
	}
	saved, err := appendCompressed(saved, edit, chunkPackedChange)
	if err == nil && h.body == nil {
		saved, err = d.bounded(saved)
	}
	switch {
	case err != nil:
		return false
	case h.body != nil:
		d.savedLen = len(saved)
	}
	if d.am != nil {
		d.churn += max(len(d.amBytes), len(d.value)) * nativePerSavedByte // as NativeBytes counts it
	}
	h.take(c, hash)
	h.body = nil
	d.amBytes, d.am, d.built = saved, nil, nil
	d.edits++
	h.edits, h.saved = d.edits, len(d.amBytes)
	return true
}

// bounded returns saved, a saved form just appended to, as it is while the
// changes appended after its compacted part stay within a quarter of it (and
// 256 bytes), else with those changes batched (batch.go), which are then
// part of its compacted part. (A quarter, not appendSaved's half: batching
// costs a fraction of a whole save.)
func (d *Doc) bounded(saved []byte) ([]byte, error) {
	if len(saved) <= d.savedLen+d.savedLen/4+256 {
		return saved, nil
	}
	saved, err := batched(saved)
	d.savedLen = len(saved)
	return saved, err
}

// Apply merges a change, local or remote, into the replica and reports whether the
// visible value changed. Applying a change twice is a no-op.
func (d *Doc) Apply(c Change) (changed bool, err error) { return d.apply(c, cutBody{}) }

// apply is Apply given, for a document's create or replace written here, what
// newBody knew of its value's fields (the zero cutBody: nothing).
func (d *Doc) apply(c Change, cut cutBody) (changed bool, err error) {
	fate, conflict := Arrive(d.inc, d.deleted, c.Op, c.Inc)
	switch fate {
	case Dropped:
		// An older incarnation (one this replica saw end, or a concurrent
		// create that lost: only the latter is news), or an ended one.
		if conflict && !d.sameBody(c) {
			d.recordConflict(Conflict{Kind: ConcurrentCreate, Winner: d.inc, Loser: c.Inc})
		}
		return false, nil
	case Early:
		return false, ErrMissingDependency
	case Replaces:
		if conflict && !d.sameBody(c) {
			d.recordConflict(Conflict{Kind: ConcurrentCreate, Winner: c.Inc, Loser: d.inc})
		}
		if err := d.setBody(c, cut); err != nil {
			return false, err
		}
		d.inc, d.deleted = c.Inc, false
		return true, nil
	}
	switch c.Op {
	case OpDelete:
		// Forget the body: what was merged into it before the delete arrived
		// differs between replicas and must not show in their state.
		d.deleted = true
		d.epoch, d.kind, d.clean = Stamp{}, 0, false
		d.value, d.fields, d.am, d.amBytes, d.prior, d.lazy = nil, nil, nil, nil, nil, false
		return true, nil
	case OpReplace:
		if c.Epoch.Compare(d.epoch) <= 0 {
			return false, nil
		}
		return true, d.setBody(c, cut)
	case OpRebase:
		return d.applyRebase(c)
	case OpUpdate:
		if c.Epoch == d.epoch {
			d.promote()
		}
		if d.prior != nil && c.Epoch == d.prior.epoch {
			return d.applyPriorEdit(c.Data)
		}
		switch cmp := c.Epoch.Compare(d.epoch); {
		case cmp < 0:
			return false, nil
		case cmp > 0 || d.kind != Document:
			return false, ErrMissingDependency
		}
		return d.applyEdit(c.Data)
	}
	return false, nil // a duplicate create
}

// cutFields cuts the fields of a document whose cutting was put off (lazy):
// a body never shipped, cut by the built-in kinds' schemas.
func (d *Doc) cutFields() {
	if d.lazy {
		d.fields, _ = flattenValid(d.value, nil)
		d.lazy = false
	}
}

// setBody starts the body c carries, given what newBody knew of a document's
// fields when it was written here. A body not shipped that is a document
// whatever the schemas (strictDocument) has its fields cut when first needed
// (cutFields).
func (d *Doc) setBody(c Change, cut cutBody) error {
	d.epoch, d.kind, d.edits = c.Epoch, c.Kind, 0
	d.am, d.amBytes, d.fields, d.prior, d.lazy = nil, nil, nil, nil, false
	switch c.Kind {
	case Register:
		d.value = bytes.Clone(c.Data)
		return nil
	case Document:
		// A fresh body is exactly its value's fields: no need to read automerge
		// until an edit arrives. A body not shipped was cut by the built-in
		// kinds' schemas (newBody); a rebase's body of a kind that is not
		// built in (a custom resource) is read, as its CRD's schema cut it.
		fields := cut.fields
		schemas, ok := d.schemas, fields != nil
		if len(c.Data) == 0 {
			schemas = nil
			if !ok && (cut.strict || strictDocument(c.Value)) {
				// Cut by the built-in kinds' schemas whatever they say:
				// cut when an edit or a merge first needs the fields.
				d.value, d.lazy, d.clean = bytes.Clone(c.Value), true, true
				return nil
			}
		}
		if !ok {
			fields, ok = flatten(c.Value, schemas)
		}
		if ok && (len(c.Data) == 0 || !maybeCustom(fields)) {
			d.value, d.fields, d.amBytes, d.clean = bytes.Clone(c.Value), fields, bytes.Clone(c.Data), true
			return nil
		}
		am, err := automerge.Load(c.Data)
		if err != nil {
			return fmt.Errorf("crdt: load document: %w", err)
		}
		d.am, d.amBytes = am, bytes.Clone(c.Data)
		return d.refresh(nil)
	}
	return fmt.Errorf("crdt: unknown body kind %d", c.Kind)
}

func (d *Doc) applyEdit(raw []byte) (bool, error) {
	if h, ok := d.history(); ok {
		if changed, ok := d.applyLinearEdit(h, raw); ok {
			return changed, nil
		}
	}
	am, err := d.automerge("")
	if err != nil {
		return false, err
	}
	if _, err := missingDeps(am, raw); err != nil {
		return false, err
	}
	// The fields held now are the fields at the one head (if one): merge rules
	// need not read them again should that head stay one of several.
	var known map[automerge.ChangeHash]map[string]string
	if hs := am.Heads(); len(hs) == 1 {
		known = map[automerge.ChangeHash]map[string]string{hs[0]: d.fields}
	}
	if err := am.LoadIncremental(raw); err != nil {
		return false, fmt.Errorf("crdt: apply change: %w", err)
	}
	before := d.value
	d.appendSaved(am, raw)
	d.edits++
	if err := d.refresh(known); err != nil {
		return false, err
	}
	return !bytes.Equal(before, d.value), nil
}

// applyLinearEdit applies an edit that continues the one-branch history h
// without automerge, when it is one linearEdit writes (as another replica's
// update does): the fields it sets and deletes, read from it and confirmed by
// writing it again to the same hash, are what automerge would merge. ok is
// false, with nothing changed, for any other change (a concurrent edit, or
// one of another form), which automerge then merges.
func (d *Doc) applyLinearEdit(h *history, raw []byte) (changed, ok bool) {
	refs, err := readChanges(raw)
	if err != nil || len(refs) != 1 { // its dependencies are checked by its hash
		return false, false
	}
	theirs, ok := parseChange(refs[0].contents)
	if !ok {
		return false, false
	}
	set, del, ok := theirs.fieldEdit()
	if !ok {
		return false, false
	}
	c := h.edit(set, del, theirs.actor, theirs.message)
	edit, hash := c.encode()
	if hash != refs[0].hash || !d.took(h, c, edit, hash) {
		return false, false
	}
	fields := maps.Clone(d.fields)
	maps.Copy(fields, set)
	for _, k := range del {
		delete(fields, k)
	}
	before := d.value
	if value, ok := d.spliceLeaves(set, del); ok {
		d.fields, d.value = fields, value // still clean
		return !bytes.Equal(before, d.value), true
	}
	d.fields, d.value = fields, materialize(fields, d.schemas)
	flat, _ := flattenValid(d.value, d.schemas)
	d.clean = maps.Equal(flat, d.fields)
	return !bytes.Equal(before, d.value), true
}

// appendSaved keeps the saved form current at the cost of the new changes, not of
// the whole document: it appends them (chunks, the form automerge saves changes
// in) as they were made or received, and only when those outgrow half the last
// full save (chunks carry headers a full save shares, and histories are bounded
// by rebases, so a full save stays cheap) saves whole. A body never saved (see
// newBody) is saved as its changes, the body's and the new ones, packed
// (packChanges), which costs a fraction of a full save, is about as long,
// and is what every replica holding them saves alike.
// Chunks a replica already held may be appended again: loading the saved form
// ignores them.
func (d *Doc) appendSaved(am *automerge.Doc, chunks []byte) {
	if len(d.amBytes) == 0 && d.edits == 0 {
		// The body's change was saved (and packed) when it was built, so
		// that a Doc readied ahead of its edit (Prepare) paid for it then:
		// packed change by change, the two parts make the same bytes.
		var body []byte
		if b := d.built; b != nil && b.am == am {
			body = b.saved
		}
		d.built = nil
		saved, err := packChanges(am.SaveIncremental())
		if err == nil {
			d.amBytes = append(body, saved...)
			d.savedLen = len(d.amBytes)
			return
		}
	}
	if len(d.amBytes) > 0 {
		d.amBytes = append(d.amBytes, chunks...)
		if len(d.amBytes) <= d.savedLen+d.savedLen/2+256 {
			return
		}
	}
	d.amBytes = am.Save()
	d.savedLen = len(d.amBytes)
}

// refresh re-reads the fields from automerge and re-materialises the value: the
// merged fields, and where the history ends in concurrent edits, the rules a
// field merge alone does not keep (mergeRules). known holds the fields at heads
// the caller already knows (nil: none).
func (d *Doc) refresh(known map[automerge.ChangeHash]map[string]string) error {
	fields, err := readFields(d.am)
	if err != nil {
		return err
	}
	d.fields, d.lazy = fields, false
	d.value = materialize(d.fields, d.schemas)
	if hs := d.am.Heads(); len(hs) > 1 {
		if err := d.mergeRules(hs, known); err != nil {
			return err
		}
	}
	flat, _ := flattenValid(d.value, d.schemas)
	d.clean = maps.Equal(flat, d.fields)
	return nil
}

// readFields reads the flat fields of an automerge document.
func readFields(am *automerge.Doc) (map[string]string, error) {
	vals, err := am.RootMap().Values()
	if err != nil {
		return nil, fmt.Errorf("crdt: read document: %w", err)
	}
	fields := make(map[string]string, len(vals))
	for k, v := range vals {
		if v.Kind() == automerge.KindStr {
			fields[k] = v.Str()
		}
	}
	return fields, nil
}

// automerge returns the loaded document, acting as site when site is not empty.
func (d *Doc) automerge(site string) (*automerge.Doc, error) {
	if d.am == nil {
		am, err := d.loadBody()
		if err != nil {
			return nil, err
		}
		d.am = am
	}
	if site != "" && d.am.ActorID() != actorID(site) {
		if err := d.am.SetActorID(actorID(site)); err != nil {
			return nil, fmt.Errorf("crdt: set actor: %w", err)
		}
	}
	return d.am, nil
}

// Prepare readies what an edit written as site needs: the history of a
// one-branch document, which the edit is written from in Go (see
// linearEdit), or else the automerge document, so that the caller pays for it
// ahead of the edit, for instance in another goroutine than the one that will
// edit: the Doc must not be in use elsewhere meanwhile. It changes nothing the
// Doc holds (Encode is the same).
// A Doc that is not a live document has nothing to prepare.
func (d *Doc) Prepare(site string) error {
	if d.Kind() != Document {
		return nil
	}
	if _, ok := d.history(); ok {
		return nil
	}
	_, err := d.automerge(site)
	return err
}

// loadBody loads the automerge document from its saved form, or, for a body
// never edited, which is never saved (see newBody), builds it from the epoch's
// fields as its writer did.
func (d *Doc) loadBody() (*automerge.Doc, error) {
	d.cutFields()
	if len(d.amBytes) == 0 && d.edits == 0 && d.fields != nil {
		am, body, err := buildBody(d.fields, d.epoch.Site)
		if err != nil {
			return nil, err
		}
		// Save the body's change now (see appendSaved); what SaveIncremental
		// returns next is only what follows it.
		saved, err := packChanges(body)
		if err != nil {
			return nil, err
		}
		d.built = &builtBody{am: am, saved: saved}
		return am, nil
	}
	saved, err := unbatched(d.amBytes)
	if err != nil {
		return nil, err
	}
	am, err := automerge.Load(saved)
	if err != nil {
		return nil, fmt.Errorf("crdt: load document: %w", err)
	}
	return am, nil
}

// builtBody is a never-saved body loadBody built, and its change as
// appendSaved saves it.
type builtBody struct {
	am    *automerge.Doc
	saved []byte
}

// newBody returns the body a create or replace ships: the value itself for a
// register; nothing for a document, whose body is the automerge document holding
// its value's fields, which every replica builds alike when it first needs it
// (Doc.automerge, newDocAM): most objects are never edited, and building it costs
// more than the rest of a write. Its fields are cut by the built-in kinds'
// schemas, which every replica knows alike (unlike a CRD's, which replicas may
// learn at different times): a custom resource's first edit cuts it by its
// CRD's. A document's fields are returned too, so the writer cuts them once.
//
// p, when not nil, is value cut ahead (PrepareValue), or found plainly a
// document and left to cut when first needed (PrepareNew).
func newBody(value []byte, p *Prepared) ([]byte, Kind, cutBody) {
	if p != nil && p.lazy {
		return nil, Document, cutBody{strict: true}
	}
	fields, isDoc := p.cutBuiltin(value)
	if !isDoc {
		return bytes.Clone(value), Register, cutBody{}
	}
	return nil, Document, cutBody{fields: fields}
}

// cutBody is what the writer of a new body knows of its fields (newBody):
// cut by the built-in kinds' schemas (fields), or a document whatever the
// schemas, left to cut when first needed (strict). The zero cutBody knows
// nothing: a replica applying a shipped body finds out itself (setBody).
type cutBody struct {
	fields map[string]string
	strict bool
}

// newDocAM builds a fresh automerge document holding fields, deterministically
// (sorted fields, site's actor, no timestamp): built anywhere, it saves to the
// same bytes and its change has the same hash.
func newDocAM(fields map[string]string, site string) (*automerge.Doc, error) {
	am := automerge.New()
	if err := am.SetActorID(actorID(site)); err != nil {
		return nil, fmt.Errorf("crdt: set actor: %w", err)
	}
	if err := writeFields(am, fields, nil); err != nil {
		return nil, err
	}
	if _, err := am.Commit("", commitOptions()); err != nil {
		return nil, fmt.Errorf("crdt: commit: %w", err)
	}
	return am, nil
}

// buildBody returns newDocAM's document and its change saved (uncompressed):
// written in Go and loaded in one call where it can be (amchange.go), which
// costs a fraction of writing its fields one by one.
func buildBody(fields map[string]string, site string) (*automerge.Doc, []byte, error) {
	if !encodable(fields) {
		am, err := newDocAM(fields, site)
		if err != nil {
			return nil, nil, err
		}
		return am, am.SaveIncremental(), nil
	}
	body, _ := bodyChange(fields, site).encode()
	am, err := automerge.Load(body)
	if err != nil {
		return nil, nil, fmt.Errorf("crdt: load body: %w", err)
	}
	// A loaded change counts as not saved yet: mark it saved, so that
	// SaveIncremental returns what follows it (as after newDocAM's).
	am.SaveIncremental()
	return am, body, nil
}

// newDocBody returns newDocAM's document saved, as its change deflated
// (compressChanges): what a rebase ships.
func newDocBody(fields map[string]string, site string) ([]byte, error) {
	if encodable(fields) {
		body, _ := bodyChange(fields, site).encode()
		return compressChanges(body)
	}
	am, err := newDocAM(fields, site)
	if err != nil {
		return nil, err
	}
	return compressChanges(am.SaveIncremental())
}

func writeFields(am *automerge.Doc, set map[string]string, del []string) error {
	root := am.RootMap()
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := root.Set(k, set[k]); err != nil {
			return fmt.Errorf("crdt: set field: %w", err)
		}
	}
	for _, k := range del {
		if err := root.Delete(k); err != nil {
			return fmt.Errorf("crdt: delete field: %w", err)
		}
	}
	return nil
}

func commitOptions() automerge.CommitOptions {
	var noTime time.Time // no timestamp: the same edit saves to the same bytes anywhere
	return automerge.CommitOptions{Time: &noTime, AllowEmpty: true}
}

// actorID derives a site's automerge actor from its name, so it is stable across
// restarts and equal wherever it is computed.
func actorID(site string) string {
	sum := sha256.Sum256([]byte(site))
	return hex.EncodeToString(sum[:16])
}

// Clock returns the greatest Lamport counter among the document's stamps: a
// replica taking the document must move its clock past it.
func (d *Doc) Clock() uint64 { return max(d.inc.Counter, d.epoch.Counter) }
