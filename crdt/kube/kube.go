package kube

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
)

// protobufMagic starts every value kube-apiserver writes in protobuf.
var protobufMagic = []byte("k8s\x00")

// IsProtobuf reports whether a value is in kube-apiserver's protobuf envelope.
func IsProtobuf(value []byte) bool { return bytes.HasPrefix(value, protobufMagic) }

var (
	decoder = protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	// Exactly the encoder kube-apiserver uses for application/json storage, so a
	// converted object is byte for byte what the JSON encoding stores.
	encoder = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{})
)

// ToJSON converts a protobuf-encoded built-in object to its JSON storage form.
// ok is false for values that are not protobuf or whose type is not built in:
// those stay opaque.
func ToJSON(value []byte) (out []byte, ok bool) {
	if !IsProtobuf(value) {
		return nil, false
	}
	obj, gvk, err := decoder.Decode(value, nil, nil)
	if err != nil || gvk == nil {
		return nil, false
	}
	if _, unknown := obj.(*runtime.Unknown); unknown {
		return nil, false
	}
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	var buf bytes.Buffer
	if err := encoder.Encode(obj, &buf); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

// Canonical is the form two sites compare a value in: a site serves a
// built-in object kube-apiserver wrote in protobuf as written until a merge
// changes it, and as its JSON storage form after, so a protobuf value is
// compared as that JSON; any other value is itself.
func Canonical(value []byte) []byte {
	if j, ok := ToJSON(value); ok {
		return j
	}
	return value
}

// Decode reads a built-in object as a site serves it, in protobuf as
// kube-apiserver wrote it or in its JSON storage form (what ToJSON returns, or
// what kube-apiserver's JSON encoding stored), into a typed object: JSON as
// kube-apiserver's JSON serializer unmarshals it (case-sensitive field names),
// without its separate pass over apiVersion and kind.
func Decode(value []byte, into runtime.Object) error {
	if IsProtobuf(value) {
		if _, _, err := decoder.Decode(value, nil, into); err != nil {
			return fmt.Errorf("kube: decode: %w", err)
		}
		return nil
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(value, into); err != nil {
		return fmt.Errorf("kube: decode: %w", err)
	}
	return nil
}

// Encode writes a built-in object in kube-apiserver's JSON storage form, its
// apiVersion and kind set from the scheme: the bytes kube-apiserver itself would
// have stored for it.
func Encode(obj runtime.Object) ([]byte, error) {
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return nil, fmt.Errorf("kube: encode %T: not a built-in kind: %w", obj, err)
	}
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	var buf bytes.Buffer
	if err := encoder.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("kube: encode: %w", err)
	}
	return buf.Bytes(), nil
}
