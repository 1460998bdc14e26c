// Package kube holds what Rhizome knows of Kubernetes values, for crdt.
//
// Encoding: objects that kube-apiserver stored in its binary protobuf encoding
// become the JSON that its JSON encoding would have stored (ToJSON), so that both
// encodings become the same mergeable document. A site serves the protobuf as
// written while the object is its own last write (so kube-apiserver's check that
// an update changed nothing compares equal bytes), and the document's JSON once a
// merge has changed it: kube-apiserver decodes either from storage whatever media
// type it writes. Sites compare values in the JSON form (Canonical).
//
// Merge units: Object returns, for a built-in kind, the root of its
// structured-merge-diff schema as server-side apply uses it (client-go's
// applyconfigurations type converter), with Kubernetes' own rules layered on top
// (status one unit; a Lease's spec one unit; a PersistentVolume's claimRef one
// unit). A Node says how the value at one
// place merges: Granular, Atomic, ListMap (by key fields) or Set.
//
// Concurrent edits: Concurrent applies the rules a field merge alone does not
// keep when an object's history ends in concurrent edits (metadata.generation
// moved, the validation fallback), generic over how the fields are held, and
// Node.Unit names the merge unit a place lies in: crdt's merge and the model
// checker (checker/consistency) call both, so they run one implementation.
//
// Custom resources: CustomResources builds the merge units of the kinds a
// CustomResourceDefinition defines from its OpenAPI schema, as kube-apiserver
// builds them for server-side apply, and answers Object for built-in kinds and
// those alike. It is fed the stored CRDs; which keys are CRDs (IsCRDKey) and
// which documents a CRD's schema governs (Resource.KeyPrefix) follow
// kube-apiserver's key layout. Kinds of no known CRD have no Node. Its Validate
// checks a custom resource against its CRD's schema, for the merge's validator.
//
// Codec: Decode and Encode read and write built-in objects in the JSON storage
// form, for components that rewrite stored objects (site/alloc).
//
// Everything here is pure and deterministic: the built-in schema is parsed once
// and only read afterwards; a CustomResources answers from the CRDs it was
// given, nothing else.
package kube
