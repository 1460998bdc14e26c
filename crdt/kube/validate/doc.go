// Package validate answers one question for the merge path: would
// kube-apiserver accept this object? It runs Kubernetes' own validation —
// the validation packages of k8s.io/kubernetes v1.36.3, the code
// kube-apiserver runs — on the JSON kube-apiserver stores for a built-in
// object, so that a merge which would yield an object the API rejects can
// fall back to one side's whole object instead (see DESIGN.md, Semantics).
//
// The entry point is the plain function Object(value []byte) error; the
// package imports nothing of Rhizome and keeps no state, so crdt can call it
// through a func hook.
//
// # What is validated
//
// Object reads apiVersion and kind from the value, decodes it into that
// kind's versioned type with kube-apiserver's codecs (legacyscheme, filled
// by the groups' install packages), applies the defaults kube-apiserver
// applies when it reads an object from storage, converts it to the internal
// type, and runs, for the kinds listed below, what the kind's registry
// strategy (k8s.io/kubernetes/pkg/registry/<group>/<kind>/strategy.go)
// runs:
//
//   - the object validation of the strategy's Validate — metadata (name,
//     labels, annotations, owner references, finalizers, ...) and spec —
//     with the validation options a new object gets on this version (the
//     strategies' option helpers called with no old object), so no rule is
//     relaxed because an old object already broke it. For Pods the same
//     validation runs through ValidatePodUpdate, since ValidatePodCreate
//     also forbids ephemeral containers, which a stored pod may have;
//   - the status validation of the status strategy's ValidateUpdate, with
//     the object as its own old object: a status write that leaves the
//     status as it is must be accepted. Rules about transitions (a counter
//     going down, a terminal Job condition removed) therefore hold
//     trivially; the status's own rules (Deployment status.readyReplicas
//     not above status.replicas, ...) apply;
//   - then, if those found nothing, the metadata validation kube-apiserver
//     runs for every kind (rest.BeforeCreate: name as a path segment,
//     labels, annotations, owner references, finalizers, managed fields).
//     Whether the kind is namespaced is taken from the object itself.
//
// Before validating, Object sets metadata.resourceVersion when the stored
// value has none (kube-apiserver sets it from the key's mod_revision on
// every read; update validation requires one, no rule reads its value).
//
// Covered kinds: Pod, PodTemplate, ReplicationController, Service,
// Endpoints, ConfigMap, Secret, ServiceAccount, Namespace, Node,
// PersistentVolume, PersistentVolumeClaim, ResourceQuota, LimitRange;
// apps Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision;
// batch Job, CronJob; autoscaling HorizontalPodAutoscaler; policy
// PodDisruptionBudget; coordination.k8s.io Lease; discovery.k8s.io
// EndpointSlice; networking.k8s.io Ingress, IngressClass, NetworkPolicy,
// IPAddress, ServiceCIDR; rbac.authorization.k8s.io Role, ClusterRole,
// RoleBinding, ClusterRoleBinding; scheduling.k8s.io PriorityClass.
//
// Feature gates are read from k8s.io/apiserver's DefaultFeatureGate and are
// never changed here: in a process that does not set them they are the
// defaults of v1.36.3, those of a kube-apiserver run without
// --feature-gates. Declarative validation: the strategies of the covered
// kinds that call rest.ValidateDeclarativelyWithMigrationChecks do so
// without declarative enforcement, so kube-apiserver returns exactly the
// handwritten errors these functions return.
//
// # What is not validated
//
//   - Values that are not a JSON object with apiVersion, kind and
//     metadata.name (kube-apiserver keeps nameless Endpoints under
//     /registry/masterleases/ and /registry/peerserverleases/, records no
//     API request ever validates), kinds of custom resources, built-in kinds not listed above, and versions the
//     scheme does not know are accepted (nil): Object cannot judge them,
//     and the merge keeps its own rules for them.
//   - Admission (quota, LimitRanger, PodSecurity, webhooks, policies) and
//     anything that needs other objects or the cluster's state: uniqueness
//     of ClusterIPs and NodePorts, a namespace being terminating, a role
//     escalating privileges. These are cluster-wide rules, not properties of
//     one object.
//   - Immutability and transition rules, which compare an update with the
//     object before it: a merge has two "before" objects, and choosing the
//     right one is the merge's job, not this package's.
//   - Protobuf values: Object expects kube-apiserver's JSON encoding, which
//     crdt/kube produces for every value it decodes.
//
// # Guarantees
//
// Object is a pure function of the value and the Kubernetes version
// compiled in (with its default feature gates): two sites running the same
// Rhizome build give the same answer for the same bytes, which is what lets
// a merge fall back deterministically. Sites on different builds may
// disagree where Kubernetes changed a rule between versions. Object never
// panics on any input (FuzzObject, TestOddValuesDoNotPanic), never logs,
// does not modify value and is safe for concurrent use.
//
// # Errors
//
// A rejected object gives an error wrapping kube-apiserver's own
// *errors.StatusError (reason Invalid; apierrors.IsInvalid holds) with the
// message kube-apiserver would return, field paths and all. A value of a
// covered kind that does not decode into its type gives an error too (not
// Invalid): kube-apiserver could not read it either.
//
// # Cost
//
// Per call, on objects a real kube-apiserver stored (testdata/stored, with
// managed fields and full status; go test -run '^$' -bench . -benchmem,
// 3 runs; 2 shared cores at load ~15, so cpu-ns/op, the process's CPU
// time per call, is the figure to trust over ns/op):
//
//	Pod (DaemonSet's, Running)  4.7 KB   480-650 µs CPU   36 KB, 610 allocs
//	Deployment (ready)          4.6 KB   235-275 µs CPU   22 KB, 347 allocs
//	Service                     1.3 KB    86-106 µs CPU  8.6 KB, 156 allocs
//	Lease                       1.0 KB     49-53 µs CPU  5.1 KB,  90 allocs
//	ConfigMap (kube-root-ca)    1.3 KB     47-56 µs CPU  6.1 KB,  92 allocs
//
// In a CPU profile of a 2.3 KB Pod, about half is JSON: this package's
// scan for apiVersion and kind (~13%), the decoder's own (~12%) and the
// decode into the versioned type (~27%); defaulting and conversion ~5%;
// validation ~30% (spec ~20%, status ~10%); the rest allocation and GC.
// A merge path that validates only objects a merge changed, not every local
// write, pays this once per such merge.
//
// Build: the package adds 95 packages to the module's build (72 of
// k8s.io/kubernetes; 475 in its closure, go list -deps). Compiling those 95
// cold, with everything the module already built in the cache, took 58 s of
// CPU (43 s user, 15 s sys; 218 s wall on the shared 2 cores at nice 19);
// the packages of its closure the module already had took 226 s of CPU
// from an empty cache. A warm rebuild of the package takes under a second.
package validate
