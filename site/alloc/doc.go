// Package alloc keeps Kubernetes' cluster-wide allocations unique across sites.
//
// kube-apiserver hands out Service ClusterIPs (one networking.k8s.io IPAddress
// object per address, named by it) and NodePorts (a bitmap in the RangeAllocation
// at <prefix>ranges/servicenodeports) by compare-and-swap on its own site's store.
// Two sites cut off from each other each see the address or port free and give it
// to different Services; after the heal the IPAddress key merges to one whole
// winner (a concurrent create) but both Services still hold the address, and the
// merged NodePort bitmap is one side's. kube-apiserver's own repair loops only
// complain ("please recreate service").
//
// Compute plans the repair from the merged state alone, by rules every site
// applies alike, so that sites repairing concurrently write identical values:
//
//   - ClusterIPs: among the Services holding one address, the one the address's
//     IPAddress parentRef names keeps it (else the earliest creationTimestamp,
//     then the smallest uid); every other holder is given a free address of the
//     same family in a ServiceCIDR (the one holding the old address first), found
//     from a start derived from its uid, and the IPAddress object for it.
//   - NodePorts: the Service created first (creationTimestamp, then uid) keeps a
//     port held by several; the others get a free port of the range, found the
//     same way. The RangeAllocation bitmap is made to hold every port a Service
//     holds (bits are only ever added: a port allocated for a Service still being
//     created must stay taken; kube-apiserver's repair frees leaks).
//
// Re-allocation is what upstream does when a Service changes type or its
// nodePort; a ClusterIP is immutable through the API, but the loser's address is
// already broken (kube-proxy routes it to one of the two Services), and
// recreating the Service, upstream's advice, gives it a new address too. Where
// no free address or port exists the Service is flagged instead: a Warning
// Event on it, a log line and a metric, and it keeps the duplicate. Every
// repair (re-allocation or flag) is also in the store's conflict list, kind
// allocation, in the same write (store.WriteTxn.RecordConflict): the loser is
// the Service that gave the value up, the winner the one that keeps it, the
// detail the value and what became of it; `rhizome conflicts` and
// /rhizome/conflicts list it. Each site that applies the repair records it.
// The Event names no site and carries its times to the minute, so sites that
// apply one repair at once write the same Event, and a user sees one.
//
// Repairer runs Compute on a site's store and applies the plan through the
// store's ordinary local write path (one Update; watchers and kube-apiserver's
// cache see the change), only if none of the keys the plan writes changed since
// it was read; otherwise it plans again. Every site runs one; their writes are
// the same values, so they merge into the same bytes. Compute is pure and
// deterministic (no clocks, randomness or goroutines); Repairer owns a goroutine
// and takes its clock from its Config, for Events only.
package alloc
