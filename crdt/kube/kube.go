package kube

import (
	"bytes"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
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
