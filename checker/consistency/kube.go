package consistency

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// MaxSites bounds the sites whose writes a Doc tracks (Doc.Seen).
const MaxSites = 4

// Fields is a Doc's leaf fields: what crdt/kube's rules for concurrent edits
// (kube.Concurrent) work on in the model.
type Fields = [MaxFields]int32

// Kube is how the fields of one built-in Kubernetes kind merge, taken from
// crdt/kube: each field slot is a place in the kind's object (a JSON pointer),
// and the kind's structured-merge-diff schema with Kubernetes' rules on top
// (kube.Node.Unit) says which slots share one merge unit (an object's
// status, a Lease's spec, an atomic selector), written by one operation and
// merged whole; which lie under spec; and where metadata.generation is.
// Shown applies kube.Concurrent, the rules crdt/ applies when a document's
// history ends in concurrent edits. Build one with NewKube; a Kube does not
// change once built.
type Kube struct {
	unit  [MaxFields]uint8 // slots of one unit share a non-zero number
	order [MaxFields]uint8 // slots in the order crdt/ writes their units (key order)
	spec  uint32           // bit i set: slot i lies under spec
	gen   int              // the metadata.generation slot; -1: none
	valid func(vals Fields) bool
	rules kube.HeadRules[Fields]
}

// NewKube returns the merge rules of the built-in kind apiVersion/kind whose
// field slots lie at paths (JSON pointers, list elements named as crdt/ names
// them, see kube.Node.Unit; "" for a slot that is no field). valid mirrors
// kube-apiserver's validation of the modelled fields (nil accepts
// everything). It fails for a kind crdt/kube does not know.
func NewKube(apiVersion, kind string, paths [MaxFields]string, valid func(vals Fields) bool) (*Kube, error) {
	root, ok := kube.Object(apiVersion, kind)
	if !ok {
		return nil, fmt.Errorf("consistency: %s %s is not a built-in kind", apiVersion, kind)
	}
	k := &Kube{gen: -1, valid: valid}
	var units [MaxFields]string
	for i, p := range paths {
		switch {
		case p == "":
			units[i] = "\xff" // no field: after every key, in a unit of its own
		case p[0] != '/':
			return nil, fmt.Errorf("consistency: %s field %d: %q is not a JSON pointer", kind, i, p)
		default:
			units[i] = root.Unit(p)
		}
		if p == "/metadata/generation" {
			k.gen = i
		}
		if p == "/spec" || strings.HasPrefix(p, "/spec/") {
			k.spec |= 1 << i
		}
	}
	for i := range units {
		k.order[i] = uint8(i)
		if units[i] == paths[i] {
			continue
		}
		for j := range i + 1 {
			if units[j] == units[i] {
				k.unit[i] = uint8(j + 1)
				break
			}
		}
	}
	slices.SortStableFunc(k.order[:], func(a, b uint8) int { return strings.Compare(units[a], units[b]) })
	// The rules work on copies of the fields (values, not pointers), so
	// that nothing a merge passes them escapes to the heap.
	k.rules = kube.HeadRules[Fields]{
		Generation: func(f Fields) (int64, bool) {
			if k.gen < 0 {
				return 0, false
			}
			return int64(f[k.gen]), true
		},
		WithGeneration: func(f Fields, g int64) Fields {
			f[k.gen] = int32(g)
			return f
		},
		SameSpec: func(a, b Fields) bool { return k.sameSpec(&a, &b) },
	}
	k.rules.Valid = valid
	return k, nil
}

// Valid reports whether kube-apiserver accepts vals (as far as modelled).
func (k *Kube) Valid(vals *Fields) bool { return k.valid == nil || k.valid(*vals) }

// Write applies a local write of vals at st to d under the kind's rules k:
// a create when d is not live (as Create), else an update whose every
// changed merge unit is one operation, numbered on from d.Ops in the order
// crdt/ writes units (by key), with rank as the operation's actor. The write
// becomes the only head of its site.
func Write(d Doc, vals Fields, st Stamp, rank uint8, k *Kube) Doc {
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
	for _, i := range k.order {
		if !changed[i] && !k.unitChanged(&changed, i) || done[i] {
			continue
		}
		d.Ops++
		for j := range vals {
			if j == int(i) || k.unit[i] != 0 && k.unit[j] == k.unit[i] {
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
func (k *Kube) unitChanged(changed *[MaxFields]bool, i uint8) bool {
	if k.unit[i] == 0 {
		return false
	}
	for j := range changed {
		if changed[j] && k.unit[j] == k.unit[i] {
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

// heads returns the sites whose latest write no other site's latest write
// followed (the document's concurrent heads), ordered by their writes'
// stamps, and how many there are.
func (d *Doc) heads() (out [MaxSites]uint8, n int) {
	for s, c := range d.Seen {
		if c == 0 {
			continue
		}
		head := true
		for t := range d.Heads {
			if t != s && d.Heads[t].Seen[s] >= c {
				head = false
			}
		}
		if !head {
			continue
		}
		st := Stamp{Counter: c, Site: uint8(s)}
		i := n
		for ; i > 0 && st.Less(Stamp{Counter: d.Seen[out[i-1]], Site: out[i-1]}); i-- {
			out[i] = out[i-1]
		}
		out[i] = uint8(s)
		n++
	}
	return out, n
}

// Shown returns the object a reader of d sees under k, and whether it is the
// validation fallback (a conflict crdt/ records). With one head it is the
// fields; with concurrent heads, kube.Concurrent decides, as in crdt/.
func Shown(d *Doc, k *Kube) (Fields, bool) {
	hs, n := d.heads()
	if n < 2 {
		return d.Vals, false
	}
	head := func(i int) (Fields, error) { return d.Heads[hs[i]].Vals, nil }
	shown, win, _ := kube.Concurrent(d.Vals, n, head, &k.rules)
	return shown, win >= 0
}

func (k *Kube) sameSpec(a, b *Fields) bool {
	for i := range a {
		if k.spec&(1<<i) != 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}
