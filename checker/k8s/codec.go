package k8s

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"unsafe"

	"github.com/rhizome-kv/rhizome/checker"
	"github.com/rhizome-kv/rhizome/checker/consistency"
)

// The compact encoding of a State, for checker.Compact. Objects, documents
// and the controllers' local-state vector are interned (intern.go), so a
// synchronous themelios state takes a few dozen bytes instead of the ~1.3 KB
// its live form does. Everything else is written as uvarints:
//
//	flags        1 byte: 1 Cut, 2 Vers != nil, 4 Par != nil, 8 Sites != nil,
//	             16 versions by snapshot id
//	env          bit mask of non-zero budget slots, then one byte per such slot
//	ghost        uvarint
//	loc          id of the []Local vector
//	vers         count, then each snapshot, or each snapshot's id in models
//	             that keep a history (whose states share old versions)
//	par          count, then each entry as a zig-zag varint
//	sites        count, then each replica
//
//	snapshot     rev, gen, object count, object ids
//	replica      snapshot, document count, document ids, clock, VV[MaxSites],
//	             conflicts
//
// Fingerprints are recomputed on decode by the same seal that built them.

const (
	flagCut = 1 << iota
	flagVers
	flagPar
	flagSites
	flagVersRef // the versions are snapshot ids
)

var errCorrupt = errors.New("k8s: corrupt state encoding")

// interned is a Model's intern tables.
type interned struct {
	objs  *internTable[Object]
	docs  *internTable[consistency.Doc]
	locs  *internTable[[]Local] // aux: locCFP; the hash is locFP
	snaps *internTable[string]  // a snapshot's inline encoding; the hash is Snapshot.Hash
}

func newInterned() *interned {
	return &interned{
		objs: newInternTable(func(a, b *Object) bool { return *a == *b }, nil),
		docs: newInternTable(func(a, b *consistency.Doc) bool { return *a == *b }, nil),
		// A state's vector may live in an arena: the table keeps a copy.
		locs:  newInternTable(func(a, b *[]Local) bool { return slices.Equal(*a, *b) }, slices.Clone[[]Local]),
		snaps: newInternTable(func(a, b *string) bool { return *a == *b }, strings.Clone),
	}
}

// NewCoder implements checker.Compact.
func (m *Model) NewCoder() checker.Coder[*State] {
	if m.coderBits > 0 {
		return m.newCoder(m.coderBits)
	}
	return m.newCoder(12)
}

// newCoder returns a coder whose caches have about 2^bits entries (tests
// make them tiny to exercise evictions).
func (m *Model) newCoder(bits int) *coder {
	history := m.cfg.Consistency != Synchronous && !m.cfg.Consistency.replicated()
	return &coder{m: m, in: m.interned, seed: maphash.MakeSeed(), snapRefs: history, bySID: make([]sidEntry, 1<<bits),
		snaps: make([]cacheEntry[*Snapshot], 1<<bits), reps: make([]cacheEntry[*Replica], 1<<max(bits-2, 0)),
		objIDs: make([]hashID, 1<<max(bits-2, 0)), locIDs: make([]hashID, 1<<max(bits-4, 0))}
}

// coder encodes, decodes and expands states for one worker. It caches
// decoded snapshots and replicas (many states share them) and the last
// local-state vector it interned, and builds short-lived states in arenas:
// a decoded state is valid until the next Decode, a successor passed to
// Expand's yield until yield returns.
type coder struct {
	m    *Model
	in   *interned
	seed maphash.Seed
	ids  []uint32
	memo []stepMemo
	// snapRefs is set when a state's versions are written as snapshot ids:
	// in the models that keep a history, states share old versions.
	snapRefs bool
	sbuf     []byte
	bySID    []sidEntry
	dec      arena // what Decode builds: valid until the next Decode
	exp      arena // what Expand builds: valid until its yield returns
	snaps    []cacheEntry[*Snapshot]
	reps     []cacheEntry[*Replica]
	// lastLoc is a canonical vector (owned by the intern table, so its
	// address is never reused) and its id.
	lastLoc   *Local
	lastLocN  int
	lastLocID uint32
	// Recently interned ids by hash, checked against the table's value:
	// a hit spares the shared table's lock.
	objIDs []hashID
	locIDs []hashID
}

type sidEntry struct {
	sid uint32
	v   *Snapshot
}

type hashID struct {
	h  uint64
	id uint32
}

type cacheEntry[T any] struct {
	key uint64
	enc []byte
	v   T
}

// Append implements checker.Coder.
func (c *coder) Append(dst []byte, s *State) []byte {
	var flags byte
	if s.Cut {
		flags |= flagCut
	}
	if s.Vers != nil {
		flags |= flagVers
		if c.snapRefs {
			flags |= flagVersRef
		}
	}
	if s.Par != nil {
		flags |= flagPar
	}
	if s.Sites != nil {
		flags |= flagSites
	}
	dst = append(dst, flags)
	var mask uint64
	for i, b := range s.Env {
		if b != 0 {
			mask |= 1 << i
		}
	}
	dst = binary.AppendUvarint(dst, mask)
	for _, b := range s.Env {
		if b != 0 {
			dst = append(dst, byte(b))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(s.Ghost))
	dst = binary.AppendUvarint(dst, uint64(c.locID(s)))
	if s.Vers != nil {
		dst = binary.AppendUvarint(dst, uint64(len(s.Vers)))
		for _, v := range s.Vers {
			if c.snapRefs {
				dst = binary.AppendUvarint(dst, uint64(c.snapID(v)))
			} else {
				dst = c.appendSnap(dst, v)
			}
		}
	}
	if s.Par != nil {
		dst = binary.AppendUvarint(dst, uint64(len(s.Par)))
		for _, p := range s.Par {
			dst = binary.AppendVarint(dst, int64(p))
		}
	}
	if s.Sites != nil {
		dst = binary.AppendUvarint(dst, uint64(len(s.Sites)))
		for _, r := range s.Sites {
			dst = c.appendReplica(dst, r)
		}
	}
	return dst
}

func (c *coder) locID(s *State) uint32 {
	if len(s.Loc) > 0 && &s.Loc[0] == c.lastLoc && len(s.Loc) == c.lastLocN {
		return c.lastLocID
	}
	e := &c.locIDs[s.locFP%uint64(len(c.locIDs))]
	if e.id != 0 && e.h == s.locFP {
		if canon := c.in.locs.get(e.id).v; slices.Equal(canon, s.Loc) {
			return e.id
		}
	}
	loc := s.Loc
	id := c.in.locs.id(&loc, s.locFP, s.locCFP)
	e.h, e.id = s.locFP, id
	canon := c.in.locs.get(id).v
	if len(canon) > 0 {
		c.lastLoc, c.lastLocN, c.lastLocID = &canon[0], len(canon), id
	}
	return id
}

func (c *coder) appendSnap(dst []byte, v *Snapshot) []byte {
	dst = binary.AppendUvarint(dst, uint64(uint32(v.Rev)))
	dst = binary.AppendUvarint(dst, uint64(uint32(v.Gen)))
	dst = binary.AppendUvarint(dst, uint64(len(v.Objs)))
	for i := range v.Objs {
		var id uint32
		if v.ids != nil {
			id = v.ids[i]
		}
		if id == 0 {
			id = c.objID(&v.Objs[i])
		}
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	return dst
}

// snapID returns the intern id of v's inline encoding.
func (c *coder) snapID(v *Snapshot) uint32 {
	if v.sid != 0 {
		return v.sid
	}
	c.sbuf = c.appendSnap(c.sbuf[:0], v)
	enc := unsafe.String(unsafe.SliceData(c.sbuf), len(c.sbuf)) // copied if kept
	return c.in.snaps.id(&enc, v.Hash(), 0)
}

// snapByID reads a snapshot id and returns that snapshot, built on the heap
// and cached: states share their old versions.
func (c *coder) snapByID(r *reader) *Snapshot {
	id := r.uvarint()
	if r.err != nil || id > 1<<32-1 || !c.in.snaps.valid(uint32(id)) {
		r.err = errCorrupt
		return nil
	}
	sid := uint32(id)
	e := &c.bySID[sid%uint32(len(c.bySID))]
	if e.sid == sid {
		return e.v
	}
	enc := c.in.snaps.get(sid).v
	sr := &reader{b: unsafe.Slice(unsafe.StringData(enc), len(enc))}
	rev := int32(uint32(sr.uvarint()))
	gen := int32(uint32(sr.uvarint()))
	ids := readIDs(c, sr, c.in.objs)
	if sr.err != nil || sr.p != len(sr.b) {
		r.err = errCorrupt
		return nil
	}
	v := c.buildSnap(nil, rev, gen, ids)
	v.sid = sid
	e.sid, e.v = sid, v
	return v
}

func (c *coder) objID(o *Object) uint32 {
	h := o.hash()
	e := &c.objIDs[h%uint64(len(c.objIDs))]
	if e.id != 0 && e.h == h && c.in.objs.get(e.id).v == *o {
		return e.id
	}
	id := c.in.objs.id(o, h, 0)
	e.h, e.id = h, id
	return id
}

func (c *coder) appendReplica(dst []byte, r *Replica) []byte {
	dst = c.appendSnap(dst, r.Snap)
	dst = binary.AppendUvarint(dst, uint64(len(r.Docs)))
	for i := range r.Docs {
		var id uint32
		if r.docIDs != nil {
			id = r.docIDs[i]
		}
		if id == 0 {
			d := &r.Docs[i]
			id = c.in.docs.id(d, docHash(d), 0)
		}
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	dst = binary.AppendUvarint(dst, uint64(r.Clock))
	for _, v := range r.VV {
		dst = binary.AppendUvarint(dst, uint64(v))
	}
	return binary.AppendUvarint(dst, uint64(uint32(r.Conflicts)))
}

// reader walks an encoding; the first problem sticks in err.
type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b[r.p:])
	if k <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.p += k
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Varint(r.b[r.p:])
	if k <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.p += k
	return v
}

func (r *reader) byte() byte {
	if r.err != nil || r.p >= len(r.b) {
		r.err = errCorrupt
		return 0
	}
	r.p++
	return r.b[r.p-1]
}

// count reads a length that must fit in what is left of the encoding (every
// element takes at least one byte).
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.p) {
		r.err = errCorrupt
		return 0
	}
	return int(n)
}

// Decode implements checker.Coder.
func (c *coder) Decode(src []byte) (*State, error) {
	r := &reader{b: src}
	c.dec.reset()
	s := c.dec.state()
	*s = State{}
	flags := r.byte()
	s.Cut = flags&flagCut != 0
	mask := r.uvarint()
	if mask>>numBudget != 0 {
		return nil, errCorrupt
	}
	for i := range s.Env {
		if mask&(1<<i) != 0 {
			s.Env[i] = int8(r.byte())
		}
	}
	s.Ghost = uint32(r.uvarint())
	lid := uint32(r.uvarint())
	if r.err != nil || !c.in.locs.valid(lid) {
		return nil, errCorrupt
	}
	le := c.in.locs.get(lid)
	s.Loc, s.locFP, s.locCFP = le.v, le.h, le.aux
	if flags&flagVers != 0 {
		n := r.count()
		s.Vers = c.dec.snapshots(n)
		for i := range s.Vers {
			if flags&flagVersRef != 0 {
				s.Vers[i] = c.snapByID(r)
			} else {
				s.Vers[i] = c.snap(r, false)
			}
		}
	}
	if flags&flagPar != 0 {
		n := r.count()
		s.Par = c.dec.int32s(n)
		for i := range s.Par {
			s.Par[i] = int32(r.varint())
		}
	}
	if flags&flagSites != 0 {
		n := r.count()
		s.Sites = make([]*Replica, n)
		for i := range s.Sites {
			s.Sites[i] = c.replica(r)
		}
	}
	if r.err != nil || r.p != len(src) {
		return nil, errCorrupt
	}
	return c.m.seal(s), nil
}

// ids reads a count and that many ids valid in t into c.ids.
func readIDs[T any](c *coder, r *reader, t *internTable[T]) []uint32 {
	n := r.count()
	c.ids = c.ids[:0]
	for range n {
		id := r.uvarint()
		if id > 1<<32-1 || !t.valid(uint32(id)) {
			r.err = errCorrupt
			return nil
		}
		c.ids = append(c.ids, uint32(id))
	}
	return c.ids
}

// snap decodes an inline snapshot: into the decode arena, or, with keep, on
// the heap for a cached replica (from the cache when this coder met the
// same encoding before).
func (c *coder) snap(r *reader, keep bool) *Snapshot {
	start := r.p
	rev := int32(uint32(r.uvarint()))
	gen := int32(uint32(r.uvarint()))
	ids := readIDs(c, r, c.in.objs)
	if r.err != nil {
		return nil
	}
	if !keep {
		return c.buildSnap(&c.dec, rev, gen, ids)
	}
	enc := r.b[start:r.p]
	key := maphash.Bytes(c.seed, enc)
	e := &c.snaps[key%uint64(len(c.snaps))]
	if e.v != nil && e.key == key && bytes.Equal(e.enc, enc) {
		return e.v
	}
	v := c.buildSnap(nil, rev, gen, ids)
	e.key, e.enc, e.v = key, append(e.enc[:0], enc...), v
	return v
}

func (c *coder) buildSnap(a *arena, rev, gen int32, ids []uint32) *Snapshot {
	v := a.snapshot()
	*v = Snapshot{Rev: rev, Gen: gen, Objs: a.objects(len(ids)), ids: a.uint32s(len(ids))}
	copy(v.ids, ids)
	for i, id := range ids {
		oe := c.in.objs.get(id)
		v.Objs[i] = oe.v
		v.sum += oe.h
	}
	v.index()
	return v
}

func (c *coder) replica(r *reader) *Replica {
	start := r.p
	snap := c.snap(r, true)
	ids := readIDs(c, r, c.in.docs)
	clock := uint32(r.uvarint())
	var vv [MaxSites]uint32
	for i := range vv {
		vv[i] = uint32(r.uvarint())
	}
	conflicts := int32(uint32(r.uvarint()))
	if r.err != nil {
		return nil
	}
	enc := r.b[start:r.p]
	key := maphash.Bytes(c.seed, enc)
	e := &c.reps[key%uint64(len(c.reps))]
	if e.v != nil && e.key == key && bytes.Equal(e.enc, enc) {
		return e.v
	}
	rep := &Replica{Snap: snap, Docs: make([]consistency.Doc, len(ids)), docIDs: slices.Clone(ids),
		Clock: clock, VV: vv, Conflicts: conflicts}
	for i, id := range ids {
		e := c.in.docs.get(id)
		rep.Docs[i] = e.v
		rep.docSum += e.h
	}
	rep.seal()
	e.key, e.enc, e.v = key, append(e.enc[:0], enc...), rep
	return rep
}

var _ checker.Compact[*State] = (*Model)(nil)
var _ checker.Expander[*State, Action] = (*coder)(nil)

// checkRoundTrip decodes the encoding of s and reports any difference that
// matters; tests use it.
func (c *coder) checkRoundTrip(s *State) error {
	enc := c.Append(nil, s)
	d, err := c.Decode(enc)
	if err != nil {
		return err
	}
	if d.fp != s.fp || d.cfp != s.cfp {
		return fmt.Errorf("fingerprints %x/%x, want %x/%x", d.fp, d.cfp, s.fp, s.cfp)
	}
	if a, b := c.m.FormatState(d), c.m.FormatState(s); a != b {
		return fmt.Errorf("state renders differently:\n%s\nwant\n%s", a, b)
	}
	return nil
}

// stepMemo is what one controller kind at one site decided on one view:
// every controller other than a kubelet reconciles from the view alone, so
// interchangeable instances decide alike.
type stepMemo struct {
	kind CtrlKind
	site int
	v    int32
	op   Op
	// The successor the first instance produced, and its local state: an
	// instance whose local state is the same gets the same successor when
	// the step left that local state as it was.
	loc      Local
	succ     *State
	ok       bool
	reusable bool
}

// Expand implements checker.Expander: the successors Actions and Next
// give, with each reconcile step of interchangeable controllers computed
// once per view.
func (c *coder) Expand(s *State, buf []Action, yield func(Action, *State)) []Action {
	m := c.m
	buf = m.Actions(s, buf[:0])
	c.memo = c.memo[:0]
	c.exp.reset()
	for _, a := range buf {
		if a.T != ActStep || a.C < 0 || int(a.C) >= len(m.ctrls) || m.ctrls[a.C].Kind == CKubelet {
			// The environment's actions, and kubelets (whose steps depend
			// on their own containers): nothing to share.
			if ns, ok := m.next(s, a, &c.exp); ok {
				yield(a, ns)
			}
			continue
		}
		ci := int(a.C)
		ctrl := &m.ctrls[ci]
		var view *Snapshot
		if s.Sites != nil {
			view = s.Sites[ctrl.Site].Snap
		} else {
			if a.V < 0 || int(a.V) >= len(s.Vers) {
				continue
			}
			view = s.Vers[a.V]
		}
		var mm *stepMemo
		for i := range c.memo {
			if e := &c.memo[i]; e.kind == ctrl.Kind && e.site == ctrl.Site && e.v == a.V {
				mm = e
				break
			}
		}
		if mm != nil && mm.reusable && mm.loc == s.Loc[ci] {
			if mm.ok {
				yield(a, mm.succ)
			}
			continue
		}
		var op Op
		if mm != nil {
			op = mm.op
		} else {
			op, _, _ = Reconcile(ctrl, view, &s.Loc[ci])
		}
		var n *State
		ok := false
		if op.Type != OpNone {
			n = c.exp.clone(s)
			if ok = m.step(n, ci, a.V, &op, s.Loc[ci], false, &c.exp); ok {
				m.seal(n)
			}
		}
		if mm == nil {
			c.memo = append(c.memo, stepMemo{kind: ctrl.Kind, site: ctrl.Site, v: a.V, op: op, loc: s.Loc[ci],
				succ: n, ok: ok, reusable: !ok || n.Loc[ci] == s.Loc[ci]})
		}
		if ok {
			yield(a, n)
		}
	}
	for i := range c.memo {
		c.memo[i].succ = nil
	}
	return buf
}
