// Package k8s is the Kubernetes model checked by package checker: resources,
// controllers, environment, consistency models and properties.
//
// Resources (Nodes, Pods, ReplicaSets, Deployments, StatefulSets with
// ControllerRevisions and PVCs, Jobs) are flat documents of NF int32 leaf
// fields (see the F* constants), which keeps states compact, hashing cheap
// and lets the rhizome model merge them with package consistency's rules.
//
// Controllers are pure reconcile steps (Reconcile) modelled on the upstream
// controllers: scheduler, kubelet, ReplicaSet, Deployment (RollingUpdate),
// StatefulSet (OrderedReady, RollingUpdate), Job (finalizer tracking), pod GC
// (with node-lifecycle eviction) and the owner-reference garbage collector.
// One step reads one view of the store and makes at most one write, a
// compare-and-swap on the resourceVersion it read.
//
// The environment scales, changes images, pauses and annotates, deletes
// pods and workloads, restarts controllers (losing local state), fails and
// restarts nodes and, with several sites, partitions, heals, exchanges state
// and declares remote nodes lost; each within a scenario's budget.
//
// Consistency models (Config.Consistency) decide which versions a controller
// may read and where its write lands; see the Consistency constants. Under
// rhizome every site holds a Replica, controllers read and compare-and-swap
// against their own site, and sites merge whole states with package
// consistency's rules: built-in kinds by crdt/kube's own rules, called
// rather than copied (validate.go places every field slot in the real
// object, and consistency.NewKube takes the merge units from the kind's
// schema: status whole, a Lease's spec whole; metadata.generation moved
// after a concurrent spec merge and the validation fallback to one side's
// whole object are kube.Concurrent), with validObject standing in for
// kube-apiserver's validation of the modelled fields (it agrees with
// crdt/kube/validate on every combination of them, validate_test.go), which
// also rejects invalid writes under every model; rhizome-json-path is the
// merge before issue 9 (every field on its own).
//
// Leader election (scenarios leader-election / no-leader-election):
// controllers carrying a Lease act only while their site holds it in the
// replica they read; the Lease (spec one merge unit) starts at site 0, and
// while the sites are cut each side's controller-manager may see it expire
// and take it (an environment action; renewals are not modelled). After the
// heal the Lease merges whole, so exactly one holder remains and the other
// side's controllers stop, as a kube-controller-manager that lost its lease
// exits. kube-scheduler is gated by the same Lease (upstream it has its own).
//
// Properties are listed by `rhizome check --list`; "when stable" ones are
// judged only where every replica has seen every change and no controller
// would act on the latest state. Transition properties (StatefulSet ordering,
// paused Deployments) are recorded in history bits of the state when the
// offending write lands, judged against the version it landed on.
//
// Known approximations: owner references name the owner but not its UID;
// generated pod names use a per-store counter (stamped with the site) instead
// of random suffixes; eviction from NotReady nodes is immediate; eventually
// properties are judged at terminal states only (as in stateright); under
// rhizome, site i is assumed to sort i-th both by name and by automerge
// actor id, and every field is a member that is always present (a field
// write of 0 that crdt/ would make a member removal can lose where the model
// lets it win; see package consistency).
//
// Speed and memory (codec.go, intern.go, arena.go): the model implements
// checker.Compact. Objects, documents and controller-state vectors are
// interned, so a state waiting in a BFS frontier is a few dozen bytes of ids;
// a worker decodes and expands states in reusable arenas, computes the step
// of interchangeable controllers (same kind, site and view) once, and never
// builds the successor of a step that does nothing.
//
// Benchmark (acceptance criterion 3), 60-second BFS runs to depth 100:
//
//	go test ./checker/k8s/ -run '^$' -bench Themelios -benchtime 1x
//
// Results table: `rhizome check --results checker/RESULTS.md --depth 100
// --results-timeout 8s`.
package k8s
