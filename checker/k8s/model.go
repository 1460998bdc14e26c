package k8s

import (
	"fmt"

	"github.com/rhizome-kv/rhizome/checker"
)

// Action kinds.
const (
	ActStep           uint8 = iota // controller C reads view V and acts
	ActScale                       // user scales workload X by V (+1/-1)
	ActImage                       // user changes workload X's image
	ActPause                       // user toggles Deployment X's pause
	ActAnnotate                    // user changes Deployment X's annotations
	ActDeletePod                   // user deletes pod X
	ActDeleteWorkload              // user deletes workload X
	ActRestart                     // controller C restarts, losing local state
	ActNodeFail                    // kubelet C's node fails
	ActNodeRestart                 // kubelet C's node comes back
	ActPartition                   // every site is cut off from the others
	ActHeal                        // the partition heals
	ActSync                        // site C sends its state to site V
	ActNodeLost                    // site C's node lifecycle marks node X NotReady
	ActLeaseExpire                 // site C's controller-manager sees the Lease expire (while cut) and takes it
	ActStrategy                    // user at site C sets Deployment X's maxSurge (V=0) or maxUnavailable (V=1) to 0
)

// Action is one transition of the model; it marshals to the JSON kept in
// reports for replay.
type Action struct {
	T uint8 `json:"t"`
	C int16 `json:"c"`
	V int32 `json:"v"`
	X int32 `json:"x"`
}

// State is one state of the model. States are immutable once built.
type State struct {
	// Vers is the history of store versions: the latest only (synchronous),
	// every revision (sessions), the uncommitted suffix (optimistic-linear)
	// or the fork tree (causal, with Par holding each version's parent).
	Vers  []*Snapshot
	Par   []int32
	Sites []*Replica // rhizome: one replica per site
	Cut   bool       // rhizome: the sites are partitioned
	Loc   []Local
	Env   Budget
	// Ghost holds history bits for properties about transitions.
	Ghost uint32
	fp    uint64
	cfp   uint64
	// locFP and locCFP are the positional and symmetric sums of the local
	// state hashes, kept up to date by setLoc so that seal is O(1) in them.
	locFP, locCFP uint64
}

// Model is the Kubernetes model under one consistency model; it implements
// checker.Model, checker.Symmetric and checker.Gauged.
type Model struct {
	cfg       Config
	names     []string
	ctrls     []Controller
	group     []uint64 // symmetry group of each controller
	nodeSite  map[Name]int
	workloads []uint64
	init      *State
	sites     int
	target    int
	bound     int
	actBound  int
	sel       []int // selected property ids
	interned  *interned
	coderBits int // tests: cache size of new coders (0: the default)
}

// New builds the model cfg describes.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Consistency == Rhizome {
		if _, err := kubeRules(); err != nil {
			return nil, err
		}
	}
	sc := ScenarioByName(cfg.Scenario)
	sites := 1
	if cfg.Consistency.replicated() {
		sites = cfg.Sites
	}
	b := &builder{cfg: cfg, sites: sites, names: []string{""}, running: map[Name][]Name{}, nodeSite: map[Name]int{}}
	sc.build(b)
	if len(b.ctrls) > 64 {
		return nil, fmt.Errorf("%w: %d controllers, at most 64", ErrInvalidConfig, len(b.ctrls))
	}
	m := &Model{cfg: cfg, names: b.names, ctrls: b.ctrls, nodeSite: b.nodeSite, sites: sites, target: b.target, bound: b.bound,
		actBound: b.activeBound, interned: newInterned()}
	for i, c := range m.ctrls {
		g := uint64(c.Kind)<<8 | uint64(c.Site)
		if c.Kind == CKubelet {
			g = 1<<32 | uint64(i) // tied to its node: never interchangeable
		}
		m.group = append(m.group, g)
	}
	snap := newSnapshot(1, b.objs)
	for _, o := range snap.Objs {
		if o.F[FOwnerKind] == 0 && o.Kind != KindNode {
			m.workloads = append(m.workloads, o.Key())
		}
	}
	s := &State{Env: b.budget, Loc: make([]Local, len(m.ctrls))}
	for i, c := range m.ctrls {
		if c.Kind == CKubelet {
			for _, p := range b.running[c.Node] {
				s.Loc[i].start(p)
			}
		}
	}
	if cfg.Consistency.replicated() {
		for range sites {
			s.Sites = append(s.Sites, newReplica(snap))
		}
	} else {
		s.Vers = []*Snapshot{snap}
		if cfg.Consistency == Causal {
			s.Par = []int32{-1}
		}
	}
	for i := range s.Loc {
		f, c := m.locTerms(i, &s.Loc[i])
		s.locFP += f
		s.locCFP += c
	}
	m.init = m.seal(s)
	if len(cfg.Properties) == 0 {
		for i := range properties {
			m.sel = append(m.sel, i)
		}
	} else {
		for _, p := range cfg.Properties {
			m.sel = append(m.sel, propertyIndex(p))
		}
	}
	return m, nil
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Bounds returns the derived over-replication bounds (0 when not checked):
// running pods, active pods in one replica, and the pods that should run.
func (m *Model) Bounds() (running, active, target int) { return m.bound, m.actBound, m.target }

func (m *Model) locTerms(i int, l *Local) (uint64, uint64) {
	lh := l.hash()
	return mix64(lh ^ uint64(i+1)*0xc2b2ae3d27d4eb4f), mix64(lh ^ m.group[i]*0xc2b2ae3d27d4eb4f)
}

// setLoc replaces controller i's local state, copying the slice (into a)
// and keeping the fingerprint sums current.
func (m *Model) setLoc(n *State, i int, l Local, a *arena) {
	if n.Loc[i] == l {
		return
	}
	of, oc := m.locTerms(i, &n.Loc[i])
	nf, nc := m.locTerms(i, &l)
	loc := a.locals(len(n.Loc))
	copy(loc, n.Loc)
	n.Loc = loc
	n.Loc[i] = l
	n.locFP += nf - of
	n.locCFP += nc - oc
}

// seal computes a state's fingerprints.
func (m *Model) seal(s *State) *State {
	var h uint64 = 0x84222325cbf29ce4
	for i, v := range s.Vers {
		h = mix64(h ^ v.Hash() + uint64(i))
	}
	for _, p := range s.Par {
		h = (h ^ uint64(uint32(p))) * 0x100000001b3
	}
	for i, r := range s.Sites {
		h += mix64(r.h ^ uint64(i)*0x9e3779b97f4a7c15)
	}
	if s.Cut {
		h ^= 0x5bd1e995
	}
	for i, b := range s.Env {
		h ^= uint64(uint8(b)) << (i * 5 % 59)
	}
	h = mix64(h ^ uint64(s.Ghost)<<40)
	fp, cfp := h+s.locFP, h+s.locCFP
	s.fp, s.cfp = fp, cfp
	return s
}

// InitStates implements checker.Model.
func (m *Model) InitStates() []*State { return []*State{m.init} }

// Fingerprint implements checker.Model.
func (m *Model) Fingerprint(s *State) uint64 { return s.fp }

// CanonicalFingerprint implements checker.Symmetric: instances of the same
// controller kind at the same site are interchangeable (their identity is in
// no object), so their local states are combined without their positions.
func (m *Model) CanonicalFingerprint(s *State) uint64 { return s.cfp }

// latest is the version the environment and the properties treat as the
// truth: the newest version, or site 0's replica under rhizome.
func (m *Model) latest(s *State) *Snapshot {
	if s.Sites != nil {
		return s.Sites[0].Snap
	}
	return s.Vers[len(s.Vers)-1]
}

// views appends the versions controller c may read.
func (m *Model) views(s *State, c int, out []int32) []int32 {
	n := int32(len(s.Vers))
	switch m.cfg.Consistency {
	case Synchronous, Rhizome, RhizomeJSONPath:
		return append(out, 0)
	case MonotonicSession, ResettableSession:
		for v := s.Loc[c].Session; v < n; v++ {
			out = append(out, v)
		}
	case OptimisticLinear:
		for v := int32(0); v < n; v++ {
			out = append(out, v)
		}
	case Causal:
		base := s.Loc[c].Session
		for v := base; v < n; v++ {
			if descends(s.Par, v, base) {
				out = append(out, v)
			}
		}
	}
	return out
}

// descends reports whether version v equals anc or follows it in the tree.
func descends(par []int32, v, anc int32) bool {
	for v > anc {
		v = par[v]
	}
	return v == anc
}

// Actions implements checker.Model.
func (m *Model) Actions(s *State, buf []Action) []Action {
	var vs [64]int32
	for c := range m.ctrls {
		if m.ctrls[c].Kind == CKubelet && s.Loc[c].Down {
			if s.Env[BNodeRestart] > 0 {
				buf = append(buf, Action{T: ActNodeRestart, C: int16(c)})
			}
			continue
		}
		for _, v := range m.views(s, c, vs[:0]) {
			buf = append(buf, Action{T: ActStep, C: int16(c), V: v})
		}
		if m.ctrls[c].Kind == CKubelet {
			if s.Env[BNodeFail] > 0 {
				buf = append(buf, Action{T: ActNodeFail, C: int16(c)})
			}
		} else if s.Env[BRestart] > 0 {
			buf = append(buf, Action{T: ActRestart, C: int16(c)})
		}
	}
	for x := range m.workloads {
		if s.Env[BScale] > 0 {
			buf = append(buf, Action{T: ActScale, X: int32(x), V: 1}, Action{T: ActScale, X: int32(x), V: -1})
		}
		if s.Env[BImage] > 0 {
			buf = append(buf, Action{T: ActImage, X: int32(x)})
		}
		if s.Env[BPause] > 0 {
			buf = append(buf, Action{T: ActPause, X: int32(x)})
		}
		if s.Env[BAnnotate] > 0 {
			buf = append(buf, Action{T: ActAnnotate, X: int32(x)})
		}
		if s.Env[BDeleteWorkload] > 0 {
			buf = append(buf, Action{T: ActDeleteWorkload, X: int32(x)})
		}
		if s.Env[BStrategy] > 0 && Kind(m.workloads[x]>>32) == KindDeployment {
			for site := range max(1, len(s.Sites)) {
				buf = append(buf, Action{T: ActStrategy, C: int16(site), X: int32(x)}, Action{T: ActStrategy, C: int16(site), X: int32(x), V: 1})
			}
		}
	}
	if s.Env[BDeletePod] > 0 {
		for _, p := range m.latest(s).Of(KindPod) {
			if p.F[FDeleting] == 0 {
				buf = append(buf, Action{T: ActDeletePod, X: int32(p.Name)})
			}
		}
	}
	if s.Sites != nil {
		switch {
		case s.Cut:
			buf = append(buf, Action{T: ActHeal})
			if s.Env[BLeaseExpire] > 0 {
				for site := range s.Sites {
					buf = append(buf, Action{T: ActLeaseExpire, C: int16(site)})
				}
			}
			if s.Env[BNodeLost] > 0 {
				for site := range s.Sites {
					for _, n := range s.Sites[site].Snap.Of(KindNode) {
						if m.nodeSite[n.Name] != site && n.F[NReady] != 0 {
							buf = append(buf, Action{T: ActNodeLost, C: int16(site), X: int32(n.Name)})
						}
					}
				}
			}
		default:
			if s.Env[BPartition] > 0 && len(s.Sites) > 1 {
				buf = append(buf, Action{T: ActPartition})
			}
			for i := range s.Sites {
				for j := range s.Sites {
					if i != j && behind(s.Sites[j], s.Sites[i]) {
						buf = append(buf, Action{T: ActSync, C: int16(i), V: int32(j)})
					}
				}
			}
		}
	}
	return buf
}

// clone starts a successor of s on the heap.
func clone(s *State) *State { return (*arena)(nil).clone(s) }

// restartSession is the session a restarted controller starts with.
func (m *Model) restartSession(old int32) int32 {
	if m.cfg.Consistency == MonotonicSession {
		return old // the session survives the restart
	}
	return 0
}

// write lands op on the store on behalf of a reader of version v at site
// (v < 0: the latest version, for the environment). It returns the index of
// the version the write produced (-1 if none), the snapshot the
// compare-and-swap was evaluated against and the outcome. New parts of n
// come from a.
func (m *Model) write(n *State, v int32, site int, op *Op, a *arena) (int32, *Snapshot, applied) {
	if n.Sites != nil {
		r, base, res := n.Sites[site].write(op, site, m.cfg.Consistency == Rhizome, a)
		if res.ok {
			sites := a.replicas(len(n.Sites))
			copy(sites, n.Sites)
			n.Sites = sites
			n.Sites[site] = r
		}
		return 0, base, res
	}
	last := int32(len(n.Vers) - 1)
	rev := n.Vers[last].Rev + 1
	if v < 0 {
		v = last
	}
	switch m.cfg.Consistency {
	case Synchronous, MonotonicSession, ResettableSession:
		base := n.Vers[last]
		snap, res := base.apply(op, rev, 0, a)
		if !res.ok {
			return -1, base, res
		}
		if m.cfg.Consistency == Synchronous {
			n.Vers = a.snapshots(1)
			n.Vers[0] = snap
			return 0, base, res
		}
		n.Vers = a.appendSnapshot(n.Vers, snap)
		return last + 1, base, res
	case OptimisticLinear:
		base := n.Vers[v]
		snap, res := base.apply(op, rev, 0, a)
		if !res.ok {
			return -1, base, res
		}
		switch {
		case v != last:
			// A leader change: the new leader only has version v.
			n.Vers = a.snapshots(2)
			n.Vers[0], n.Vers[1] = base, snap
		case len(n.Vers) >= m.cfg.CommitEvery:
			n.Vers = a.snapshots(1) // everything up to here committed
			n.Vers[0] = snap
		default:
			n.Vers = a.appendSnapshot(n.Vers, snap)
		}
		return int32(len(n.Vers) - 1), base, res
	case Causal:
		base := n.Vers[v]
		snap, res := base.apply(op, rev, 0, a)
		if !res.ok {
			return -1, base, res
		}
		n.Vers = a.appendSnapshot(n.Vers, snap)
		n.Par = a.appendInt32(n.Par, v)
		return last + 1, base, res
	}
	return -1, nil, applied{}
}

// Next implements checker.Model.
func (m *Model) Next(s *State, a Action) (*State, bool) { return m.next(s, a, nil) }

// next is Next building the successor in ar.
func (m *Model) next(s *State, a Action, ar *arena) (*State, bool) {
	if a.T == ActStep {
		return m.nextStep(s, int(a.C), a.V, ar)
	}
	n := ar.clone(s)
	ok := false
	switch a.T {
	case ActRestart:
		if n.Env[BRestart] > 0 {
			n.Env[BRestart]--
			m.setLoc(n, int(a.C), Local{Session: m.restartSession(n.Loc[a.C].Session)}, ar)
			ok = true
		}
	case ActNodeFail:
		if n.Env[BNodeFail] > 0 && !n.Loc[a.C].Down {
			n.Env[BNodeFail]--
			m.setLoc(n, int(a.C), Local{Session: n.Loc[a.C].Session, Down: true}, ar)
			// The node lifecycle controller at the node's site notices.
			node := m.ctrls[a.C].Node
			m.envWrite(n, m.nodeSite[node], func(v *Snapshot) (Op, bool) {
				o := v.Get(KindNode, node)
				if o == nil || o.F[NReady] == 0 {
					return Op{}, false
				}
				no := *o
				no.F[NReady] = 0
				return update(&no), true
			}, ar)
			ok = true
		}
	case ActNodeRestart:
		if n.Env[BNodeRestart] > 0 && n.Loc[a.C].Down {
			n.Env[BNodeRestart]--
			m.setLoc(n, int(a.C), Local{Session: m.restartSession(n.Loc[a.C].Session)}, ar)
			ok = true
		}
	case ActScale, ActImage, ActPause, ActAnnotate, ActDeleteWorkload:
		ok = m.userWorkload(n, a, ar)
	case ActStrategy:
		ok = m.userStrategy(n, a, ar)
	case ActLeaseExpire:
		if n.Sites != nil && n.Cut && n.Env[BLeaseExpire] > 0 {
			ok = m.envWrite(n, int(a.C), func(v *Snapshot) (Op, bool) {
				l := v.Of(KindLease)
				if len(l) == 0 || l[0].F[LHolder] == int32(a.C)+1 {
					return Op{}, false
				}
				nl := l[0]
				nl.F[LHolder], nl.F[LTerm] = int32(a.C)+1, nl.F[LTerm]+1
				return update(&nl), true
			}, ar)
			if ok {
				n.Env[BLeaseExpire]--
			}
		}
	case ActDeletePod:
		if n.Env[BDeletePod] > 0 {
			ok = m.envWrite(n, 0, func(v *Snapshot) (Op, bool) {
				p := v.Get(KindPod, Name(a.X))
				if p == nil {
					return Op{}, false
				}
				return remove(p), true
			}, ar)
			if ok {
				n.Env[BDeletePod]--
			}
		}
	case ActPartition:
		if n.Sites != nil && !n.Cut && n.Env[BPartition] > 0 {
			n.Env[BPartition]--
			n.Cut, ok = true, true
		}
	case ActHeal:
		if n.Cut {
			n.Cut, ok = false, true
		}
	case ActSync:
		if n.Sites != nil && !n.Cut && behind(n.Sites[a.V], n.Sites[a.C]) {
			sites := ar.replicas(len(n.Sites))
			copy(sites, n.Sites)
			n.Sites = sites
			n.Sites[a.V] = mergeInto(n.Sites[a.V], n.Sites[a.C], m.cfg.Consistency == Rhizome, ar)
			ok = true
		}
	case ActNodeLost:
		if n.Sites != nil && n.Cut && n.Env[BNodeLost] > 0 {
			ok = m.envWrite(n, int(a.C), func(v *Snapshot) (Op, bool) {
				o := v.Get(KindNode, Name(a.X))
				if o == nil || o.F[NReady] == 0 {
					return Op{}, false
				}
				no := *o
				no.F[NReady] = 0
				return update(&no), true
			}, ar)
			if ok {
				n.Env[BNodeLost]--
			}
		}
	}
	if !ok {
		return s, false
	}
	return m.seal(n), true
}

// envWrite lets the environment write through the latest version (or the
// given site's replica), building in a.
func (m *Model) envWrite(n *State, site int, f func(v *Snapshot) (Op, bool), a *arena) bool {
	var v *Snapshot
	if n.Sites != nil {
		v = n.Sites[site].Snap
	} else {
		v = n.Vers[len(n.Vers)-1]
	}
	op, ok := f(v)
	if !ok {
		return false
	}
	_, _, res := m.write(n, -1, site, &op, a)
	return res.ok
}

func (m *Model) userWorkload(n *State, a Action, ar *arena) bool {
	slot := map[uint8]int{ActScale: BScale, ActImage: BImage, ActPause: BPause, ActAnnotate: BAnnotate, ActDeleteWorkload: BDeleteWorkload}[a.T]
	if n.Env[slot] <= 0 || int(a.X) >= len(m.workloads) {
		return false
	}
	k := m.workloads[a.X]
	ok := m.envWrite(n, 0, func(v *Snapshot) (Op, bool) {
		o := v.Get(Kind(k>>32), Name(k))
		if o == nil {
			return Op{}, false
		}
		if a.T == ActDeleteWorkload {
			return remove(o), true
		}
		no := *o
		gen := map[Kind]int{KindReplicaSet: RSGen, KindDeployment: DGen, KindStatefulSet: SSGen}[o.Kind]
		switch a.T {
		case ActScale:
			f := map[Kind]int{KindReplicaSet: RSReplicas, KindDeployment: DReplicas, KindStatefulSet: SSReplicas, KindJob: JParallelism}[o.Kind]
			nv := no.F[f] + a.V
			if nv < 0 || nv > 8 {
				return Op{}, false
			}
			no.F[f] = nv
		case ActImage:
			if o.Kind == KindJob {
				return Op{}, false
			}
			no.F[FImage]++
		case ActPause:
			if o.Kind != KindDeployment {
				return Op{}, false
			}
			no.F[DPaused] ^= 1
		case ActAnnotate:
			if o.Kind != KindDeployment {
				return Op{}, false
			}
			no.F[DAnnUser]++
		}
		if gen != 0 && a.T != ActAnnotate {
			no.F[gen]++
		}
		return update(&no), true
	}, ar)
	if ok {
		n.Env[slot]--
	}
	return ok
}

// userStrategy sets a Deployment's maxSurge (a.V == 0) or maxUnavailable
// to 0 through site a.C, as kubectl edit would; kube-apiserver rejects the
// edit when the other is 0 already.
func (m *Model) userStrategy(n *State, a Action, ar *arena) bool {
	if n.Env[BStrategy] <= 0 || int(a.X) >= len(m.workloads) || int(a.C) >= max(1, len(n.Sites)) {
		return false
	}
	k := m.workloads[a.X]
	ok := m.envWrite(n, int(a.C), func(v *Snapshot) (Op, bool) {
		o := v.Get(Kind(k>>32), Name(k))
		if o == nil || o.Kind != KindDeployment {
			return Op{}, false
		}
		no := *o
		no.F[DMaxSurge+int(a.V&1)] = 1
		no.F[DGen]++
		return update(&no), true
	}, ar)
	if ok {
		n.Env[BStrategy]--
	}
	return ok
}

// nextStep runs controller c on version v, building the successor in a.
// Most steps do nothing (the controller has nothing to do in that view), so
// the successor is only built once the reconcile step is known to act.
func (m *Model) nextStep(s *State, c int, v int32, a *arena) (*State, bool) {
	if c < 0 || c >= len(m.ctrls) {
		return s, false
	}
	ctrl := &m.ctrls[c]
	var view *Snapshot
	if s.Sites != nil {
		view = s.Sites[ctrl.Site].Snap
	} else {
		if v < 0 || int(v) >= len(s.Vers) {
			return s, false
		}
		view = s.Vers[v]
	}
	op, nl, changed := Reconcile(ctrl, view, &s.Loc[c])
	if op.Type == OpNone && !changed {
		return s, false
	}
	n := a.clone(s)
	if !m.step(n, c, v, &op, nl, changed, a) {
		return s, false
	}
	return m.seal(n), true
}

// step lands what controller c decided on version v (op, its new local
// state nl, and whether that changed) in n, building in a, and reports
// whether anything happened.
func (m *Model) step(n *State, c int, v int32, op *Op, nl Local, changed bool, a *arena) bool {
	ctrl := &m.ctrls[c]
	wrote := false
	if op.Type != OpNone {
		idx, base, res := m.write(n, v, ctrl.Site, op, a)
		if res.ok {
			wrote = true
			n.Ghost |= ghost(ctrl.Kind, base, op, &res)
			switch m.cfg.Consistency {
			case MonotonicSession, ResettableSession, Causal:
				nl.Session = idx // read your writes
			}
		}
	}
	if !wrote && !changed {
		return false
	}
	if !wrote {
		switch m.cfg.Consistency {
		case MonotonicSession, ResettableSession, Causal:
			nl.Session = max(nl.Session, v)
		}
	}
	m.setLoc(n, c, nl, a)
	return true
}

// Gauges implements checker.Gauged.
func (m *Model) Gauges() []string {
	return []string{"running-pods", "replica-active-pods", "history-length", "merge-conflicts"}
}

// Measure implements checker.Gauged.
func (m *Model) Measure(s *State, out []int64) {
	out[0] = int64(runningPods(m, s))
	out[1] = int64(maxActive(s))
	out[2] = int64(len(s.Vers))
	for _, r := range s.Sites {
		out[3] += int64(r.Conflicts)
	}
}

// maxActive is the largest number of active ReplicaSet pods in one replica
// (or the latest version).
func maxActive(s *State) int {
	count := func(v *Snapshot) int {
		c := 0
		for _, p := range v.Of(KindPod) {
			if p.F[FOwnerKind] == int32(KindReplicaSet) && podActive(&p) {
				c++
			}
		}
		return c
	}
	if s.Sites == nil {
		return count(s.Vers[len(s.Vers)-1])
	}
	best := 0
	for _, r := range s.Sites {
		best = max(best, count(r.Snap))
	}
	return best
}

func runningPods(m *Model, s *State) int {
	c := 0
	for i := range m.ctrls {
		if m.ctrls[i].Kind == CKubelet {
			c += s.Loc[i].count()
		}
	}
	return c
}

var _ checker.Model[*State, Action] = (*Model)(nil)
var _ checker.Symmetric[*State] = (*Model)(nil)
var _ checker.Gauged[*State] = (*Model)(nil)
