package consistency

import "github.com/rhizome-kv/rhizome/crdt"

// MaxFields is the number of leaf fields in a Doc; models map their object
// fields onto these slots.
const MaxFields = 14

// Stamp orders writes across sites: a Lamport counter, ties broken by site.
// A write that causally follows another always carries a greater Counter.
type Stamp struct {
	Counter uint32
	Site    uint8
}

// Less reports whether a orders before b.
func (a Stamp) Less(b Stamp) bool {
	return a.Counter < b.Counter || a.Counter == b.Counter && a.Site < b.Site
}

// Compare returns -1, 0 or +1 as a orders before, equal to or after b (the
// order crdt.Arrive decides incarnations by).
func (a Stamp) Compare(b Stamp) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// IsZero reports whether the stamp names no write.
func (a Stamp) IsZero() bool { return a == Stamp{} }

// Doc is one key's replicated state at one site. The zero Doc is a key never
// written.
type Doc struct {
	Key     uint64
	Inc     Stamp // the incarnation; zero if never created
	Prev    Stamp // the deleted incarnation this one's create followed, if any
	Deleted bool  // the incarnation has ended; its body is forgotten
	// Ops counts the field operations of the body: the highest operation
	// counter it holds (automerge's max op). The next write's operations
	// number on from it.
	Ops  uint32
	Vals [MaxFields]int32
	// Stamps names the operation that wrote each field: its operation
	// counter and the writing site. They order concurrent writes of one
	// field, and are not the write's Stamp (see Update).
	Stamps [MaxFields]Stamp
	// Seen holds, per site, the counter of the latest write of that site
	// the state includes, and Heads that write: what it had seen and the
	// fields it left. Only Write and MergeKube keep them (built-in kinds).
	Seen  [MaxSites]uint32
	Heads [MaxSites]Head
}

// Head is one site's latest write of a document: the writes it followed
// (its own included) and the fields as it left them.
type Head struct {
	Seen [MaxSites]uint32
	Vals [MaxFields]int32
}

// Live reports whether the key exists.
func (d *Doc) Live() bool { return !d.Inc.IsZero() && !d.Deleted }

// Create starts a new incarnation of the key over d, which must not be live,
// named by the write's stamp st, with the given field values: a new body
// whose operations 1..MaxFields write the fields in order, at st's site.
func Create(d Doc, vals [MaxFields]int32, st Stamp) Doc {
	n := Doc{Key: d.Key, Inc: st, Prev: d.Inc, Vals: vals, Ops: MaxFields}
	for i := range n.Stamps {
		n.Stamps[i] = Stamp{Counter: uint32(i + 1), Site: st.Site}
	}
	return n
}

// Update writes vals into the live incarnation d at site, as a field-level
// diff does: each field whose value changes is one operation, numbered on
// from d.Ops in field order, like automerge numbers the operations of one
// change (crdt/ writes a document's changed fields in key order).
func Update(d Doc, vals [MaxFields]int32, site uint8) Doc {
	for i, v := range vals {
		if d.Vals[i] != v {
			d.Ops++
			d.Vals[i] = v
			d.Stamps[i] = Stamp{Counter: d.Ops, Site: site}
		}
	}
	return d
}

// Delete ends the incarnation d and forgets its body, so that whatever
// concurrent updates a replica merged before the delete arrived cannot show.
func Delete(d Doc) Doc {
	d.Deleted = true
	d.Ops = 0
	d.Vals = [MaxFields]int32{}
	d.Stamps = [MaxFields]Stamp{}
	d.Seen, d.Heads = [MaxSites]uint32{}, [MaxSites]Head{}
	return d
}

// Merge combines two replicas' states of one key. It is commutative,
// associative and idempotent. The second result reports an event, not state:
// a concurrent create resolved while a received b's changes (see crdt.Arrive).
// Like crdt/'s conflict log it depends on the order of merges, so it is kept
// out of the Doc, whose value must converge.
//
// Which incarnation stands is crdt.Arrive's decision, the function crdt/'s
// replicas apply every change by: Merge hands it, in causal order, the changes
// b's state stands for that a may lack (the delete of the incarnation b's
// create followed, b's create, its edits, its delete).
func Merge(a, b Doc) (Doc, bool) {
	if b.Inc.IsZero() {
		return a, false // b holds no change
	}
	m := a
	var conflict bool
	arrive := func(op crdt.Op, inc Stamp) crdt.Fate {
		fate, c := crdt.Arrive(m.Inc, m.Deleted, op, inc)
		conflict = conflict || c
		return fate
	}
	if !b.Prev.IsZero() {
		fate := arrive(crdt.OpDelete, b.Prev)
		if fate == crdt.Early {
			// a lacks the incarnation b's create followed: its create, then.
			arrive(crdt.OpCreate, b.Prev)
			m = Doc{Key: m.Key, Inc: b.Prev}
			fate = arrive(crdt.OpDelete, b.Prev)
		}
		if fate == crdt.Edits {
			m = Delete(m)
		}
	}
	if a.Prev == b.Inc {
		return m, conflict // a's create followed b's delete: a holds b whole
	}
	if m.Inc == b.Inc {
		m.Prev = maxStamp(m.Prev, b.Prev) // one create: equal unless a caller breaks that
	}
	switch arrive(crdt.OpCreate, b.Inc) {
	case crdt.Replaces:
		m = b
		m.Deleted = false // b's delete, if any, arrives next
	case crdt.Edits:
		if !b.Deleted {
			mergeFields(&m, &b) // b's edits (a delete forgets them anyway)
		}
	}
	if b.Deleted && arrive(crdt.OpDelete, b.Inc) == crdt.Edits {
		m = Delete(m)
	}
	return m, conflict
}

// mergeFields merges b's fields into m, both of one live incarnation: each
// field's operation with the greater id (counter, then site) wins.
func mergeFields(m, b *Doc) {
	m.Ops = max(m.Ops, b.Ops)
	for i := range m.Vals {
		switch {
		case m.Stamps[i].Less(b.Stamps[i]):
			m.Vals[i], m.Stamps[i] = b.Vals[i], b.Stamps[i]
		case m.Stamps[i] == b.Stamps[i] && b.Vals[i] > m.Vals[i]:
			// Equal stamps name one write; this only keeps Merge
			// deterministic if a caller ever breaks that rule.
			m.Vals[i] = b.Vals[i]
		}
	}
}

func maxStamp(a, b Stamp) Stamp {
	if a.Less(b) {
		return b
	}
	return a
}
