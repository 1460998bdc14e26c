package consistency

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
// a live incarnation lost to a create that did not follow its delete (a
// concurrent create). Like crdt/'s conflict log it depends on the order of
// merges, so it is kept out of the Doc, whose value must converge.
func Merge(a, b Doc) (Doc, bool) {
	if a.Inc != b.Inc {
		w, l := a, b
		if a.Inc.Less(b.Inc) {
			w, l = b, a
		}
		// A live loser that the winner's create did not follow is a concurrent
		// create: record it. A loser the winner followed was deleted first.
		return w, l.Live() && l.Inc != w.Prev
	}
	m := a
	m.Prev = maxStamp(a.Prev, b.Prev)
	if a.Deleted || b.Deleted {
		return Delete(m), false
	}
	m.Ops = max(a.Ops, b.Ops)
	for i := range m.Vals {
		switch {
		case a.Stamps[i].Less(b.Stamps[i]):
			m.Vals[i], m.Stamps[i] = b.Vals[i], b.Stamps[i]
		case a.Stamps[i] == b.Stamps[i] && b.Vals[i] > a.Vals[i]:
			// Equal stamps name one write; this only keeps Merge
			// deterministic if a caller ever breaks that rule.
			m.Vals[i] = b.Vals[i]
		}
	}
	return m, false
}

func maxStamp(a, b Stamp) Stamp {
	if a.Less(b) {
		return b
	}
	return a
}
