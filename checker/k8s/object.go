package k8s

import (
	"sort"

	"github.com/rhizome-kv/rhizome/checker/consistency"
)

// Kind is a resource type.
type Kind uint8

const (
	KindNode Kind = iota + 1
	KindPod
	KindReplicaSet
	KindDeployment
	KindStatefulSet
	KindControllerRevision
	KindPVC
	KindJob
	KindLease
)

var kindNames = [...]string{"", "Node", "Pod", "ReplicaSet", "Deployment", "StatefulSet", "ControllerRevision", "PersistentVolumeClaim", "Job", "Lease"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind?"
}

// Field slots. Every object is a flat document of NF int32 leaves, which is
// exactly the shape the merge rules of package consistency work on; the
// meaning of a slot depends on the kind. Slots 0-3 are shared.
const (
	FOwnerKind = 0 // metadata.ownerReferences[0].kind (0: none)
	FOwner     = 1 // metadata.ownerReferences[0].name
	FImage     = 2 // spec.template image version (the pod-template content)
	FDeleting  = 3 // metadata.deletionTimestamp is set

	// Pod
	PNode     = 4  // spec.nodeName (a node's Name; 0: unscheduled)
	PPhase    = 5  // status.phase
	PReady    = 6  // status.conditions[Ready]
	PFinal    = 7  // metadata.finalizers contains batch.kubernetes.io/job-tracking
	PHash     = 8  // labels: pod-template-hash / controller-revision-hash
	PNever    = 9  // spec.restartPolicy == Never (job pods)
	PRunningN = 10 // unused by pods; kept for layout symmetry

	// ReplicaSet
	RSReplicas  = 4  // spec.replicas
	RSStatus    = 5  // status.replicas
	RSReady     = 6  // status.readyReplicas
	RSGen       = 7  // metadata.generation
	RSObserved  = 8  // status.observedGeneration
	RSLabelHash = 9  // labels[pod-template-hash]
	RSSelHash   = 10 // spec.selector.matchLabels[pod-template-hash]
	RSAnnUser   = 11 // annotations copied from the Deployment
	RSAnnRev    = 12 // annotations[deployment.kubernetes.io/revision]

	// Deployment
	DReplicas = 4  // spec.replicas
	DStatus   = 5  // status.replicas
	DUpdated  = 6  // status.updatedReplicas
	DGen      = 7  // metadata.generation
	DObserved = 8  // status.observedGeneration
	DPaused   = 9  // spec.paused
	DAnnUser  = 10 // user annotations
	DReady    = 11 // status.readyReplicas
	// spec.strategy.rollingUpdate.maxSurge / maxUnavailable, plus one
	// (0: unset, the default 25%)
	DMaxSurge   = 12
	DMaxUnavail = 13

	// StatefulSet
	SSReplicas = 4  // spec.replicas
	SSStatus   = 5  // status.replicas
	SSReady    = 6  // status.readyReplicas
	SSCurrent  = 7  // status.currentReplicas
	SSUpdated  = 8  // status.updatedReplicas
	SSGen      = 9  // metadata.generation
	SSObserved = 10 // status.observedGeneration
	SSCurRev   = 11 // status.currentRevision
	SSUpdRev   = 12 // status.updateRevision
	SSClaims   = 13 // spec.volumeClaimTemplates is not empty

	// ControllerRevision
	CRRevision = 4 // revision

	// PersistentVolumeClaim
	PVCOrdinal = 4 // the StatefulSet ordinal it serves
	PVCSet     = 5 // the StatefulSet's name

	// Job
	JCompletions = 4  // spec.completions
	JParallelism = 5  // spec.parallelism
	JActive      = 6  // status.active
	JReady       = 7  // status.ready
	JSucceeded   = 8  // status.succeeded
	JFailed      = 9  // status.failed
	JComplete    = 10 // status.conditions[Complete]
	JUncSucc     = 11 // status.uncountedTerminatedPods.succeeded (bit per pod)
	JUncFail     = 12 // status.uncountedTerminatedPods.failed (bit per pod)

	// Lease (coordination.k8s.io, kube-controller-manager's leader lock)
	LHolder = 4 // spec.holderIdentity: the holding site plus one (0: none)
	LTerm   = 5 // spec.leaseTransitions

	// Node
	NReady    = 4 // status.conditions[Ready]
	NCapacity = 5 // status.allocatable.pods
)

// NF is the number of field slots per object.
const NF = consistency.MaxFields

// Pod phases.
const (
	PhasePending int32 = iota
	PhaseRunning
	PhaseSucceeded
	PhaseFailed
)

// Name identifies an object within its kind: a base name from the scenario's
// name table in the high 16 bits and a suffix in the low 16 bits.
type Name uint32

const (
	sufOrdinal   = 0x1000 // low 12 bits: StatefulSet ordinal
	sufHash      = 0x2000 // low 12 bits: pod-template hash
	sufGenerated = 0x4000 // bits 8-11: site; bits 0-7: per-site counter
)

// MakeName composes a base name and a suffix.
func MakeName(base uint16, suffix uint16) Name { return Name(uint32(base)<<16 | uint32(suffix)) }

// Base returns the base-name index.
func (n Name) Base() uint16 { return uint16(n >> 16) }

// Ordinal returns the StatefulSet ordinal of a pod name, or -1.
func (n Name) Ordinal() int {
	if n&0xf000 == sufOrdinal {
		return int(n & 0xfff)
	}
	return -1
}

// Object is one resource. RV is its resourceVersion in the store it was read
// from.
type Object struct {
	Kind Kind
	Name Name
	RV   int32
	F    [NF]int32
}

// Key orders objects by kind, then name.
func (o *Object) Key() uint64 { return key(o.Kind, o.Name) }

func key(k Kind, n Name) uint64 { return uint64(k)<<32 | uint64(n) }

func (o *Object) ownedBy(k Kind, n Name) bool {
	return o.F[FOwnerKind] == int32(k) && o.F[FOwner] == int32(n)
}

// hash mixes every byte that makes an object what it is.
func (o *Object) hash() uint64 {
	h := o.Key()*0x9e3779b97f4a7c15 ^ uint64(uint32(o.RV))<<7
	for i := 0; i < NF; i += 2 {
		h ^= uint64(uint32(o.F[i])) | uint64(uint32(o.F[i+1]))<<32
		h *= 0xff51afd7ed558ccd
		h ^= h >> 29
	}
	return mix64(h)
}

// mix64 is the splitmix64 finaliser.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Snapshot is one immutable version of the cluster state. Objects are sorted
// by Key. The hash is a sum of object hashes, so a write updates it in O(1).
type Snapshot struct {
	Rev  int32 // the revision that produced it
	Gen  int32 // counter behind generated names
	sum  uint64
	Objs []Object
	// ids, when not nil, holds the intern id of each object (0 when not
	// known yet), so that encoding a state interns only its new objects.
	ids []uint32
	// off[k] is the index of the first object of kind k (of any kind >= k
	// when there is none), so that Of and Get need not search other kinds.
	off [numKinds + 1]uint16
	// sid, when not 0, is the intern id of the snapshot (codec.go).
	sid uint32
}

// numKinds bounds Kind values: kinds are 1..numKinds-1.
const numKinds = int(KindLease) + 1

// index sets off from Objs.
func (s *Snapshot) index() {
	var n [numKinds + 1]uint16
	for i := range s.Objs {
		if k := int(s.Objs[i].Kind); k < numKinds {
			n[k+1]++
		}
	}
	for k := 1; k <= numKinds; k++ {
		n[k] += n[k-1]
	}
	s.off = n
}

// shift adjusts off for one object of kind k added (d = 1) or removed (-1).
func (s *Snapshot) shift(k Kind, d int) {
	for j := int(k) + 1; j <= numKinds; j++ {
		s.off[j] = uint16(int(s.off[j]) + d)
	}
}

// Hash identifies the snapshot's content, revision included.
func (s *Snapshot) Hash() uint64 {
	return s.sum ^ mix64(uint64(uint32(s.Rev))<<32|uint64(uint32(s.Gen)))
}

func newSnapshot(rev int32, objs []Object) *Snapshot {
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key() < objs[j].Key() })
	s := &Snapshot{Rev: rev, Objs: objs}
	for i := range objs {
		objs[i].RV = rev
		s.sum += objs[i].hash()
	}
	s.index()
	return s
}

// search returns the index of key k or where it would be inserted.
func (s *Snapshot) search(k uint64) (int, bool) {
	lo, hi := 0, len(s.Objs)
	if kind := k >> 32; kind > 0 && kind < uint64(numKinds) {
		lo, hi = int(s.off[kind]), int(s.off[kind+1])
	}
	for lo < hi {
		m := (lo + hi) >> 1
		if s.Objs[m].Key() < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.Objs) && s.Objs[lo].Key() == k
}

// Get returns the object or nil.
func (s *Snapshot) Get(k Kind, n Name) *Object {
	if k == 0 || int(k) >= numKinds {
		return nil
	}
	if i, ok := s.search(key(k, n)); ok {
		return &s.Objs[i]
	}
	return nil
}

// Of returns the objects of one kind (a sub-slice; do not modify).
func (s *Snapshot) Of(k Kind) []Object {
	if int(k) >= numKinds {
		return s.Objs[len(s.Objs):]
	}
	return s.Objs[s.off[k]:s.off[k+1]]
}

// OpType is what a write does.
type OpType uint8

const (
	OpNone OpType = iota
	OpCreate
	OpUpdate
	OpDelete
)

// Op is one write to the API. For updates and deletes Obj.RV is the
// resourceVersion the writer read (compare-and-swap); for creates a Name
// with a generated suffix of 0 asks the store to generate one.
type Op struct {
	Type  OpType
	Force bool // delete with grace period 0
	Obj   Object
}

// genName asks the store to generate a name from base.
func genName(base uint16) Name { return MakeName(base, sufGenerated) }

// applied describes the effect of an op on a snapshot.
type applied struct {
	ok      bool
	removed bool   // the key is gone after the op
	obj     Object // the object after the op (when !removed)
}

// apply evaluates op against s (compare-and-swap against s) and returns the
// new snapshot at revision rev, built in a. site is stamped into generated
// names so that sites never generate the same name, as random suffixes would
// not.
func (s *Snapshot) apply(op *Op, rev int32, site int, a *arena) (*Snapshot, applied) {
	o := op.Obj
	gen := s.Gen
	if op.Type == OpCreate && o.Name&0xffff == sufGenerated {
		gen++
		o.Name |= Name(site&0xf)<<8 | Name(gen&0xff)
	}
	i, exists := s.search(o.Key())
	var res applied
	switch op.Type {
	case OpCreate:
		if exists || !validObject(&o) {
			return s, res
		}
		o.RV = rev
		res = applied{ok: true, obj: o}
	case OpUpdate:
		if !exists || s.Objs[i].RV != o.RV {
			return s, res
		}
		cur := &s.Objs[i]
		if cur.F == o.F || !validObject(&o) {
			return s, res // nothing to write, or kube-apiserver rejects it
		}
		o.RV = rev
		res = applied{ok: true, obj: o}
	case OpDelete:
		if !exists || (o.RV != 0 && s.Objs[i].RV != o.RV) {
			return s, res
		}
		cur := s.Objs[i]
		graceful := cur.Kind == KindPod && (cur.F[PNode] != 0 && !op.Force || cur.F[PFinal] != 0)
		if graceful {
			if cur.F[FDeleting] != 0 {
				return s, res
			}
			cur.F[FDeleting] = 1
			cur.RV = rev
			res = applied{ok: true, obj: cur}
		} else {
			res = applied{ok: true, removed: true}
		}
	default:
		return s, res
	}
	n := a.snapshot()
	*n = Snapshot{Rev: rev, Gen: gen, sum: s.sum, off: s.off}
	switch {
	case res.removed:
		n.shift(s.Objs[i].Kind, -1)
		n.Objs = a.objects(len(s.Objs) - 1)
		copy(n.Objs, s.Objs[:i])
		copy(n.Objs[i:], s.Objs[i+1:])
		n.sum -= s.Objs[i].hash()
		if s.ids != nil {
			n.ids = a.uint32s(len(s.ids) - 1)
			copy(n.ids, s.ids[:i])
			copy(n.ids[i:], s.ids[i+1:])
		}
	case exists:
		n.Objs = a.objects(len(s.Objs))
		copy(n.Objs, s.Objs)
		n.sum -= s.Objs[i].hash()
		n.Objs[i] = res.obj
		n.sum += res.obj.hash()
		if s.ids != nil {
			n.ids = a.uint32s(len(s.ids))
			copy(n.ids, s.ids)
			n.ids[i] = 0
		}
	default:
		n.shift(res.obj.Kind, 1)
		n.Objs = a.objects(len(s.Objs) + 1)
		copy(n.Objs, s.Objs[:i])
		n.Objs[i] = res.obj
		copy(n.Objs[i+1:], s.Objs[i:])
		n.sum += res.obj.hash()
		if s.ids != nil {
			n.ids = a.uint32s(len(s.ids) + 1)
			copy(n.ids, s.ids[:i])
			n.ids[i] = 0
			copy(n.ids[i+1:], s.ids[i:])
		}
	}
	return n, res
}
