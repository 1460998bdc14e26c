package k8s

import (
	"fmt"
	"strings"
)

// NameString renders an object name.
func (m *Model) NameString(n Name) string {
	base := "?"
	if int(n.Base()) < len(m.names) {
		base = m.names[n.Base()]
	}
	suf := uint16(n)
	switch {
	case suf == 0:
		return base
	case suf&0xf000 == sufOrdinal:
		return fmt.Sprintf("%s-%d", base, suf&0xfff)
	case suf&0xf000 == sufHash:
		return fmt.Sprintf("%s-h%d", base, suf&0xfff)
	case suf&0xf000 == sufGenerated:
		if suf&0xff == 0 {
			return base + "-<generated>"
		}
		site := (suf >> 8) & 0xf
		if site == 0xf {
			return fmt.Sprintf("%s-p%d", base, suf&0xff)
		}
		return fmt.Sprintf("%s-s%dg%d", base, site, suf&0xff)
	}
	return fmt.Sprintf("%s-%x", base, suf)
}

func (m *Model) ctrlString(c int) string {
	ct := &m.ctrls[c]
	s := fmt.Sprintf("%s#%d", ct.Kind, ct.Idx)
	if ct.Kind == CKubelet {
		s = "kubelet " + m.NameString(ct.Node)
	}
	if m.sites > 1 {
		s += fmt.Sprintf("@site%d", ct.Site)
	}
	return s
}

var phaseNames = [...]string{"Pending", "Running", "Succeeded", "Failed"}

// ObjectString renders one object on one line.
func (m *Model) ObjectString(o *Object) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s rv=%d", o.Kind, m.NameString(o.Name), o.RV)
	if o.F[FOwnerKind] != 0 {
		fmt.Fprintf(&b, " owner=%s/%s", Kind(o.F[FOwnerKind]), m.NameString(Name(o.F[FOwner])))
	}
	if o.F[FDeleting] != 0 {
		b.WriteString(" DELETING")
	}
	f := o.F
	switch o.Kind {
	case KindNode:
		fmt.Fprintf(&b, " ready=%d capacity=%d", f[NReady], f[NCapacity])
	case KindPod:
		node := "<none>"
		if f[PNode] != 0 {
			node = m.NameString(Name(f[PNode]))
		}
		fmt.Fprintf(&b, " image=%d node=%s phase=%s ready=%d", f[FImage], node, phaseNames[f[PPhase]&3], f[PReady])
		if f[PFinal] != 0 {
			b.WriteString(" finalizer")
		}
	case KindReplicaSet:
		fmt.Fprintf(&b, " image=%d replicas=%d status{replicas=%d ready=%d observed=%d/%d} hash{label=%d selector=%d} ann{user=%d revision=%d}",
			f[FImage], f[RSReplicas], f[RSStatus], f[RSReady], f[RSObserved], f[RSGen], f[RSLabelHash], f[RSSelHash], f[RSAnnUser], f[RSAnnRev])
	case KindDeployment:
		fmt.Fprintf(&b, " image=%d replicas=%d paused=%d ann=%d status{replicas=%d updated=%d ready=%d observed=%d/%d}",
			f[FImage], f[DReplicas], f[DPaused], f[DAnnUser], f[DStatus], f[DUpdated], f[DReady], f[DObserved], f[DGen])
		if f[DMaxSurge] != 0 || f[DMaxUnavail] != 0 {
			fmt.Fprintf(&b, " rollingUpdate{maxSurge=%d maxUnavailable=%d}", f[DMaxSurge]-1, f[DMaxUnavail]-1)
		}
	case KindStatefulSet:
		fmt.Fprintf(&b, " image=%d replicas=%d status{replicas=%d ready=%d current=%d updated=%d observed=%d/%d rev=%d/%d}",
			f[FImage], f[SSReplicas], f[SSStatus], f[SSReady], f[SSCurrent], f[SSUpdated], f[SSObserved], f[SSGen], f[SSCurRev], f[SSUpdRev])
	case KindControllerRevision:
		fmt.Fprintf(&b, " revision=%d", f[CRRevision])
	case KindPVC:
		fmt.Fprintf(&b, " ordinal=%d", f[PVCOrdinal])
	case KindJob:
		fmt.Fprintf(&b, " completions=%d parallelism=%d status{active=%d ready=%d succeeded=%d failed=%d complete=%d uncounted=%b/%b}",
			f[JCompletions], f[JParallelism], f[JActive], f[JReady], f[JSucceeded], f[JFailed], f[JComplete], f[JUncSucc], f[JUncFail])
	case KindLease:
		fmt.Fprintf(&b, " holder=site%d transitions=%d", f[LHolder]-1, f[LTerm])
	}
	return b.String()
}

// FormatState implements checker.Model.
func (m *Model) FormatState(s *State) string {
	var b strings.Builder
	if s.Sites != nil {
		fmt.Fprintf(&b, "partitioned=%v\n", s.Cut)
		for i, r := range s.Sites {
			fmt.Fprintf(&b, "site %d: revision %d, clock %d, vv %v, conflicts %d\n", i, r.Snap.Rev, r.Clock, r.VV[:len(s.Sites)], r.Conflicts)
			for j := range r.Snap.Objs {
				fmt.Fprintf(&b, "  %s\n", m.ObjectString(&r.Snap.Objs[j]))
			}
		}
	} else {
		v := s.Vers[len(s.Vers)-1]
		revs := make([]string, len(s.Vers))
		for i, x := range s.Vers {
			revs[i] = fmt.Sprint(x.Rev)
		}
		fmt.Fprintf(&b, "store: latest revision %d (readable versions: %s)\n", v.Rev, strings.Join(revs, ","))
		for j := range v.Objs {
			fmt.Fprintf(&b, "  %s\n", m.ObjectString(&v.Objs[j]))
		}
	}
	for i, c := range m.ctrls {
		l := &s.Loc[i]
		if c.Kind != CKubelet && l.Session == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s:", m.ctrlString(i))
		if c.Kind == CKubelet {
			var run []string
			for _, p := range l.Running {
				if p != 0 {
					run = append(run, m.NameString(p))
				}
			}
			fmt.Fprintf(&b, " running=[%s]", strings.Join(run, " "))
			if l.Down {
				b.WriteString(" DOWN")
			}
		}
		if l.Session != 0 {
			fmt.Fprintf(&b, " session=r%d", s.versionRev(l.Session))
		}
		b.WriteString("\n")
	}
	var env []string
	for i, n := range s.Env {
		if n > 0 {
			env = append(env, fmt.Sprintf("%s=%d", budgetNames[i], n))
		}
	}
	if len(env) > 0 {
		fmt.Fprintf(&b, "environment budget: %s\n", strings.Join(env, " "))
	}
	return b.String()
}

func (s *State) versionRev(i int32) int32 {
	if int(i) < len(s.Vers) {
		return s.Vers[i].Rev
	}
	return -1
}

// FormatAction implements checker.Model.
func (m *Model) FormatAction(s *State, a Action) string {
	switch a.T {
	case ActStep:
		ct := &m.ctrls[a.C]
		var view *Snapshot
		where := ""
		if s.Sites != nil {
			view = s.Sites[ct.Site].Snap
			where = fmt.Sprintf("site %d at revision %d", ct.Site, view.Rev)
		} else {
			view = s.Vers[a.V]
			where = fmt.Sprintf("revision %d", view.Rev)
			if latest := s.Vers[len(s.Vers)-1]; latest != view {
				where += fmt.Sprintf(" (stale; latest is %d)", latest.Rev)
			}
		}
		op, nl, changed := Reconcile(ct, view, &s.Loc[a.C])
		desc := m.describeOp(&op)
		if changed && ct.Kind == CKubelet {
			desc = m.describeLocal(&s.Loc[a.C], &nl) + "; " + desc
		}
		return fmt.Sprintf("%s reads %s: %s", m.ctrlString(int(a.C)), where, desc)
	case ActScale:
		return fmt.Sprintf("user scales %s by %+d", m.workloadString(a.X), a.V)
	case ActImage:
		return fmt.Sprintf("user changes the image of %s", m.workloadString(a.X))
	case ActPause:
		return fmt.Sprintf("user toggles pause on %s", m.workloadString(a.X))
	case ActAnnotate:
		return fmt.Sprintf("user changes the annotations of %s", m.workloadString(a.X))
	case ActDeleteWorkload:
		return fmt.Sprintf("user deletes %s", m.workloadString(a.X))
	case ActDeletePod:
		return fmt.Sprintf("user deletes Pod %s", m.NameString(Name(a.X)))
	case ActRestart:
		return fmt.Sprintf("%s restarts and loses its local state", m.ctrlString(int(a.C)))
	case ActNodeFail:
		return fmt.Sprintf("node %s fails (containers stop; node lifecycle marks it NotReady)", m.NameString(m.ctrls[a.C].Node))
	case ActNodeRestart:
		return fmt.Sprintf("node %s restarts; its kubelet starts afresh", m.NameString(m.ctrls[a.C].Node))
	case ActPartition:
		return "the network partitions every site from the others"
	case ActHeal:
		return "the partition heals"
	case ActSync:
		return fmt.Sprintf("site %d sends its changes to site %d, which merges them", a.C, a.V)
	case ActNodeLost:
		return fmt.Sprintf("site %d's node lifecycle stops hearing from %s and marks it NotReady", a.C, m.NameString(Name(a.X)))
	case ActLeaseExpire:
		return fmt.Sprintf("site %d's controller-manager sees the leader's Lease expire and takes it", a.C)
	case ActStrategy:
		return fmt.Sprintf("user at site %d sets %s of %s to 0", a.C, [2]string{"maxSurge", "maxUnavailable"}[a.V&1], m.workloadString(a.X))
	}
	return fmt.Sprintf("action %+v", a)
}

func (m *Model) workloadString(x int32) string {
	if int(x) >= len(m.workloads) {
		return "?"
	}
	k := m.workloads[x]
	return fmt.Sprintf("%s %s", Kind(k>>32), m.NameString(Name(k)))
}

func (m *Model) describeOp(op *Op) string {
	o := &op.Obj
	switch op.Type {
	case OpCreate:
		return "create " + m.ObjectString(o)
	case OpUpdate:
		return "update " + m.ObjectString(o)
	case OpDelete:
		if op.Force {
			return fmt.Sprintf("force-delete %s %s (rv %d)", o.Kind, m.NameString(o.Name), o.RV)
		}
		return fmt.Sprintf("delete %s %s (rv %d)", o.Kind, m.NameString(o.Name), o.RV)
	}
	return "no write"
}

func (m *Model) describeLocal(old, nl *Local) string {
	var parts []string
	for _, p := range nl.Running {
		if p != 0 && !old.running(p) {
			parts = append(parts, "start container "+m.NameString(p))
		}
	}
	for _, p := range old.Running {
		if p != 0 && !nl.running(p) {
			parts = append(parts, "stop container "+m.NameString(p))
		}
	}
	return strings.Join(parts, ", ")
}
