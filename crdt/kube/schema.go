package kube

import (
	"encoding/json"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
	smd "sigs.k8s.io/structured-merge-diff/v6/schema"
)

// Merge units.
//
// A Node is a place in a Kubernetes object and says how the value found there
// merges, by the structured-merge-diff schema that server-side apply uses for the
// built-in types (client-go's applyconfigurations): a struct or a granular map
// merges member by member; an atomic struct or map, and an atomic list (SMD's
// default for a list without a list-type), is one unit; a list-map merges element
// by element, each element named by its key fields (containers by name); a set
// list merges element by element. On top of the schema, Kubernetes' own rules
// (rulesFor): an object's status is one unit (an observation, written whole by
// its controller); a coordination.k8s.io Lease's spec is one unit (never one
// holder's name with another's renew time); a PersistentVolume's
// spec.claimRef is one unit (server-side apply makes it granular so that a user
// can pre-bind by name and the controller add the uid, one after the other;
// concurrent bindings at two sites must not blend one claim's name with
// another's uid).
//
// The zero Node is a place the schema does not describe (a custom resource, a
// field newer than the schema, an untyped value): there JSON objects merge member
// by member and arrays are one unit.

// Shape is how a JSON object or array at a Node merges.
type Shape uint8

const (
	Granular Shape = iota // an object by member; never an array
	Atomic                // one unit, replaced whole
	ListMap               // an array of objects, element by element, named by Keys
	Set                   // an array of scalars, element by element
)

// Node is a place in an object's schema. Nodes are immutable values.
type Node struct {
	s     *smd.Schema
	atom  smd.Atom
	rules *rule // Kubernetes' rules for this place and below; nil: none
}

// rule overrides the schema at one place: one unit, or rules for members.
type rule struct {
	atomic  bool
	members map[string]*rule
}

func (r *rule) member(name string) *rule {
	if r == nil {
		return nil
	}
	return r.members[name]
}

var (
	atomicRule  = &rule{atomic: true}
	objectRules = &rule{members: map[string]*rule{"status": atomicRule}}
	kindRules   = map[schema.GroupKind]*rule{
		{Group: "coordination.k8s.io", Kind: "Lease"}: {members: map[string]*rule{"status": atomicRule, "spec": atomicRule}},
		{Kind: "PersistentVolume"}: {members: map[string]*rule{"status": atomicRule,
			"spec": {members: map[string]*rule{"claimRef": atomicRule}}}},
	}
)

// rulesFor returns the rules layered on the schema for an object of kind gk.
func rulesFor(gk schema.GroupKind) *rule {
	if r, ok := kindRules[gk]; ok {
		return r
	}
	return objectRules
}

// Object returns the root Node of a built-in object of the given apiVersion and
// kind; ok is false for kinds the schema does not know (custom resources).
func Object(apiVersion, kind string) (n Node, ok bool) {
	return builtin().root(apiVersion, kind)
}

// Known reports whether the schema describes this place.
func (n Node) Known() bool { return n.s != nil }

// Object returns how a JSON object here merges: Granular or Atomic.
func (n Node) Object() Shape {
	if n.atom.Map != nil && n.atom.Map.ElementRelationship == smd.Atomic {
		return Atomic
	}
	return Granular
}

// Array returns how a JSON array here merges and, for a ListMap, the key fields
// of its elements.
func (n Node) Array() (Shape, []string) {
	l := n.atom.List
	if l == nil || l.ElementRelationship != smd.Associative {
		return Atomic, nil
	}
	if len(l.Keys) > 0 {
		return ListMap, l.Keys
	}
	if el, ok := n.s.Resolve(l.ElementType); ok && el.Scalar != nil && el.Map == nil && el.List == nil {
		return Set, nil
	}
	return Atomic, nil
}

// Member returns the Node of an object member.
func (n Node) Member(name string) Node {
	m := n.atom.Map
	if m == nil {
		return Node{}
	}
	r := n.rules.member(name)
	if r != nil && r.atomic {
		return Node{s: n.s, atom: smd.Atom{Map: &atomicMap}}
	}
	tr := m.ElementType
	if f, ok := m.FindField(name); ok {
		tr = f.Type
	}
	child := n.resolve(tr)
	child.rules = r
	return child
}

// Element returns the Node of an array's elements.
func (n Node) Element() Node {
	if n.atom.List == nil {
		return Node{}
	}
	return n.resolve(n.atom.List.ElementType)
}

// KeyDefault returns, as JSON text, the default of a list-map element's key field
// (what an element that omits it is keyed by), and whether there is one.
func (n Node) KeyDefault(key string) (string, bool) {
	m := n.atom.Map
	if m == nil {
		return "", false
	}
	f, ok := m.FindField(key)
	if !ok || f.Default == nil {
		return "", false
	}
	b, err := json.Marshal(f.Default)
	return string(b), err == nil
}

func (n Node) resolve(tr smd.TypeRef) Node {
	if tr.NamedType == nil && tr.Inlined == (smd.Atom{}) {
		return Node{}
	}
	a, ok := n.s.Resolve(tr)
	if !ok {
		return Node{}
	}
	return Node{s: n.s, atom: a}
}

// atomicMap is the type the rules layered on the schema make one unit.
var atomicMap = smd.Map{ElementRelationship: smd.Atomic}

// schemas finds the root types of built-in kinds. It is built once and then only
// read: a lookup table, not state (the roots it caches never change).
type schemas struct {
	tc    managedfields.TypeConverter
	mu    sync.Mutex
	roots map[schema.GroupVersionKind]*Node // nil: not built in
}

var builtin = sync.OnceValue(func() *schemas {
	return &schemas{tc: applyconfigurations.NewTypeConverter(scheme.Scheme), roots: map[schema.GroupVersionKind]*Node{}}
})

func (s *schemas) root(apiVersion, kind string) (Node, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || kind == "" {
		return Node{}, false
	}
	gvk := gv.WithKind(kind)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, seen := s.roots[gvk]
	if !seen {
		n = s.lookup(gvk)
		s.roots[gvk] = n
	}
	if n == nil {
		return Node{}, false
	}
	return *n, true
}

// lookup asks the type converter for the kind's root (typedRoot).
func (s *schemas) lookup(gvk schema.GroupVersionKind) *Node { return typedRoot(s.tc, gvk) }
