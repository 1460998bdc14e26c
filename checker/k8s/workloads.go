package k8s

import "math/bits"

// surge returns RollingUpdate's maxSurge and maxUnavailable for the default
// 25%/25%: surge rounds up, unavailable rounds down, and both cannot be 0.
func surge(replicas int) (int, int) {
	s := (replicas*25 + 99) / 100
	u := replicas * 25 / 100
	if s == 0 && u == 0 {
		u = 1
	}
	return s, u
}

// deployments is the Deployment controller with the RollingUpdate strategy,
// one write per step: create the new ReplicaSet (named by the pod-template
// hash, carrying the Deployment's annotations and the hash in its labels and
// selector), keep its annotations in sync, scale it up within maxSurge, scale
// old ReplicaSets down within maxUnavailable, then write status. A paused
// Deployment only gets its status written (upstream's sync path).
func deployments(v *Snapshot) Op {
	rss := v.Of(KindReplicaSet)
	for _, d := range v.Of(KindDeployment) {
		if d.F[FDeleting] != 0 {
			continue
		}
		var newRS *Object
		allSpec, allStatus, allReady, maxRev := 0, 0, 0, int32(0)
		for i := range rss {
			rs := &rss[i]
			if !rs.ownedBy(KindDeployment, d.Name) {
				continue
			}
			if rs.F[FImage] == d.F[FImage] {
				newRS = rs
			}
			allSpec += int(rs.F[RSReplicas])
			allStatus += int(rs.F[RSStatus])
			allReady += int(rs.F[RSReady])
			maxRev = max(maxRev, rs.F[RSAnnRev])
		}
		want := int(d.F[DReplicas])
		maxSurge, maxUnavail := surge(want)
		if d.F[DMaxSurge] != 0 {
			maxSurge = int(d.F[DMaxSurge]) - 1
		}
		if d.F[DMaxUnavail] != 0 {
			maxUnavail = int(d.F[DMaxUnavail]) - 1
		}
		// Upstream syncs the new ReplicaSet's annotations and revision even
		// for a paused Deployment (getAllReplicaSetsAndSyncRevision).
		if newRS != nil && (newRS.F[RSAnnUser] != d.F[DAnnUser] || newRS.F[RSAnnRev] < maxRev) {
			n := *newRS
			n.F[RSAnnUser] = d.F[DAnnUser]
			if n.F[RSAnnRev] < maxRev {
				n.F[RSAnnRev] = maxRev + 1
			}
			return update(&n)
		}
		if d.F[DPaused] == 0 {
			if newRS == nil {
				rs := Object{Kind: KindReplicaSet, Name: MakeName(d.Name.Base(), sufHash|uint16(d.F[FImage]&0xfff))}
				rs.F[FOwnerKind], rs.F[FOwner] = int32(KindDeployment), int32(d.Name)
				rs.F[FImage] = d.F[FImage]
				rs.F[RSReplicas] = int32(max(0, min(want, want+maxSurge-allSpec)))
				rs.F[RSLabelHash], rs.F[RSSelHash] = d.F[FImage], d.F[FImage]
				rs.F[RSAnnUser], rs.F[RSAnnRev] = d.F[DAnnUser], maxRev+1
				rs.F[RSGen] = 1
				return create(rs)
			}
			cur := int(newRS.F[RSReplicas])
			oldSpec := allSpec - cur
			switch {
			case cur > want:
				return scaleRS(newRS, want)
			case cur < want:
				if t := min(want, cur+want+maxSurge-allSpec); t > cur {
					return scaleRS(newRS, t)
				}
			}
			if oldSpec > 0 {
				minAvail := want - maxUnavail
				newUnavail := cur - int(newRS.F[RSReady])
				maxDown := allSpec - minAvail - newUnavail
				// Old ReplicaSets' unhealthy replicas go first, then healthy
				// ones while enough pods stay available; oldest revision first.
				for pass := 0; pass < 2; pass++ {
					budget := maxDown
					if pass == 1 {
						budget = allReady - minAvail
					}
					if budget <= 0 {
						continue
					}
					var pick *Object
					for i := range rss {
						rs := &rss[i]
						if !rs.ownedBy(KindDeployment, d.Name) || rs == newRS || rs.F[RSReplicas] == 0 {
							continue
						}
						if pass == 0 && rs.F[RSReplicas] <= rs.F[RSReady] {
							continue
						}
						if pick == nil || rs.F[RSAnnRev] < pick.F[RSAnnRev] {
							pick = rs
						}
					}
					if pick == nil {
						continue
					}
					down := int(pick.F[RSReplicas])
					if pass == 0 {
						down -= int(pick.F[RSReady])
					}
					return scaleRS(pick, int(pick.F[RSReplicas])-min(down, budget))
				}
			}
		}
		updated := 0
		if newRS != nil {
			updated = int(newRS.F[RSStatus])
		}
		if d.F[DStatus] != int32(allStatus) || d.F[DUpdated] != int32(updated) || d.F[DReady] != int32(allReady) || d.F[DObserved] != d.F[DGen] {
			n := d
			n.F[DStatus], n.F[DUpdated], n.F[DReady], n.F[DObserved] = int32(allStatus), int32(updated), int32(allReady), d.F[DGen]
			return update(&n)
		}
	}
	return Op{}
}

func scaleRS(rs *Object, to int) Op {
	n := *rs
	n.F[RSReplicas] = int32(to)
	n.F[RSGen]++
	return update(&n)
}

// statefulSets is the StatefulSet controller with OrderedReady pod
// management and RollingUpdate: it keeps a ControllerRevision for the
// current template, creates PVCs and pods in ordinal order, each only once
// every predecessor is Running and Ready, replaces failed pods, removes
// condemned pods from the highest ordinal down one at a time, rolls pods to
// the update revision from the highest ordinal down, then writes status.
func statefulSets(v *Snapshot) Op {
	pods := v.Of(KindPod)
	for _, ss := range v.Of(KindStatefulSet) {
		if ss.F[FDeleting] != 0 {
			continue
		}
		rev := ss.F[FImage]
		crName := MakeName(ss.Name.Base(), sufHash|uint16(rev&0xfff))
		if v.Get(KindControllerRevision, crName) == nil {
			cr := Object{Kind: KindControllerRevision, Name: crName}
			cr.F[FOwnerKind], cr.F[FOwner] = int32(KindStatefulSet), int32(ss.Name)
			cr.F[FImage], cr.F[CRRevision] = rev, rev
			return create(cr)
		}
		want := int(ss.F[SSReplicas])
		var byOrd [64]*Object
		maxOrd := -1
		for i := range pods {
			p := &pods[i]
			if o := p.Name.Ordinal(); p.ownedBy(KindStatefulSet, ss.Name) && o >= 0 && o < len(byOrd) {
				byOrd[o] = p
				maxOrd = max(maxOrd, o)
			}
		}
		if op, ok := statefulSetPods(v, &ss, byOrd[:max(maxOrd+1, want)], want, rev); ok {
			return op
		}
		st, ready, cur, upd := 0, 0, 0, 0
		for _, p := range byOrd[:maxOrd+1] {
			if p == nil || p.F[FDeleting] != 0 {
				continue
			}
			st++
			if podRunningReady(p) {
				ready++
			}
			if p.F[PHash] == ss.F[SSCurRev] {
				cur++
			}
			if p.F[PHash] == rev {
				upd++
			}
		}
		curRev := ss.F[SSCurRev]
		if upd == want && ready == want && st == want {
			curRev, cur = rev, upd
		}
		n := ss
		n.F[SSStatus], n.F[SSReady], n.F[SSCurrent], n.F[SSUpdated] = int32(st), int32(ready), int32(cur), int32(upd)
		n.F[SSObserved], n.F[SSCurRev], n.F[SSUpdRev] = ss.F[SSGen], curRev, rev
		if n.F != ss.F {
			return update(&n)
		}
	}
	return Op{}
}

func statefulSetPods(v *Snapshot, ss *Object, byOrd []*Object, want int, rev int32) (Op, bool) {
	for ord := 0; ord < want; ord++ {
		if ss.F[SSClaims] != 0 {
			pvcName := MakeName(ss.Name.Base(), sufOrdinal|uint16(ord))
			if v.Get(KindPVC, pvcName) == nil {
				c := Object{Kind: KindPVC, Name: pvcName}
				c.F[PVCOrdinal], c.F[PVCSet] = int32(ord), int32(ss.Name)
				return create(c), true
			}
		}
		p := byOrd[ord]
		switch {
		case p == nil:
			np := Object{Kind: KindPod, Name: MakeName(ss.Name.Base(), sufOrdinal|uint16(ord))}
			np.F[FOwnerKind], np.F[FOwner] = int32(KindStatefulSet), int32(ss.Name)
			np.F[FImage], np.F[PHash] = rev, rev
			return create(np), true
		case podTerminal(p) && p.F[FDeleting] == 0:
			return remove(p), true
		case !podRunningReady(p):
			return Op{}, false // OrderedReady: wait for this pod
		}
	}
	// Condemned pods, highest ordinal first, one at a time.
	for ord := len(byOrd) - 1; ord >= want; ord-- {
		p := byOrd[ord]
		if p == nil {
			continue
		}
		if p.F[FDeleting] != 0 {
			return Op{}, false
		}
		return remove(p), true
	}
	// Rolling update, highest ordinal first.
	for ord := want - 1; ord >= 0; ord-- {
		if p := byOrd[ord]; p.F[PHash] != rev {
			return remove(p), true
		}
	}
	return Op{}, false
}

// jobBit is the bit of a job pod in the uncounted-terminated-pods masks.
func jobBit(n Name) int32 { return 1 << (uint32(n) & 31) }

// jobs is the Job controller with finalizer-based pod tracking: a finished
// pod is first recorded in status.uncountedTerminatedPods, then its
// tracking finalizer is removed, then it is moved into succeeded/failed.
// Pods are created (with the finalizer) up to parallelism while completions
// remain; the Complete condition is set once enough pods succeeded.
func jobs(v *Snapshot) Op {
	pods := v.Of(KindPod)
	for _, j := range v.Of(KindJob) {
		if j.F[FDeleting] != 0 {
			continue
		}
		active, ready, pending := 0, 0, 0
		for i := range pods {
			p := &pods[i]
			if !p.ownedBy(KindJob, j.Name) {
				continue
			}
			b := jobBit(p.Name)
			done := podTerminal(p) || p.F[FDeleting] != 0
			switch {
			case done && p.F[PFinal] != 0 && (j.F[JUncSucc]|j.F[JUncFail])&b == 0:
				n := j
				if p.F[PPhase] == PhaseSucceeded {
					n.F[JUncSucc] |= b
				} else {
					n.F[JUncFail] |= b
				}
				return update(&n)
			case p.F[PFinal] != 0 && (j.F[JUncSucc]|j.F[JUncFail])&b != 0:
				np := *p
				np.F[PFinal] = 0
				return update(&np)
			case podActive(p):
				active++
				if podRunningReady(p) {
					ready++
				}
			case done && p.F[PFinal] != 0:
				pending++
			}
		}
		// Uncounted pods whose finalizer is gone move into the counters.
		for _, m := range [2]int{JUncSucc, JUncFail} {
			for mask := j.F[m]; mask != 0; {
				b := int32(1) << bits.TrailingZeros32(uint32(mask))
				mask &^= b
				if !jobPodHasFinalizer(pods, j.Name, b) {
					n := j
					n.F[m] &^= b
					if m == JUncSucc {
						n.F[JSucceeded]++
					} else {
						n.F[JFailed]++
					}
					return update(&n)
				}
			}
		}
		succeeded := int(j.F[JSucceeded]) + bits.OnesCount32(uint32(j.F[JUncSucc]))
		if j.F[JComplete] == 0 {
			remaining := int(j.F[JCompletions]) - succeeded - pending
			if active < min(int(j.F[JParallelism]), remaining) {
				p := Object{Kind: KindPod, Name: genName(j.Name.Base())}
				p.F[FOwnerKind], p.F[FOwner] = int32(KindJob), int32(j.Name)
				p.F[FImage], p.F[PFinal], p.F[PNever] = j.F[FImage], 1, 1
				return create(p)
			}
		}
		n := j
		n.F[JActive], n.F[JReady] = int32(active), int32(ready)
		if succeeded >= int(j.F[JCompletions]) && active == 0 && j.F[JUncSucc]|j.F[JUncFail] == 0 {
			n.F[JComplete] = 1
		}
		if n.F != j.F {
			return update(&n)
		}
	}
	return Op{}
}

func jobPodHasFinalizer(pods []Object, job Name, b int32) bool {
	for i := range pods {
		if pods[i].ownedBy(KindJob, job) && jobBit(pods[i].Name) == b && pods[i].F[PFinal] != 0 {
			return true
		}
	}
	return false
}
