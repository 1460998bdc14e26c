package k8s

// CtrlKind names a controller.
type CtrlKind uint8

const (
	CScheduler CtrlKind = iota
	CKubelet
	CReplicaSet
	CDeployment
	CStatefulSet
	CJob
	CPodGC
	CGarbageCollector
	numCtrlKinds
)

var ctrlNames = [...]string{"scheduler", "kubelet", "replicaset", "deployment", "statefulset", "job", "podgc", "gc"}

func (k CtrlKind) String() string { return ctrlNames[k] }

// Controller is one controller instance of the model.
type Controller struct {
	Kind CtrlKind
	Node Name // kubelet: the node it runs
	Site int  // rhizome: the site whose replica it talks to
	Idx  int  // instance number within its kind, for display
	// Lease, when not 0, names the Lease that gates the controller (leader
	// election): it acts only while its site holds the Lease in the view
	// it reads, as a kube-controller-manager that lost its lease exits.
	Lease Name
}

// leads reports whether c may act on v under leader election.
func (c *Controller) leads(v *Snapshot) bool {
	if c.Lease == 0 {
		return true
	}
	l := v.Get(KindLease, c.Lease)
	return l != nil && l.F[LHolder] == int32(c.Site+1)
}

// MaxRunning bounds how many containers one kubelet runs in the model.
const MaxRunning = 6

// Local is a controller's own state, lost when it restarts.
type Local struct {
	// Session is the consistency model's read position: the revision (index
	// into the history) a session-consistent controller must not read before.
	Session int32
	// Running lists the pods whose containers run on a kubelet's node,
	// sorted; 0 marks a free slot.
	Running [MaxRunning]Name
	// Down is set while a kubelet's node is failed.
	Down bool
}

func (l *Local) running(n Name) bool {
	for _, r := range l.Running {
		if r == n {
			return true
		}
	}
	return false
}

func (l *Local) count() int {
	c := 0
	for _, r := range l.Running {
		if r != 0 {
			c++
		}
	}
	return c
}

// start records a running container, keeping the array sorted with free
// slots last so that equal sets have equal bytes.
func (l *Local) start(n Name) bool {
	if l.running(n) || l.Running[MaxRunning-1] != 0 {
		return false
	}
	i := 0
	for i < MaxRunning && l.Running[i] != 0 && l.Running[i] < n {
		i++
	}
	copy(l.Running[i+1:], l.Running[i:MaxRunning-1])
	l.Running[i] = n
	return true
}

func (l *Local) stop(n Name) {
	for i, r := range l.Running {
		if r == n {
			copy(l.Running[i:], l.Running[i+1:])
			l.Running[MaxRunning-1] = 0
			return
		}
	}
}

func (l *Local) hash() uint64 {
	h := uint64(uint32(l.Session)) * 0x9e3779b97f4a7c15
	for _, r := range l.Running {
		h = (h ^ uint64(r)) * 0xff51afd7ed558ccd
	}
	if l.Down {
		h ^= 0xabcdef
	}
	return mix64(h)
}

// Reconcile is one step of controller c on the view v: the single write it
// would make next (Op.Type OpNone if none) and, for kubelets, its new local
// state. It is pure: v and loc are not modified. Controllers write one object
// per step so that the checker interleaves them at the finest grain.
func Reconcile(c *Controller, v *Snapshot, loc *Local) (Op, Local, bool) {
	var op Op
	nl := *loc
	if !c.leads(v) {
		return op, nl, false
	}
	switch c.Kind {
	case CScheduler:
		op = schedule(v)
	case CKubelet:
		op = kubelet(c.Node, v, &nl)
	case CReplicaSet:
		op = replicaSets(v)
	case CDeployment:
		op = deployments(v)
	case CStatefulSet:
		op = statefulSets(v)
	case CJob:
		op = jobs(v)
	case CPodGC:
		op = podGC(v)
	case CGarbageCollector:
		op = garbageCollect(v)
	}
	return op, nl, nl != *loc
}

func update(o *Object) Op   { return Op{Type: OpUpdate, Obj: *o} }
func create(o Object) Op    { return Op{Type: OpCreate, Obj: o} }
func remove(o *Object) Op   { return Op{Type: OpDelete, Obj: *o} }
func forceDel(o *Object) Op { return Op{Type: OpDelete, Obj: *o, Force: true} }

func podActive(p *Object) bool {
	return p.F[FDeleting] == 0 && p.F[PPhase] != PhaseSucceeded && p.F[PPhase] != PhaseFailed
}

func podTerminal(p *Object) bool {
	return p.F[PPhase] == PhaseSucceeded || p.F[PPhase] == PhaseFailed
}

func podRunningReady(p *Object) bool {
	return p.F[PPhase] == PhaseRunning && p.F[PReady] == 1 && p.F[FDeleting] == 0
}

// schedule binds the first pending pod to the ready node with the fewest
// pods that has room, like the default scheduler's LeastAllocated scoring
// with a deterministic tie-break.
func schedule(v *Snapshot) Op {
	nodes := v.Of(KindNode)
	pods := v.Of(KindPod)
	for i := range pods {
		p := &pods[i]
		if p.F[PNode] != 0 || p.F[FDeleting] != 0 || p.F[PPhase] != PhasePending {
			continue
		}
		best, bestN := -1, 0
		for j := range nodes {
			n := &nodes[j]
			if n.F[NReady] == 0 {
				continue
			}
			c := 0
			for k := range pods {
				if pods[k].F[PNode] == int32(n.Name) && !podTerminal(&pods[k]) {
					c++
				}
			}
			if c >= int(n.F[NCapacity]) {
				continue
			}
			if best < 0 || c < bestN {
				best, bestN = j, c
			}
		}
		if best < 0 {
			continue
		}
		np := *p
		np.F[PNode] = int32(nodes[best].Name)
		return update(&np)
	}
	return Op{}
}

// kubelet runs the pods bound to its node. Like the real kubelet it acts on
// what it reads: it starts containers for pods bound to it and stops
// containers whose pods are gone, deleted or bound elsewhere, so a stale read
// can start a pod that has since moved (Kubernetes #59848).
func kubelet(node Name, v *Snapshot, loc *Local) Op {
	if loc.Down {
		return Op{}
	}
	self := v.Get(KindNode, node)
	if self == nil {
		return Op{}
	}
	// Stop containers that should no longer run.
	for _, r := range loc.Running {
		if r == 0 {
			continue
		}
		p := v.Get(KindPod, r)
		if p != nil && p.F[PNode] == int32(node) && p.F[FDeleting] == 0 && !podTerminal(p) {
			continue
		}
		loc.stop(r)
		if p != nil && p.F[PNode] == int32(node) && p.F[FDeleting] != 0 && !podTerminal(p) {
			np := *p
			np.F[PPhase], np.F[PReady] = PhaseFailed, 0
			return update(&np)
		}
		return Op{}
	}
	// Heartbeat: a live kubelet marks its node Ready.
	if self.F[NReady] == 0 {
		n := *self
		n.F[NReady] = 1
		return update(&n)
	}
	pods := v.Of(KindPod)
	for i := range pods {
		p := &pods[i]
		if p.F[PNode] != int32(node) {
			continue
		}
		runs := loc.running(p.Name)
		switch {
		case p.F[FDeleting] != 0:
			// Container stopped (or never started): finish the deletion.
			if p.F[PFinal] == 0 {
				return forceDel(p)
			}
			if !podTerminal(p) {
				np := *p
				np.F[PPhase], np.F[PReady] = PhaseFailed, 0
				return update(&np)
			}
		case podTerminal(p):
		case !runs:
			if !loc.start(p.Name) {
				continue // no room on this node
			}
			np := *p
			np.F[PPhase], np.F[PReady] = PhaseRunning, 1
			return update(&np)
		case p.F[PPhase] != PhaseRunning || p.F[PReady] == 0:
			np := *p
			np.F[PPhase], np.F[PReady] = PhaseRunning, 1
			return update(&np)
		case p.F[PNever] != 0:
			// A run-to-completion container exits successfully.
			loc.stop(p.Name)
			np := *p
			np.F[PPhase], np.F[PReady] = PhaseSucceeded, 0
			return update(&np)
		}
	}
	return Op{}
}

// replicaSets is the ReplicaSet controller's syncReplicaSet: create or delete
// one pod towards spec.replicas, otherwise write status.
func replicaSets(v *Snapshot) Op {
	pods := v.Of(KindPod)
	for _, rs := range v.Of(KindReplicaSet) {
		if rs.F[FDeleting] != 0 {
			continue
		}
		active, ready := 0, 0
		var victim *Object
		for i := range pods {
			p := &pods[i]
			if !p.ownedBy(KindReplicaSet, rs.Name) || !podActive(p) {
				continue
			}
			active++
			if podRunningReady(p) {
				ready++
			}
			if victim == nil || deletionRank(p) >= deletionRank(victim) {
				victim = p
			}
		}
		want := int(rs.F[RSReplicas])
		switch {
		case active < want:
			p := Object{Kind: KindPod, Name: genName(rs.Name.Base())}
			p.F[FOwnerKind], p.F[FOwner] = int32(KindReplicaSet), int32(rs.Name)
			p.F[FImage] = rs.F[FImage]
			p.F[PHash] = rs.F[RSLabelHash]
			return create(p)
		case active > want:
			return remove(victim)
		}
		if rs.F[RSStatus] != int32(active) || rs.F[RSReady] != int32(ready) || rs.F[RSObserved] != rs.F[RSGen] {
			n := rs
			n.F[RSStatus], n.F[RSReady], n.F[RSObserved] = int32(active), int32(ready), rs.F[RSGen]
			return update(&n)
		}
	}
	return Op{}
}

// deletionRank orders pods for scale-down like upstream's ActivePods sort:
// unscheduled before scheduled, pending before running, not ready before
// ready, then the newest name. Higher ranks go first.
func deletionRank(p *Object) int64 {
	r := int64(0)
	if p.F[PNode] == 0 {
		r |= 1 << 40
	}
	if p.F[PPhase] == PhasePending {
		r |= 1 << 39
	}
	if p.F[PReady] == 0 {
		r |= 1 << 38
	}
	return r | int64(p.Name)
}

// podGC is the pod garbage collector plus the node-lifecycle eviction it
// relies on: pods bound to a missing node are force-deleted; pods on a
// NotReady node are evicted (graceful delete) and, since that node's kubelet
// cannot confirm, then force-deleted (as for an out-of-service node);
// terminating unscheduled pods are force-deleted.
func podGC(v *Snapshot) Op {
	pods := v.Of(KindPod)
	for i := range pods {
		p := &pods[i]
		if p.F[PNode] == 0 {
			if p.F[FDeleting] != 0 && p.F[PFinal] == 0 {
				return forceDel(p)
			}
			continue
		}
		n := v.Get(KindNode, Name(p.F[PNode]))
		switch {
		case n == nil:
			if p.F[PFinal] == 0 {
				return forceDel(p)
			}
		case n.F[NReady] == 0 && p.F[FDeleting] == 0:
			return remove(p)
		case n.F[NReady] == 0 && p.F[PFinal] == 0:
			return forceDel(p)
		}
	}
	return Op{}
}

// garbageCollect deletes objects whose owner no longer exists (background
// cascading deletion through ownerReferences).
func garbageCollect(v *Snapshot) Op {
	for i := range v.Objs {
		o := &v.Objs[i]
		if o.F[FOwnerKind] == 0 || o.F[FDeleting] != 0 {
			continue
		}
		if v.Get(Kind(o.F[FOwnerKind]), Name(o.F[FOwner])) == nil {
			return remove(o)
		}
	}
	return Op{}
}
