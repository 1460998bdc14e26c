package kube

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/spec3"
)

// CRDResource is where kube-apiserver keeps CustomResourceDefinitions, below
// its --etcd-prefix: <prefix>apiextensions.k8s.io/customresourcedefinitions/NAME.
const CRDResource = "apiextensions.k8s.io/customresourcedefinitions/"

// CustomResources holds the merge units of custom resources, built from their
// CustomResourceDefinitions as kube-apiserver builds the schema server-side
// apply uses for them: apiextensions-apiserver's OpenAPI builder for each
// version's openAPIV3Schema (x-kubernetes-list-type, x-kubernetes-list-map-keys,
// x-kubernetes-map-type; metadata by ObjectMeta's schema), then a
// structured-merge-diff type converter. Kubernetes' rules layered on the schema
// hold as for built-in kinds (status one unit).
//
// It is fed the stored CRDs (Put, Delete) and answers Object for the kinds they
// define; kinds of no CRD here have no Node (their objects merge by JSON path).
// A merge must read the same schema at every site: the registry's content must
// be a function of the stored CRDs, fed from the commit path, and when a CRD's
// schema changes (Put reports it) the documents of its resource must be
// materialised again. Its methods are safe for concurrent use; Nodes it returned
// stay valid after the CRD changes.
type CustomResources struct {
	mu    sync.RWMutex
	crds  map[string]crdEntry // by CRD name
	kinds map[schema.GroupVersionKind]kindSchema
}

// kindSchema is what a CRD says of one of its versions: its merge units and
// the validator of its openAPIV3Schema.
type kindSchema struct {
	root      Node
	validator validation.SchemaValidator
}

type crdEntry struct {
	res    Resource
	gvks   []schema.GroupVersionKind
	digest [32]byte // of what the schema is built from
}

// Resource names the resource a CRD defines: its objects are kept at
// <prefix>GROUP/PLURAL/[NAMESPACE/]NAME.
type Resource struct {
	Group, Plural string
}

// KeyPrefix returns the prefix of the resource's keys under kube-apiserver's
// --etcd-prefix prefix (with its trailing slash).
func (r Resource) KeyPrefix(prefix string) string { return prefix + r.Group + "/" + r.Plural + "/" }

// NewCustomResources returns an empty registry.
func NewCustomResources() *CustomResources {
	return &CustomResources{crds: map[string]crdEntry{}, kinds: map[schema.GroupVersionKind]kindSchema{}}
}

// Object returns the root Node of an object of the given apiVersion and kind: a
// built-in kind's, else a custom resource's from its CRD; ok is false for kinds
// neither knows. A nil registry knows the built-in kinds only.
func (c *CustomResources) Object(apiVersion, kind string) (Node, bool) {
	if n, ok := Object(apiVersion, kind); ok || c == nil {
		return n, ok
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return Node{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.kinds[gv.WithKind(kind)]
	return k.root, ok && k.root.Known()
}

// Validate checks a custom resource against its CRD's schema for its version,
// as kube-apiserver's schema validation does (x-kubernetes-validations rules
// are not evaluated); values of other kinds, and of kinds no known CRD
// defines, are accepted. It fits crdt.Validator beside the built-in kinds'
// validation.
func (c *CustomResources) Validate(value []byte) error {
	var obj map[string]any
	if c == nil || utiljson.Unmarshal(value, &obj) != nil {
		return nil
	}
	u := unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	c.mu.RLock()
	k, ok := c.kinds[gvk]
	c.mu.RUnlock()
	if !ok || k.validator == nil {
		return nil
	}
	if errs := validation.ValidateCustomResource(nil, obj, k.validator); len(errs) > 0 {
		return fmt.Errorf("kube: %s %q is invalid: %w", gvk.Kind, u.GetName(), errs.ToAggregate())
	}
	return nil
}

// Put reads a CustomResourceDefinition as stored (JSON, or kube-apiserver's
// protobuf) and makes its versions' schemas the merge units of its kinds. It
// returns the resource the CRD defines and whether the merge units changed (a
// write that changed only the CRD's status or metadata does not). A CRD whose
// schema cannot be built is an error and leaves the registry as it was.
func (c *CustomResources) Put(value []byte) (Resource, bool, error) {
	crd, err := decodeCRD(value)
	if err != nil {
		return Resource{}, false, err
	}
	e := crdEntry{res: Resource{Group: crd.Spec.Group, Plural: crd.Spec.Names.Plural}}
	if e.digest, err = schemaDigest(crd); err != nil {
		return Resource{}, false, err
	}
	c.mu.RLock()
	old, had := c.crds[crd.Name]
	c.mu.RUnlock()
	if had && old.digest == e.digest {
		return e.res, false, nil
	}
	roots, err := crdRoots(crd)
	if err != nil {
		return Resource{}, false, fmt.Errorf("kube: CRD %s: %w", crd.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(crd.Name)
	for gvk, k := range roots {
		c.kinds[gvk] = k
		e.gvks = append(e.gvks, gvk)
	}
	c.crds[crd.Name] = e
	return e.res, true, nil
}

// Delete forgets the CRD of that name (the last segment of its key). It
// returns the resource it defined, and false when it was not known.
func (c *CustomResources) Delete(name string) (Resource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.crds[name]
	c.dropLocked(name)
	return e.res, ok
}

func (c *CustomResources) dropLocked(name string) {
	for _, gvk := range c.crds[name].gvks {
		delete(c.kinds, gvk)
	}
	delete(c.crds, name)
}

// crdScheme decodes CRDs kube-apiserver stored in protobuf.
var crdCodec = sync.OnceValue(func() runtime.Decoder {
	s := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil // a static registration; cannot fail
	}
	return protobuf.NewSerializer(s, s)
})

func decodeCRD(value []byte) (*apiextensionsv1.CustomResourceDefinition, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	var err error
	if IsProtobuf(value) {
		_, _, err = crdCodec().Decode(value, nil, crd)
	} else {
		err = json.Unmarshal(value, crd)
	}
	if err == nil && (crd.Name == "" || crd.Spec.Group == "" || crd.Spec.Names.Kind == "") {
		err = fmt.Errorf("name, spec.group or spec.names.kind missing")
	}
	if err != nil {
		return nil, fmt.Errorf("kube: decode CRD: %w", err)
	}
	return crd, nil
}

// schemaDigest hashes what a CRD's merge units are built from.
func schemaDigest(crd *apiextensionsv1.CustomResourceDefinition) ([32]byte, error) {
	b, err := json.Marshal([]any{crd.Spec.Group, crd.Spec.Names, crd.Spec.Scope, crd.Spec.Versions, crd.Spec.PreserveUnknownFields})
	return sha256.Sum256(b), err
}

// crdRoots builds, for each version of a CRD that has a schema, its root Node
// (as kube-apiserver builds the type converter server-side apply uses) and its
// schema validator.
func crdRoots(crd *apiextensionsv1.CustomResourceDefinition) (map[schema.GroupVersionKind]kindSchema, error) {
	var specs []*spec3.OpenAPI
	roots := map[schema.GroupVersionKind]kindSchema{}
	for _, v := range crd.Spec.Versions {
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		s, err := builder.BuildOpenAPIV3(crd, v.Name, builder.Options{})
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, err
		}
		sv, _, err := validation.NewSchemaValidator(&internal)
		if err != nil {
			return nil, err
		}
		roots[gvk] = kindSchema{validator: sv}
	}
	if len(specs) == 0 {
		return roots, nil
	}
	merged, err := builder.MergeSpecsV3(specs...)
	if err != nil {
		return nil, err
	}
	tc, err := managedfields.NewTypeConverter(merged.Components.Schemas, crd.Spec.PreserveUnknownFields)
	if err != nil {
		return nil, err
	}
	for gvk, k := range roots {
		if n := typedRoot(tc, gvk); n != nil {
			k.root = *n
			roots[gvk] = k
		}
	}
	return roots, nil
}

// typedRoot asks a type converter for the typed form of an empty object of
// kind gvk, which names the kind's root type in the schema.
func typedRoot(tc managedfields.TypeConverter, gvk schema.GroupVersionKind) *Node {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	tv, err := tc.ObjectToTyped(u)
	if err != nil {
		return nil
	}
	sch := tv.Schema()
	a, ok := sch.Resolve(tv.TypeRef())
	if !ok || a.Map == nil {
		return nil
	}
	return &Node{s: sch, atom: a, rules: rulesFor(gvk.GroupKind())}
}

// Observe is the one call a store makes for every committed change of a key
// under kube-apiserver's prefix: value is the key's materialised value, live
// false for a delete. For a CRD's key it puts or deletes the CRD and returns
// its resource and whether the merge units changed (the documents under
// Resource.KeyPrefix must then be materialised again); any other key is
// ignored (ok false).
func (c *CustomResources) Observe(prefix string, key, value []byte, live bool) (res Resource, changed bool, err error) {
	name, ok := IsCRDKey(prefix, key)
	if !ok {
		return Resource{}, false, nil
	}
	if !live {
		res, changed = c.Delete(name)
		return res, changed, nil
	}
	return c.Put(value)
}

// ForKey returns the resource of a known CRD that key belongs to
// (<prefix>GROUP/PLURAL/...).
func (c *CustomResources) ForKey(prefix string, key []byte) (Resource, bool) {
	rest, ok := strings.CutPrefix(string(key), prefix)
	group, rest, ok2 := strings.Cut(rest, "/")
	plural, _, ok3 := strings.Cut(rest, "/")
	if !ok || !ok2 || !ok3 {
		return Resource{}, false
	}
	want := Resource{Group: group, Plural: plural}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, e := range c.crds {
		if e.res == want {
			return want, true
		}
	}
	return Resource{}, false
}

// IsCRDKey reports whether key is a CustomResourceDefinition's under prefix,
// and returns its name.
func IsCRDKey(prefix string, key []byte) (string, bool) {
	name, ok := strings.CutPrefix(string(key), prefix+CRDResource)
	return name, ok && name != "" && !strings.Contains(name, "/")
}
