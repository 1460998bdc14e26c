package k8s

import "github.com/rhizome-kv/rhizome/checker"

// Property ids; ghost bits use the same numbers.
const (
	propUniqueNames = iota
	propPodsOnNodesUnique
	propRSStatusMatchesPods
	propRSReplicasMatchSpec
	propDeployRSAnnotations
	propDeployRSHashLabels
	propDeployOldRSNoPods
	propDeployPausedNoNewRS
	propDeployEventuallyComplete
	propSTSStatusCounts
	propSTSOrderedCreate
	propSTSReverseDelete
	propSTSPredecessorsReady
	propJobCounts
	propJobFinishedNoFinalizer
	propEventuallySteady
	propRunningBound
	propRunningReturns
	propReplicaActiveBound
	propObjectsValid
	propRSWithinSpecConnected
)

type property struct {
	checker.Property
	eval func(m *Model, s *State, e *evalCtx) bool
}

// evalCtx caches what several properties need.
type evalCtx struct {
	stable int8 // 0 unknown, 1 yes, -1 no
}

func (e *evalCtx) isStable(m *Model, s *State) bool {
	if e.stable == 0 {
		e.stable = -1
		if m.quiescent(s) {
			e.stable = 1
		}
	}
	return e.stable > 0
}

// properties is the catalogue; "when stable" means: every replica has seen
// every change and no controller would act on the latest state.
var properties = []property{
	{checker.Property{Name: "unique-names", Expect: checker.Always,
		Doc: "every resource of a kind has a unique name in every store version and replica"},
		func(m *Model, s *State, e *evalCtx) bool {
			if s.Sites != nil {
				for _, r := range s.Sites {
					if !uniqueKeys(r.Snap) {
						return false
					}
				}
				return true
			}
			// Older versions were checked when they were the newest.
			return uniqueKeys(s.Vers[len(s.Vers)-1])
		}},
	{checker.Property{Name: "pods-on-nodes-unique", Expect: checker.Always,
		Doc: "pods running on nodes have unique names across the cluster (kubernetes#59848)"},
		func(m *Model, s *State, e *evalCtx) bool {
			var seen [64]Name
			n := 0
			for i, c := range m.ctrls {
				if c.Kind != CKubelet {
					continue
				}
				for _, p := range s.Loc[i].Running {
					if p == 0 {
						continue
					}
					for _, q := range seen[:n] {
						if q == p {
							return false
						}
					}
					if n < len(seen) {
						seen[n] = p
						n++
					}
				}
			}
			return true
		}},
	{checker.Property{Name: "rs-status-matches-pods", Expect: checker.Always,
		Doc: "when stable, a ReplicaSet's status.replicas equals its active pods"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			v := m.latest(s)
			for _, rs := range v.Of(KindReplicaSet) {
				if int(rs.F[RSStatus]) != countPods(v, KindReplicaSet, rs.Name, podActive) {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "rs-replicas-match-spec", Expect: checker.Always,
		Doc: "when stable, a ReplicaSet's status.replicas equals spec.replicas"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			for _, rs := range m.latest(s).Of(KindReplicaSet) {
				if rs.F[RSStatus] != rs.F[RSReplicas] {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "deploy-rs-annotations", Expect: checker.Always,
		Doc: "when stable, a Deployment's current ReplicaSet carries the Deployment's annotations"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			v := m.latest(s)
			for _, rs := range v.Of(KindReplicaSet) {
				if rs.F[FOwnerKind] != int32(KindDeployment) {
					continue
				}
				d := v.Get(KindDeployment, Name(rs.F[FOwner]))
				if d != nil && d.F[FImage] == rs.F[FImage] && d.F[DAnnUser] != rs.F[RSAnnUser] {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "deploy-rs-hash-labels", Expect: checker.Always,
		Doc: "a Deployment's ReplicaSets carry the pod-template-hash in name, labels and selector"},
		func(m *Model, s *State, e *evalCtx) bool {
			for _, rs := range m.latest(s).Of(KindReplicaSet) {
				if rs.F[FOwnerKind] != int32(KindDeployment) {
					continue
				}
				h := rs.F[FImage]
				if rs.F[RSLabelHash] != h || rs.F[RSSelHash] != h || int32(rs.Name&0xfff) != h&0xfff {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "deploy-old-rs-no-pods", Expect: checker.Always,
		Doc: "when stable, an unpaused Deployment's old ReplicaSets are scaled to 0 and own no active pods"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			v := m.latest(s)
			for _, rs := range v.Of(KindReplicaSet) {
				if rs.F[FOwnerKind] != int32(KindDeployment) {
					continue
				}
				d := v.Get(KindDeployment, Name(rs.F[FOwner]))
				if d == nil || d.F[DPaused] != 0 || d.F[FImage] == rs.F[FImage] {
					continue
				}
				if rs.F[RSReplicas] != 0 || countPods(v, KindReplicaSet, rs.Name, podActive) != 0 {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "deploy-paused-no-new-rs", Expect: checker.Always,
		Doc: "the Deployment controller never creates a ReplicaSet for a Deployment that is paused in the store it writes to"},
		ghostClear(propDeployPausedNoNewRS)},
	{checker.Property{Name: "deploy-eventually-complete", Expect: checker.Eventually,
		Doc: "every unpaused Deployment eventually reports all replicas updated and ready"},
		func(m *Model, s *State, e *evalCtx) bool {
			for _, d := range m.latest(s).Of(KindDeployment) {
				if d.F[DPaused] == 0 && !deploymentComplete(&d) {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "sts-status-counts", Expect: checker.Always,
		Doc: "when stable, a StatefulSet's status replicas, readyReplicas and updatedReplicas match its pods"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			v := m.latest(s)
			for _, ss := range v.Of(KindStatefulSet) {
				st, ready, upd := 0, 0, 0
				for _, p := range v.Of(KindPod) {
					if !p.ownedBy(KindStatefulSet, ss.Name) || p.F[FDeleting] != 0 {
						continue
					}
					st++
					if podRunningReady(&p) {
						ready++
					}
					if p.F[PHash] == ss.F[FImage] {
						upd++
					}
				}
				if ss.F[SSStatus] != int32(st) || ss.F[SSReady] != int32(ready) || ss.F[SSUpdated] != int32(upd) {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "sts-ordered-create", Expect: checker.Always,
		Doc: "the StatefulSet controller creates pod i only when pods 0..i-1 exist in the store it writes to"},
		ghostClear(propSTSOrderedCreate)},
	{checker.Property{Name: "sts-reverse-delete", Expect: checker.Always,
		Doc: "the StatefulSet controller removes a condemned pod only when every higher ordinal is gone"},
		ghostClear(propSTSReverseDelete)},
	{checker.Property{Name: "sts-predecessors-ready", Expect: checker.Always,
		Doc: "the StatefulSet controller starts pod i only when pods 0..i-1 are Running and Ready"},
		ghostClear(propSTSPredecessorsReady)},
	{checker.Property{Name: "job-counts", Expect: checker.Always,
		Doc: "when stable, a Job's status.active and status.ready match its pods"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			v := m.latest(s)
			for _, j := range v.Of(KindJob) {
				if int(j.F[JActive]) != countPods(v, KindJob, j.Name, podActive) ||
					int(j.F[JReady]) != countPods(v, KindJob, j.Name, podRunningReady) {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "job-finished-no-finalizer", Expect: checker.Always,
		Doc: "when stable, no finished Job pod keeps its tracking finalizer"},
		func(m *Model, s *State, e *evalCtx) bool {
			if !e.isStable(m, s) {
				return true
			}
			v := m.latest(s)
			for _, p := range v.Of(KindPod) {
				if p.F[FOwnerKind] == int32(KindJob) && (podTerminal(&p) || p.F[FDeleting] != 0) && p.F[PFinal] != 0 {
					return false
				}
			}
			return true
		}},
	{checker.Property{Name: "eventually-steady-state", Expect: checker.Eventually,
		Doc: "eventually no controller acts any more (no fighting) and every workload has reached its spec"},
		func(m *Model, s *State, e *evalCtx) bool {
			return e.isStable(m, s) && satisfied(m.latest(s))
		}},
	{checker.Property{Name: "running-bound", Expect: checker.Always,
		Doc: "pods running at once never exceed the derived over-replication bound (N*S*R)"},
		func(m *Model, s *State, e *evalCtx) bool {
			return m.bound == 0 || runningPods(m, s) <= m.bound
		}},
	{checker.Property{Name: "running-returns", Expect: checker.Eventually,
		Doc: "after the partition heals, exactly R pods run again"},
		func(m *Model, s *State, e *evalCtx) bool {
			return m.target == 0 || !s.Cut && runningPods(m, s) == m.target
		}},
	{checker.Property{Name: "replica-active-bound", Expect: checker.Always,
		Doc: "no replica ever holds more active ReplicaSet pods than the derived bound (S*R)"},
		func(m *Model, s *State, e *evalCtx) bool {
			return m.actBound == 0 || maxActive(s) <= m.actBound
		}},
	{checker.Property{Name: "objects-valid", Expect: checker.Always,
		Doc: "every object every store version or replica holds is one kube-apiserver accepts (Deployment strategy, workload status counts)"},
		func(m *Model, s *State, e *evalCtx) bool {
			valid := func(v *Snapshot) bool {
				for _, k := range [...]Kind{KindDeployment, KindReplicaSet} {
					for i := range v.Of(k) {
						if !validObject(&v.Of(k)[i]) {
							return false
						}
					}
				}
				return true
			}
			if s.Sites != nil {
				for _, r := range s.Sites {
					if !valid(r.Snap) {
						return false
					}
				}
				return true
			}
			return valid(s.Vers[len(s.Vers)-1]) // older versions were checked when newest
		}},
	{checker.Property{Name: "rs-within-spec-connected", Expect: checker.Always,
		Doc: "until the first partition, no store version or replica holds more active pods of a ReplicaSet than its spec.replicas (no controllers racing)"},
		func(m *Model, s *State, e *evalCtx) bool {
			if s.Env[BPartition] != m.init.Env[BPartition] {
				return true
			}
			within := func(v *Snapshot) bool {
				for _, rs := range v.Of(KindReplicaSet) {
					if countPods(v, KindReplicaSet, rs.Name, podActive) > int(rs.F[RSReplicas]) {
						return false
					}
				}
				return true
			}
			if s.Sites == nil {
				return within(s.Vers[len(s.Vers)-1])
			}
			for _, r := range s.Sites {
				if !within(r.Snap) {
					return false
				}
			}
			return true
		}},
}

func propertyIndex(name string) int {
	for i, p := range properties {
		if p.Name == name {
			return i
		}
	}
	return -1
}

// PropertyNames lists every property name.
func PropertyNames() []string {
	out := make([]string, len(properties))
	for i, p := range properties {
		out[i] = p.Name
	}
	return out
}

func ghostClear(bit int) func(m *Model, s *State, e *evalCtx) bool {
	return func(m *Model, s *State, e *evalCtx) bool { return s.Ghost&(1<<bit) == 0 }
}

// ghost evaluates transition properties of a successful write by a
// controller of kind k against the version it was applied to.
func ghost(k CtrlKind, base *Snapshot, op *Op, res *applied) uint32 {
	var g uint32
	o := &op.Obj
	switch {
	case k == CDeployment && op.Type == OpCreate && o.Kind == KindReplicaSet && o.F[FOwnerKind] == int32(KindDeployment):
		if d := base.Get(KindDeployment, Name(o.F[FOwner])); d != nil && d.F[DPaused] != 0 {
			g |= 1 << propDeployPausedNoNewRS
		}
	case k == CStatefulSet && o.Kind == KindPod && o.F[FOwnerKind] == int32(KindStatefulSet):
		ord := o.Name.Ordinal()
		if ord < 0 {
			break
		}
		switch op.Type {
		case OpCreate:
			for j := range ord {
				p := base.Get(KindPod, MakeName(o.Name.Base(), sufOrdinal|uint16(j)))
				if p == nil {
					g |= 1 << propSTSOrderedCreate
				}
				if p == nil || !podRunningReady(p) {
					g |= 1 << propSTSPredecessorsReady
				}
			}
		case OpDelete:
			ss := base.Get(KindStatefulSet, Name(o.F[FOwner]))
			if ss == nil || ord < int(ss.F[SSReplicas]) {
				break
			}
			for _, p := range base.Of(KindPod) {
				if p.ownedBy(KindStatefulSet, ss.Name) && p.Name.Ordinal() > ord {
					g |= 1 << propSTSReverseDelete
				}
			}
		}
	}
	return g
}

func uniqueKeys(v *Snapshot) bool {
	for i := 1; i < len(v.Objs); i++ {
		if v.Objs[i-1].Key() >= v.Objs[i].Key() {
			return false
		}
	}
	return true
}

func countPods(v *Snapshot, k Kind, owner Name, pred func(*Object) bool) int {
	c := 0
	pods := v.Of(KindPod)
	for i := range pods {
		if pods[i].ownedBy(k, owner) && pred(&pods[i]) {
			c++
		}
	}
	return c
}

func deploymentComplete(d *Object) bool {
	r := d.F[DReplicas]
	return d.F[DUpdated] == r && d.F[DStatus] == r && d.F[DReady] == r && d.F[DObserved] == d.F[DGen]
}

// satisfied reports whether every workload has reached its spec.
func satisfied(v *Snapshot) bool {
	for _, rs := range v.Of(KindReplicaSet) {
		if rs.F[RSStatus] != rs.F[RSReplicas] || rs.F[RSReady] != rs.F[RSReplicas] {
			return false
		}
	}
	for _, d := range v.Of(KindDeployment) {
		if d.F[DPaused] == 0 && !deploymentComplete(&d) {
			return false
		}
	}
	for _, ss := range v.Of(KindStatefulSet) {
		if ss.F[SSReady] != ss.F[SSReplicas] || ss.F[SSStatus] != ss.F[SSReplicas] {
			return false
		}
	}
	for _, j := range v.Of(KindJob) {
		if j.F[JComplete] == 0 {
			return false
		}
	}
	return true
}

// quiescent reports whether every replica has seen every change and no
// controller would act on the latest state.
func (m *Model) quiescent(s *State) bool {
	if s.Sites != nil && (s.Cut || !converged(s.Sites)) {
		return false
	}
	v := m.latest(s)
	// Controllers other than kubelets decide from the view alone, so one
	// instance of each kind answers for all.
	var done uint32
	for i := range m.ctrls {
		c := &m.ctrls[i]
		if c.Kind == CKubelet {
			if s.Loc[i].Down {
				continue
			}
		} else if c.Lease == 0 {
			if done&(1<<c.Kind) != 0 {
				continue
			}
			done |= 1 << c.Kind
		}
		if op, _, changed := Reconcile(c, v, &s.Loc[i]); op.Type != OpNone || changed {
			return false
		}
	}
	return true
}

// Properties implements checker.Model.
func (m *Model) Properties() []checker.Property {
	out := make([]checker.Property, len(m.sel))
	for i, g := range m.sel {
		out[i] = properties[g].Property
	}
	return out
}

// Evaluate implements checker.Model.
func (m *Model) Evaluate(s *State, mask uint64) uint64 {
	var e evalCtx
	var holds uint64
	for i, g := range m.sel {
		if mask&(1<<i) != 0 && properties[g].eval(m, s, &e) {
			holds |= 1 << i
		}
	}
	return holds
}
