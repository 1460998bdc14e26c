package crdt_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// jsonObject decodes b if it is one JSON object (numbers kept as written).
func jsonObject(b []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil || m == nil || dec.More() {
		return nil, false
	}
	return m, true
}

// FuzzValue puts arbitrary bytes into a document as a client's value: a JSON
// object (or a built-in Kubernetes object in protobuf, as its JSON form) must
// read back as the same object (a mergeable document), anything else byte for
// byte (an opaque register), never a panic. The corpus
// (testdata/fuzz/FuzzValue) holds real Kubernetes objects and etcd values.
func FuzzValue(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":"1"}},"data":{"k":"v"}}`))
	f.Add([]byte("opaque"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d crdt.Doc
		if _, _, err := d.Put(b, crdt.Stamp{Counter: 1, Site: "a"}); err != nil {
			return // refused, with an error
		}
		v, ok := d.Value()
		if !ok {
			t.Fatalf("value %q put but absent", b)
		}
		in := b
		if js, ok := kube.ToJSON(b); ok {
			in = js // kube-apiserver's protobuf is kept as its JSON form
		}
		want, isObject := jsonObject(in)
		if !isObject {
			if !bytes.Equal(v, b) {
				t.Fatalf("opaque value %q read back as %q", b, v)
			}
			return
		}
		if got, ok := jsonObject(v); !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("JSON object %s read back as %s", b, v)
		}
	})
}
