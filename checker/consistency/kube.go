package consistency

// MaxSites bounds the sites whose writes a Doc tracks (Doc.Seen).
const MaxSites = 4

// Kube is how the fields of one built-in Kubernetes kind merge, in the model's
// terms, following crdt/'s rules for built-in kinds (crdt/rules.go,
// crdt/kube): fields with the same non-zero Unit are one merge unit (an
// object's status), written by one operation and merged whole; when the
// merged spec differs from what a side saw, metadata.generation moves one
// past the sides' greatest; and when Valid rejects the merged object, the
// whole object written by the greatest write (by Stamp) is shown instead.
// A Kube must not change once used.
type Kube struct {
	Unit [MaxFields]uint8
	Spec uint32 // bit i set: field i lies under spec
	Gen  int    // the metadata.generation field; -1: none
	// Valid mirrors kube-apiserver's validation of the modelled fields; nil
	// accepts everything.
	Valid func(vals *[MaxFields]int32) bool
}

// Write applies a local write of vals at st to d under the kind's rules k:
// a create when d is not live (as Create), else an update whose every
// changed merge unit is one operation. It records st as the site's latest
// write (Seen) and vals as the fields of the greatest write (Top).
func Write(d Doc, vals [MaxFields]int32, st Stamp, rank uint8, k *Kube) Doc {
	if !d.Live() {
		prev := d.Inc
		d = Doc{Key: d.Key, Inc: st, Prev: prev, Vals: vals}
		for i := range d.Stamps {
			d.Ops = unitOp(&d, k, i, d.Ops, rank)
		}
	} else {
		var changed [MaxFields]bool
		for i, v := range vals {
			if d.Vals[i] != v {
				changed[i] = true
				if u := k.Unit[i]; u != 0 {
					for j := range vals {
						changed[j] = changed[j] || k.Unit[j] == u
					}
				}
			}
		}
		var seen [MaxFields]bool
		for i := range vals {
			if changed[i] && !seen[i] {
				d.Ops = unitOp(&d, k, i, d.Ops, rank)
				for j := range vals {
					seen[j] = seen[j] || k.Unit[i] != 0 && k.Unit[j] == k.Unit[i]
				}
			}
		}
		d.Vals = vals
	}
	d.Seen[st.Site] = st.Counter
	d.Top = vals
	return d
}

// unitOp numbers one operation after ops for field i, stamping every field
// of i's unit with it, and returns the new operation count.
func unitOp(d *Doc, k *Kube, i int, ops uint32, rank uint8) uint32 {
	ops++
	st := Stamp{Counter: ops, Site: rank}
	for j := range d.Stamps {
		if j == i || k.Unit[i] != 0 && k.Unit[j] == k.Unit[i] {
			d.Stamps[j] = st
		}
	}
	return ops
}

// top returns the stamp of the greatest write d holds.
func (d *Doc) top() Stamp {
	var t Stamp
	for s, c := range d.Seen {
		t = maxStamp(t, Stamp{Counter: c, Site: uint8(s)})
	}
	return t
}

// covers reports whether a holds every write b holds.
func (d *Doc) covers(b *Doc) bool {
	for s := range d.Seen {
		if d.Seen[s] < b.Seen[s] {
			return false
		}
	}
	return true
}

// Merged is the outcome of MergeKube.
type Merged struct {
	Doc   Doc
	Shown [MaxFields]int32 // the object a reader sees
	// Conflict reports an event: a concurrent create lost, or a validation
	// fallback chose one side's whole object.
	Conflict bool
	Fallback bool
}

// MergeKube merges two replicas' states a and b of one key of a built-in
// kind, given the objects each shows (sa, sb), by k's rules. The field
// merge is Merge's; the corrections apply only when neither side holds every
// write of the other (concurrent heads), as crdt/'s do.
//
// Approximation: crdt/ decides from every concurrent head's own fields; this
// model sees two states, each standing for its heads by the object it shows
// (exact while each side's latest writes form one head, as with two sites
// whose states merge whole), except for the validation fallback, which uses
// the greatest write's own fields (Top) exactly as crdt/ does.
func MergeKube(a, b Doc, sa, sb [MaxFields]int32, k *Kube) Merged {
	m, conflict := Merge(a, b)
	for s := range m.Seen {
		m.Seen[s] = max(a.Seen[s], b.Seen[s])
	}
	m.Top = a.Top
	if a.top().Less(b.top()) {
		m.Top = b.Top
	}
	switch {
	case a.Inc != b.Inc:
		if m.Inc == a.Inc {
			return Merged{Doc: withHeads(m, a), Shown: sa, Conflict: conflict}
		}
		return Merged{Doc: withHeads(m, b), Shown: sb, Conflict: conflict}
	case !m.Live():
		return Merged{Doc: m}
	case a.covers(&b):
		return Merged{Doc: m, Shown: sa}
	case b.covers(&a):
		return Merged{Doc: m, Shown: sb}
	}
	shown := m.Vals
	if k.Gen >= 0 && (!sameSpec(k, &shown, &sa) || !sameSpec(k, &shown, &sb)) {
		shown[k.Gen] = max(sa[k.Gen], sb[k.Gen]) + 1
	}
	if k.Valid != nil && !k.Valid(&shown) {
		return Merged{Doc: m, Shown: m.Top, Conflict: true, Fallback: true}
	}
	return Merged{Doc: m, Shown: shown}
}

// withHeads gives m, the winning incarnation, the winner w's write record.
func withHeads(m, w Doc) Doc {
	m.Seen, m.Top = w.Seen, w.Top
	return m
}

func sameSpec(k *Kube, a, b *[MaxFields]int32) bool {
	for i := range a {
		if k.Spec&(1<<i) != 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}
