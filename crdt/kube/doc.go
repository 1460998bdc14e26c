// Package kube holds what Rhizome knows of Kubernetes values, for crdt.
//
// Encoding: objects that kube-apiserver stored in its binary protobuf encoding
// become the JSON that its JSON encoding would have stored (ToJSON), so that both
// encodings become the same mergeable document. kube-apiserver decodes JSON from
// storage whatever media type it writes, so it reads these values back.
//
// Merge units: Object returns, for a built-in kind, the root of its
// structured-merge-diff schema as server-side apply uses it (client-go's
// applyconfigurations type converter), with Kubernetes' own rules layered on top
// (status one unit; a Lease's spec one unit; a PersistentVolume's claimRef one
// unit). A Node says how the value at one
// place merges: Granular, Atomic, ListMap (by key fields) or Set. Kinds the schema
// does not know (custom resources) have no Node: their CRD schemas are not read
// yet.
//
// Everything here is pure and deterministic; the schema is parsed once and only
// read afterwards.
package kube
