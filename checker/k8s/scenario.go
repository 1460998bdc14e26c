package k8s

import "fmt"

// Budget slots: how many times each environment action may still happen.
const (
	BScale = iota
	BImage
	BPause
	BAnnotate
	BDeletePod
	BDeleteWorkload
	BRestart
	BNodeFail
	BNodeRestart
	BPartition
	BNodeLost
	BStrategy
	BLeaseExpire
	numBudget
)

var budgetNames = [numBudget]string{"scale", "image", "pause", "annotate", "delete-pod", "delete-workload",
	"restart", "node-fail", "node-restart", "partition", "node-lost", "strategy", "lease-expire"}

// Budget is the environment's remaining actions.
type Budget [numBudget]int8

// Scenario is a named starting state, set of controllers and environment.
type Scenario struct {
	Name string
	Doc  string
	// Defaults says what the scenario runs, for --list.
	Defaults string
	build    func(b *builder)
}

// builder assembles a scenario under a Config.
type builder struct {
	cfg      Config
	sites    int
	names    []string
	objs     []Object
	ctrls    []Controller
	running  map[Name][]Name
	nodeSite map[Name]int
	budget   Budget
	target   int // over-replication: pods that should run (0: not checked)
	bound    int // over-replication: derived bound on running pods (0: none)
	// activeBound is the derived bound on active pods in one replica.
	activeBound int
}

func (b *builder) name(s string) uint16 {
	for i, n := range b.names {
		if n == s {
			return uint16(i)
		}
	}
	b.names = append(b.names, s)
	return uint16(len(b.names) - 1)
}

func (b *builder) r(def int) int {
	if b.cfg.Replicas > 0 {
		return b.cfg.Replicas
	}
	return def
}

// node adds a Ready node with the given pod capacity at a site and its kubelet.
func (b *builder) node(s string, capacity, site int) Name {
	n := MakeName(b.name(s), 0)
	o := Object{Kind: KindNode, Name: n}
	o.F[NReady], o.F[NCapacity] = 1, int32(capacity)
	b.objs = append(b.objs, o)
	b.nodeSite[n] = site
	b.ctrls = append(b.ctrls, Controller{Kind: CKubelet, Node: n, Site: site, Idx: len(b.nodeSite) - 1})
	return n
}

// nodes adds count nodes spread round-robin over the sites.
func (b *builder) nodes(count, capacity int) []Name {
	var out []Name
	for i := range count {
		out = append(out, b.node(fmt.Sprintf("node-%d", i+1), capacity, i%b.sites))
	}
	return out
}

// controllers adds def instances of kind at every site unless the config
// overrides the count.
func (b *builder) controllers(kind CtrlKind, def int) {
	if n, ok := b.cfg.Controllers[kind.String()]; ok {
		def = n
	}
	for site := range b.sites {
		for i := range def {
			b.ctrls = append(b.ctrls, Controller{Kind: kind, Site: site, Idx: site*def + i})
		}
	}
}

func (b *builder) add(kind Kind, base string, f ...[2]int32) Name {
	n := MakeName(b.name(base), 0)
	o := Object{Kind: kind, Name: n}
	for _, kv := range f {
		o.F[kv[0]] = kv[1]
	}
	b.objs = append(b.objs, o)
	return n
}

func fv(i int, v int) [2]int32 { return [2]int32{int32(i), int32(v)} }

// Scenarios lists the built-in scenarios.
func Scenarios() []*Scenario {
	return []*Scenario{
		{
			Name:     "stale-reads",
			Doc:      "Kubernetes #59848: a one-replica StatefulSet on two nodes; a node fails, its pod is replaced elsewhere, and the node's kubelet restarts and reads stale state",
			Defaults: "StatefulSet web (1 replica), 2 nodes; scheduler, statefulset, podgc, 2 kubelets; env: 1 node failure, 1 node restart",
			build: func(b *builder) {
				b.nodes(2, 4)
				b.add(KindStatefulSet, "web", fv(SSReplicas, b.r(1)), fv(FImage, 1), fv(SSGen, 1))
				b.controllers(CScheduler, 1)
				b.controllers(CStatefulSet, 1)
				b.controllers(CPodGC, 1)
				b.budget[BNodeFail], b.budget[BNodeRestart] = 1, 1
			},
		},
		{
			Name:     "themelios-baseline",
			Doc:      "Themelios-like starting state with two of each controller; used for the speed benchmark",
			Defaults: "ReplicaSet (2), Deployment (1), StatefulSet (1), 2 nodes; 2 schedulers, 2 replicaset, 2 deployment, 2 statefulset controllers, 2 kubelets; no environment actions",
			build: func(b *builder) {
				b.nodes(2, 8)
				b.add(KindReplicaSet, "rep", fv(RSReplicas, b.r(2)), fv(FImage, 1), fv(RSGen, 1))
				b.add(KindDeployment, "dep", fv(DReplicas, b.r(1)), fv(FImage, 1), fv(DGen, 1))
				b.add(KindStatefulSet, "sts", fv(SSReplicas, b.r(1)), fv(FImage, 1), fv(SSGen, 1))
				b.controllers(CScheduler, 2)
				b.controllers(CReplicaSet, 2)
				b.controllers(CDeployment, 2)
				b.controllers(CStatefulSet, 2)
			},
		},
		{
			Name:     "replicaset",
			Doc:      "a ReplicaSet scaled, with a pod deleted and a controller restart",
			Defaults: "ReplicaSet (2), 2 nodes; scheduler, replicaset, podgc, gc, 2 kubelets; env: 1 scale, 1 pod delete, 1 restart",
			build: func(b *builder) {
				b.nodes(2, 4)
				b.add(KindReplicaSet, "rep", fv(RSReplicas, b.r(2)), fv(FImage, 1), fv(RSGen, 1))
				b.controllers(CScheduler, 1)
				b.controllers(CReplicaSet, 1)
				b.controllers(CPodGC, 1)
				b.controllers(CGarbageCollector, 1)
				b.budget[BScale], b.budget[BDeletePod], b.budget[BRestart] = 1, 1, 1
			},
		},
		{
			Name:     "deployment",
			Doc:      "a Deployment rolled to a new image, paused and annotated",
			Defaults: "Deployment (2), 2 nodes; deployment, replicaset, scheduler, gc, 2 kubelets; env: 1 image change, 1 pause toggle, 1 annotation",
			build: func(b *builder) {
				b.nodes(2, 4)
				b.add(KindDeployment, "dep", fv(DReplicas, b.r(2)), fv(FImage, 1), fv(DGen, 1))
				b.controllers(CDeployment, 1)
				b.controllers(CReplicaSet, 1)
				b.controllers(CScheduler, 1)
				b.controllers(CGarbageCollector, 1)
				b.budget[BImage], b.budget[BPause], b.budget[BAnnotate] = 1, 1, 1
			},
		},
		{
			Name:     "statefulset",
			Doc:      "a StatefulSet with volume claims scaled up and down and rolled to a new image",
			Defaults: "StatefulSet (2, with PVCs), 2 nodes; statefulset, scheduler, podgc, 2 kubelets; env: 2 scales, 1 image change",
			build: func(b *builder) {
				b.nodes(2, 4)
				b.add(KindStatefulSet, "web", fv(SSReplicas, b.r(2)), fv(FImage, 1), fv(SSGen, 1), fv(SSClaims, 1))
				b.controllers(CStatefulSet, 1)
				b.controllers(CScheduler, 1)
				b.controllers(CPodGC, 1)
				b.budget[BScale], b.budget[BImage] = 2, 1
			},
		},
		{
			Name:     "job",
			Doc:      "a Job with finalizer tracking, a pod deletion and a controller restart",
			Defaults: "Job (2 completions, parallelism 2), 2 nodes; job, scheduler, podgc, 2 kubelets; env: 1 pod delete, 1 restart",
			build: func(b *builder) {
				b.nodes(2, 4)
				r := b.r(2)
				b.add(KindJob, "batch", fv(JCompletions, r), fv(JParallelism, r), fv(FImage, 1))
				b.controllers(CJob, 1)
				b.controllers(CScheduler, 1)
				b.controllers(CPodGC, 1)
				b.budget[BDeletePod], b.budget[BRestart] = 1, 1
			},
		},
		{
			Name: "deploy-strategy",
			Doc: "issue 9's merged Deployment: a running Deployment whose sites are cut; during the cut users set " +
				"maxSurge 0 at one site and maxUnavailable 0 at another before their controllers observe the Deployment's generation, then the sites heal. Checks that every stored " +
				"object stays one kube-apiserver accepts and the rollout completes",
			Defaults: "Deployment (2, maxSurge 1, maxUnavailable 1) with its ReplicaSet and pods already running, one node per site; " +
				"per site: deployment, replicaset; env: 1 partition, 2 strategy edits (at any site), heal",
			build: func(b *builder) {
				r := b.r(2)
				ns := make([]Name, 0, b.sites)
				for i := range b.sites {
					ns = append(ns, b.node(fmt.Sprintf("node-%d", i+1), 2*r, i))
				}
				dep := b.add(KindDeployment, "dep", fv(DReplicas, r), fv(FImage, 1), fv(DGen, 1),
					fv(DStatus, r), fv(DUpdated, r), fv(DReady, r), fv(DMaxSurge, 2), fv(DMaxUnavail, 2))
				rs := MakeName(b.name("dep"), sufHash|1)
				o := Object{Kind: KindReplicaSet, Name: rs}
				for _, kv := range [][2]int32{fv(FOwnerKind, int(KindDeployment)), fv(FOwner, int(dep)), fv(FImage, 1),
					fv(RSReplicas, r), fv(RSStatus, r), fv(RSReady, r), fv(RSGen, 1), fv(RSObserved, 1),
					fv(RSLabelHash, 1), fv(RSSelHash, 1), fv(RSAnnRev, 1)} {
					o.F[kv[0]] = kv[1]
				}
				b.objs = append(b.objs, o)
				for i := range r {
					p := Object{Kind: KindPod, Name: MakeName(b.name("dep"), sufGenerated|0xf00|uint16(i+1))}
					p.F[FOwnerKind], p.F[FOwner], p.F[FImage], p.F[PHash] = int32(KindReplicaSet), int32(rs), 1, 1
					p.F[PNode], p.F[PPhase], p.F[PReady] = int32(ns[0]), PhaseRunning, 1
					b.objs = append(b.objs, p)
					b.running[ns[0]] = append(b.running[ns[0]], p.Name)
				}
				b.controllers(CDeployment, 1)
				b.controllers(CReplicaSet, 1)
				b.budget[BPartition], b.budget[BStrategy] = 1, 2
			},
		},
		{
			Name: "leader-election",
			Doc: "one control plane across sites: R pods of a ReplicaSet to create, every site runs a ReplicaSet controller " +
				"and a scheduler gated by kube-controller-manager's Lease, held by site 0; the sites are cut, each side's " +
				"controller-manager may see the Lease expire and take it, then the sites heal and the Lease merges",
			Defaults: "ReplicaSet (2), no pods yet, one node per site; per site: replicaset, scheduler (leader-elected); " +
				"env: 1 partition, Lease takeovers while cut, heal",
			build: func(b *builder) { b.controlPlane(true) },
		},
		{
			Name:     "no-leader-election",
			Doc:      "the leader-election scenario with leader election off (--leader-elect=false): every site's controllers act at once",
			Defaults: "ReplicaSet (2), no pods yet, one node per site; per site: replicaset, scheduler; env: 1 partition, heal",
			build:    func(b *builder) { b.controlPlane(false) },
		},
		{
			Name: "over-replication",
			Doc: "R pods of a ReplicaSet run at site 0; the sites are partitioned, each site's node-lifecycle may declare the " +
				"other sites' nodes lost, then the sites heal. Checks the derived bounds (S*R active pods per replica, N*S*R running) and a return to R.",
			Defaults: "ReplicaSet (1) already running, one node per site; per site: replicaset, scheduler, podgc; env: 1 partition, node-lost declarations, heal",
			build: func(b *builder) {
				r := b.r(1)
				ns := make([]Name, 0, b.sites)
				for i := range b.sites {
					ns = append(ns, b.node(fmt.Sprintf("node-%d", i+1), 2*r*b.sites, i))
				}
				rs := b.add(KindReplicaSet, "rep", fv(RSReplicas, r), fv(FImage, 1), fv(RSGen, 1), fv(RSObserved, 1),
					fv(RSStatus, r), fv(RSReady, r))
				for i := range r {
					p := Object{Kind: KindPod, Name: MakeName(b.name("rep"), sufGenerated|0xf00|uint16(i+1))}
					p.F[FOwnerKind], p.F[FOwner], p.F[FImage] = int32(KindReplicaSet), int32(rs), 1
					p.F[PNode], p.F[PPhase], p.F[PReady] = int32(ns[0]), PhaseRunning, 1
					b.objs = append(b.objs, p)
					b.running[ns[0]] = append(b.running[ns[0]], p.Name)
				}
				b.controllers(CReplicaSet, 1)
				b.controllers(CScheduler, 1)
				b.controllers(CPodGC, 1)
				b.budget[BPartition] = 1
				b.budget[BNodeLost] = int8(b.sites * (b.sites - 1))
				b.target = r
				// Derivation (RESULTS.md): a site's ReplicaSet controllers
				// create a pod only while their replica shows fewer than R
				// active, deletes never un-happen, and a replica merges
				// past states of the others, so any one replica holds at
				// most S*R active pods. A kubelet stops stale containers
				// before it starts one, so what it runs is a subset of the
				// active pods bound to it in one replica version: N nodes
				// run at most N*S*R, here N = S.
				b.activeBound = b.sites * r
				b.bound = len(ns) * b.sites * r
			},
		},
	}
}

// controlPlane builds the leader-election scenarios: a ReplicaSet whose R
// pods are still to be created, one node per site, a ReplicaSet controller
// and a scheduler per site, gated by one Lease held by site 0 when elect.
func (b *builder) controlPlane(elect bool) {
	r := b.r(2)
	for i := range b.sites {
		b.node(fmt.Sprintf("node-%d", i+1), 2*r*b.sites, i)
	}
	b.add(KindReplicaSet, "rep", fv(RSReplicas, r), fv(FImage, 1), fv(RSGen, 1))
	first := len(b.ctrls)
	b.controllers(CReplicaSet, 1)
	b.controllers(CScheduler, 1)
	if elect {
		lease := b.add(KindLease, "kube-controller-manager", fv(LHolder, 1), fv(LTerm, 1))
		for i := first; i < len(b.ctrls); i++ {
			b.ctrls[i].Lease = lease
		}
		b.budget[BLeaseExpire] = int8(b.sites)
	}
	b.budget[BPartition] = 1
	b.target = r
	// The over-replication derivation (RESULTS.md) holds with or without
	// leader election; with it, only sides whose controller-manager leads
	// create pods, which the measured maxima show.
	b.activeBound = b.sites * r
	b.bound = b.sites * b.sites * r
}

// ScenarioByName returns the named scenario or nil.
func ScenarioByName(name string) *Scenario {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s
		}
	}
	return nil
}
