package k8s

import "github.com/rhizome-kv/rhizome/checker/consistency"

// MaxSites bounds the sites of a rhizome model.
const MaxSites = 4

// Replica is one site's copy of the cluster under the rhizome consistency
// model: the materialised snapshot its apiserver reads (with site-local
// resourceVersions), the per-key merge state (incarnations, tombstones,
// field stamps), the site's Lamport clock and its version vector.
type Replica struct {
	Snap      *Snapshot
	Docs      []consistency.Doc // every key ever written, sorted by Key
	Clock     uint32
	VV        [MaxSites]uint32
	Conflicts int32 // concurrent creates resolved here (a metric, not state)
	h         uint64
}

func newReplica(snap *Snapshot) *Replica {
	r := &Replica{Snap: snap}
	for _, o := range snap.Objs {
		// Initial objects share one pre-history incarnation at every site.
		d := consistency.Create(consistency.Doc{Key: o.Key()}, o.F, consistency.Stamp{})
		d.Inc = consistency.Stamp{Counter: 0, Site: 0xff}
		r.Docs = append(r.Docs, d)
	}
	r.rehash()
	return r
}

func (r *Replica) rehash() {
	h := r.Snap.Hash() ^ uint64(r.Clock)*0x9e3779b97f4a7c15
	for i, v := range r.VV {
		h ^= mix64(uint64(v)<<8 | uint64(i))
	}
	for i := range r.Docs {
		h += docHash(&r.Docs[i])
	}
	r.h = mix64(h)
}

func docHash(d *consistency.Doc) uint64 {
	h := d.Key*0xff51afd7ed558ccd ^ uint64(d.Inc.Counter)<<8 ^ uint64(d.Inc.Site) ^ uint64(d.Prev.Counter)<<40
	if d.Deleted {
		h ^= 1 << 63
	}
	for i := range d.Vals {
		h = (h ^ uint64(uint32(d.Vals[i])) ^ uint64(d.Stamps[i].Counter)<<32 ^ uint64(d.Stamps[i].Site)<<56) * 0x9e3779b97f4a7c15
	}
	return mix64(h)
}

func (r *Replica) findDoc(k uint64) (int, bool) {
	lo, hi := 0, len(r.Docs)
	for lo < hi {
		m := (lo + hi) >> 1
		if r.Docs[m].Key < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(r.Docs) && r.Docs[lo].Key == k
}

// write applies a local write at site: compare-and-swap against this
// replica only, then stamps the change into the key's document.
func (r *Replica) write(op *Op, site int) (*Replica, *Snapshot, applied) {
	snap, res := r.Snap.apply(op, r.Snap.Rev+1, site)
	if !res.ok {
		return r, r.Snap, res
	}
	n := &Replica{Snap: snap, Clock: r.Clock + 1, VV: r.VV, Conflicts: r.Conflicts}
	n.VV[site] = n.Clock
	st := consistency.Stamp{Counter: n.Clock, Site: uint8(site)}
	k := op.Obj.Key()
	if res.obj.Kind != 0 {
		k = res.obj.Key() // generated names are only known after apply
	}
	i, found := r.findDoc(k)
	var d consistency.Doc
	if found {
		d = r.Docs[i]
	} else {
		d = consistency.Doc{Key: k}
	}
	switch {
	case res.removed:
		d = consistency.Delete(d)
	case !d.Live():
		d = consistency.Create(d, res.obj.F, st)
	default:
		d = consistency.Update(d, res.obj.F, st)
	}
	if found {
		n.Docs = make([]consistency.Doc, len(r.Docs))
		copy(n.Docs, r.Docs)
		n.Docs[i] = d
	} else {
		n.Docs = make([]consistency.Doc, 0, len(r.Docs)+1)
		n.Docs = append(n.Docs, r.Docs[:i]...)
		n.Docs = append(n.Docs, d)
		n.Docs = append(n.Docs, r.Docs[i:]...)
	}
	n.rehash()
	return n, r.Snap, res
}

// behind reports whether src holds changes dst has not seen.
func behind(dst, src *Replica) bool {
	for i := range dst.VV {
		if src.VV[i] > dst.VV[i] {
			return true
		}
	}
	return false
}

// mergeInto returns dst after receiving src's state (anti-entropy). Keys
// whose materialised value changes get dst's next local revision.
func mergeInto(dst, src *Replica) *Replica {
	n := &Replica{Clock: max(dst.Clock, src.Clock), Conflicts: dst.Conflicts}
	for i := range n.VV {
		n.VV[i] = max(dst.VV[i], src.VV[i])
	}
	rev := dst.Snap.Rev + 1
	objs := make([]Object, 0, len(dst.Snap.Objs)+2)
	n.Docs = make([]consistency.Doc, 0, len(dst.Docs)+2)
	i, j := 0, 0
	for i < len(dst.Docs) || j < len(src.Docs) {
		var d consistency.Doc
		var old *consistency.Doc
		switch {
		case j == len(src.Docs) || i < len(dst.Docs) && dst.Docs[i].Key < src.Docs[j].Key:
			d, old = dst.Docs[i], &dst.Docs[i]
			i++
		case i == len(dst.Docs) || src.Docs[j].Key < dst.Docs[i].Key:
			d = src.Docs[j]
			j++
		default:
			var conflict bool
			d, conflict = consistency.Merge(dst.Docs[i], src.Docs[j])
			if conflict {
				n.Conflicts++
			}
			old = &dst.Docs[i]
			i++
			j++
		}
		n.Docs = append(n.Docs, d)
		if !d.Live() {
			continue
		}
		o := Object{Kind: Kind(d.Key >> 32), Name: Name(d.Key), RV: rev, F: d.Vals}
		if old != nil && old.Live() && old.Inc == d.Inc && old.Vals == d.Vals {
			if cur := dst.Snap.Get(o.Kind, o.Name); cur != nil {
				o.RV = cur.RV
			}
		}
		objs = append(objs, o)
	}
	n.Snap = &Snapshot{Rev: rev, Gen: dst.Snap.Gen, Objs: objs}
	for k := range objs {
		n.Snap.sum += objs[k].hash()
	}
	n.rehash()
	return n
}

// converged reports whether every replica has seen the same changes.
func converged(sites []*Replica) bool {
	for _, r := range sites[1:] {
		if r.VV != sites[0].VV {
			return false
		}
	}
	return true
}
