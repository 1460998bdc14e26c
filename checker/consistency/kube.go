package consistency

// MaxSites bounds the sites whose writes a Doc tracks (Doc.Seen).
const MaxSites = 4

// Kube is how the fields of one built-in Kubernetes kind merge, in the model's
// terms, following crdt/'s rules for built-in kinds (crdt/rules.go,
// crdt/kube): fields with the same non-zero Unit are one merge unit (an
// object's status), written by one operation and merged whole; and when a
// document's history ends in concurrent writes (heads), the object shown is
// the field merge with metadata.generation one past the heads' greatest when
// the merged spec differs from some head's, or, when Valid rejects that,
// the whole object the greatest head (by Stamp) wrote. A Kube must not change
// once used.
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
// changed merge unit is one operation, numbered on from d.Ops in field
// order, with rank as the operation's actor. The write becomes the only
// head of its site.
func Write(d Doc, vals [MaxFields]int32, st Stamp, rank uint8, k *Kube) Doc {
	var changed [MaxFields]bool
	if !d.Live() {
		d = Doc{Key: d.Key, Inc: st, Prev: d.Inc}
		for i := range changed {
			changed[i] = true
		}
	} else {
		for i, v := range vals {
			changed[i] = d.Vals[i] != v
		}
	}
	var done [MaxFields]bool
	for i := range vals {
		if !changed[i] && !unitChanged(k, &changed, i) || done[i] {
			continue
		}
		d.Ops++
		for j := range vals {
			if j == i || k.Unit[i] != 0 && k.Unit[j] == k.Unit[i] {
				d.Stamps[j] = Stamp{Counter: d.Ops, Site: rank}
				done[j] = true
			}
		}
	}
	d.Vals = vals
	d.Seen[st.Site] = st.Counter
	d.Heads[st.Site] = Head{Seen: d.Seen, Vals: vals}
	return d
}

// unitChanged reports whether any field of i's unit changed.
func unitChanged(k *Kube, changed *[MaxFields]bool, i int) bool {
	if k.Unit[i] == 0 {
		return false
	}
	for j := range changed {
		if changed[j] && k.Unit[j] == k.Unit[i] {
			return true
		}
	}
	return false
}

// MergeKube merges two replicas' states of one key of a built-in kind (as
// Merge, keeping each site's latest write). Shown gives the object a reader
// sees.
func MergeKube(a, b Doc) (Doc, bool) {
	m, conflict := Merge(a, b)
	if a.Inc != b.Inc || !m.Live() {
		return m, conflict
	}
	for s := range m.Seen {
		if b.Seen[s] > a.Seen[s] {
			m.Seen[s], m.Heads[s] = b.Seen[s], b.Heads[s]
		}
	}
	return m, false
}

// heads lists the sites whose latest write no other site's latest write
// followed: the document's concurrent heads.
func (d *Doc) heads() (out [MaxSites]bool, n int) {
	for s, c := range d.Seen {
		if c == 0 {
			continue
		}
		out[s] = true
		for t := range d.Heads {
			if t != s && d.Heads[t].Seen[s] >= c {
				out[s] = false
			}
		}
		if out[s] {
			n++
		}
	}
	return out, n
}

// Shown returns the object a reader of d sees under k, and whether it is the
// validation fallback (a conflict crdt/ records). With one head it is the
// fields; with concurrent heads, crdt/'s rules apply.
func Shown(d *Doc, k *Kube) ([MaxFields]int32, bool) {
	hs, n := d.heads()
	if n < 2 {
		return d.Vals, false
	}
	shown := d.Vals
	if k.Gen >= 0 {
		var top int32
		differs := false
		for s, h := range hs {
			if h {
				top = max(top, d.Heads[s].Vals[k.Gen])
				differs = differs || !sameSpec(k, &shown, &d.Heads[s].Vals)
			}
		}
		if differs {
			shown[k.Gen] = top + 1
		}
	}
	if k.Valid == nil || k.Valid(&shown) {
		return shown, false
	}
	var win Stamp
	ws := -1
	for s, h := range hs {
		if st := (Stamp{Counter: d.Seen[s], Site: uint8(s)}); h && (ws < 0 || win.Less(st)) {
			win, ws = st, s
		}
	}
	return d.Heads[ws].Vals, true
}

func sameSpec(k *Kube, a, b *[MaxFields]int32) bool {
	for i := range a {
		if k.Spec&(1<<i) != 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}
