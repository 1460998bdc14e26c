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
	docSum    uint64 // the sum of the documents' hashes, part of h
	// docIDs, when not nil, holds the intern id of each document (0 when
	// not known yet); see Snapshot.ids.
	docIDs []uint32
}

func newReplica(snap *Snapshot) *Replica {
	r := &Replica{Snap: snap}
	for _, o := range snap.Objs {
		// Initial objects share one pre-history incarnation at every site.
		d := consistency.Create(consistency.Doc{Key: o.Key()}, o.F, consistency.Stamp{})
		d.Inc = consistency.Stamp{Counter: 0, Site: 0xff}
		r.Docs = append(r.Docs, d)
		r.docSum += docHash(&d)
	}
	r.seal()
	return r
}

// seal computes the replica's hash from its parts; docSum must be current.
func (r *Replica) seal() {
	h := r.Snap.Hash() ^ uint64(r.Clock)*0x9e3779b97f4a7c15
	for i, v := range r.VV {
		h ^= mix64(uint64(v)<<8 | uint64(i))
	}
	r.h = mix64(h + r.docSum)
}

func docHash(d *consistency.Doc) uint64 {
	h := d.Key*0xff51afd7ed558ccd ^ uint64(d.Inc.Counter)<<8 ^ uint64(d.Inc.Site) ^ uint64(d.Prev.Counter)<<40 ^
		uint64(d.Ops)<<20
	for i, c := range d.Seen {
		h = (h ^ uint64(c)<<(i*8)) * 0xc2b2ae3d27d4eb4f
	}
	for s := range d.Heads {
		hd := &d.Heads[s]
		for i := 0; i < len(hd.Vals); i += 2 {
			h = (h ^ uint64(uint32(hd.Vals[i])) ^ uint64(uint32(hd.Vals[i+1]))<<32) * 0x9e3779b97f4a7c15
		}
		for i, c := range hd.Seen {
			h = (h ^ uint64(c)<<(i*8+s)) * 0xc2b2ae3d27d4eb4f
		}
	}
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
// replica only, then stamps the change into the key's document, by
// Kubernetes' merge units when kube is set (else field by field). The new
// replica is built in a.
func (r *Replica) write(op *Op, site int, kube bool, a *arena) (*Replica, *Snapshot, applied) {
	snap, res := r.Snap.apply(op, r.Snap.Rev+1, site, a)
	if !res.ok {
		return r, r.Snap, res
	}
	n := a.replica()
	*n = Replica{Snap: snap, Clock: r.Clock + 1, VV: r.VV, Conflicts: r.Conflicts, docSum: r.docSum}
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
		n.docSum -= docHash(&d)
	} else {
		d = consistency.Doc{Key: k}
	}
	switch {
	case res.removed:
		d = consistency.Delete(d)
	case kube && kubeRule(res.obj.Kind) != nil:
		d = consistency.Write(d, res.obj.F, st, uint8(site), kubeRule(res.obj.Kind))
	case !d.Live():
		d = consistency.Create(d, res.obj.F, st)
	default:
		d = consistency.Update(d, res.obj.F, uint8(site))
	}
	n.docSum += docHash(&d)
	if found {
		n.Docs = a.docs(len(r.Docs))
		copy(n.Docs, r.Docs)
		n.Docs[i] = d
		if r.docIDs != nil {
			n.docIDs = a.uint32s(len(r.docIDs))
			copy(n.docIDs, r.docIDs)
			n.docIDs[i] = 0
		}
	} else {
		n.Docs = a.docs(len(r.Docs) + 1)
		copy(n.Docs, r.Docs[:i])
		n.Docs[i] = d
		copy(n.Docs[i+1:], r.Docs[i:])
		if r.docIDs != nil {
			n.docIDs = a.uint32s(len(r.docIDs) + 1)
			copy(n.docIDs, r.docIDs[:i])
			n.docIDs[i] = 0
			copy(n.docIDs[i+1:], r.docIDs[i:])
		}
	}
	n.seal()
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

// shownF returns the fields r's snapshot shows for a live document d.
func shownF(r *Replica, d *consistency.Doc) [NF]int32 {
	if i, ok := r.Snap.search(d.Key); ok {
		return r.Snap.Objs[i].F
	}
	return d.Vals
}

// mergeDocs merges one key's documents, by Kubernetes' rules when kube is
// set, and returns the merged document, the fields it shows and whether a
// conflict (a concurrent create, or a new validation fallback) was resolved.
func mergeDocs(a, b *consistency.Doc, kube bool) (consistency.Doc, [NF]int32, bool) {
	if r := kubeRule(Kind(a.Key >> 32)); kube && r != nil {
		m, conflict := consistency.MergeKube(*a, *b)
		shown, fallback := consistency.Shown(&m, r)
		if fallback && m != *a && m != *b {
			conflict = true
		}
		return m, shown, conflict
	}
	d, conflict := consistency.Merge(*a, *b)
	return d, d.Vals, conflict
}

// mergeInto returns dst after receiving src's state (anti-entropy), built in
// a. Keys whose materialised value changes get dst's next local revision.
func mergeInto(dst, src *Replica, kube bool, a *arena) *Replica {
	n := a.replica()
	*n = Replica{Clock: max(dst.Clock, src.Clock), Conflicts: dst.Conflicts}
	for i := range n.VV {
		n.VV[i] = max(dst.VV[i], src.VV[i])
	}
	rev := dst.Snap.Rev + 1
	most := len(dst.Docs) + len(src.Docs)
	objs := a.objects(most)[:0]
	oids := a.uint32s(most)[:0]
	n.Docs = a.docs(most)[:0]
	n.docIDs = a.uint32s(most)[:0]
	// docID and objID carry known intern ids over to what is unchanged.
	docID := func(r *Replica, i int, d *consistency.Doc) uint32 {
		if r.docIDs == nil || r.Docs[i] != *d {
			return 0
		}
		return r.docIDs[i]
	}
	i, j := 0, 0
	for i < len(dst.Docs) || j < len(src.Docs) {
		var d consistency.Doc
		var old *consistency.Doc
		var id uint32
		var shown [NF]int32
		switch {
		case j == len(src.Docs) || i < len(dst.Docs) && dst.Docs[i].Key < src.Docs[j].Key:
			d, old = dst.Docs[i], &dst.Docs[i]
			id = docID(dst, i, &d)
			if d.Live() {
				shown = shownF(dst, &d)
			}
			i++
		case i == len(dst.Docs) || src.Docs[j].Key < dst.Docs[i].Key:
			d = src.Docs[j]
			id = docID(src, j, &d)
			if d.Live() {
				shown = shownF(src, &d)
			}
			j++
		default:
			var conflict bool
			d, shown, conflict = mergeDocs(&dst.Docs[i], &src.Docs[j], kube)
			if conflict {
				n.Conflicts++
			}
			if id = docID(dst, i, &d); id == 0 {
				id = docID(src, j, &d)
			}
			old = &dst.Docs[i]
			i++
			j++
		}
		n.Docs = append(n.Docs, d)
		n.docIDs = append(n.docIDs, id)
		n.docSum += docHash(&d)
		if !d.Live() {
			continue
		}
		o := Object{Kind: Kind(d.Key >> 32), Name: Name(d.Key), RV: rev, F: shown}
		var oid uint32
		if old != nil && old.Live() && old.Inc == d.Inc {
			if k, ok := dst.Snap.search(o.Key()); ok && dst.Snap.Objs[k].F == shown {
				cur := &dst.Snap.Objs[k]
				o.RV = cur.RV
				if dst.Snap.ids != nil && *cur == o {
					oid = dst.Snap.ids[k]
				}
			}
		}
		objs = append(objs, o)
		oids = append(oids, oid)
	}
	n.Snap = a.snapshot()
	*n.Snap = Snapshot{Rev: rev, Gen: dst.Snap.Gen, Objs: objs, ids: oids}
	n.Snap.index()
	for k := range objs {
		n.Snap.sum += objs[k].hash()
	}
	n.seal()
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
