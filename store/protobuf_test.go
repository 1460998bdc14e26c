package store

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// protobufConfigMap is a ConfigMap as kube-apiserver stores it by default.
func protobufConfigMap(t *testing.T, ns string, data map[string]string) []byte {
	t.Helper()
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: ns, UID: "u1"}, Data: data}
	var b bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(cm, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestProtobufServedAsWritten: a site serves kube-apiserver's protobuf as
// written while the object is its own last write (kube-apiserver's check that
// an update changed nothing compares bytes), a merged object as its JSON
// form, and sites holding the same objects have the same digest either way.
func TestProtobufServedAsWritten(t *testing.T) {
	a, b := openSite(t, "a", nil), openSite(t, "b", nil)
	const key = "/registry/configmaps/default/cm"
	v1 := protobufConfigMap(t, "default", map[string]string{"x": "1"})
	put(t, a, key, string(v1))
	if kv, _ := get(t, a, key, 0); !bytes.Equal(kv.Value, v1) {
		t.Fatalf("a serves %q, want the protobuf it was written as", kv.Value)
	}
	exchange(t, a, b)
	mustEqual(t, a, b)
	want, _ := kube.ToJSON(v1)
	if kv, _ := get(t, b, key, 0); !bytes.Equal(kv.Value, want) {
		t.Fatalf("b serves %q after the merge, want its JSON form %q", kv.Value, want)
	}
	// Concurrent writes of different fields merge: both sites serve JSON.
	put(t, a, key, string(protobufConfigMap(t, "default", map[string]string{"x": "1", "y": "a"})))
	put(t, b, key, string(protobufConfigMap(t, "default", map[string]string{"x": "2"})))
	exchange(t, a, b)
	mustEqual(t, a, b)
	for _, s := range []*Store{a, b} {
		kv, _ := get(t, s, key, 0)
		if kube.IsProtobuf(kv.Value) || !bytes.Contains(kv.Value, []byte(`"data":{"x":"2","y":"a"}`)) {
			t.Fatalf("%s serves %q after concurrent writes, want the merged JSON", s.Site(), kv.Value)
		}
	}
	// A write after the merge is served as written again, with the merged
	// value as its prev_kv.
	v3 := protobufConfigMap(t, "default", map[string]string{"x": "3"})
	before, _ := get(t, a, key, 0)
	put(t, a, key, string(v3))
	kv, _ := get(t, a, key, 0)
	if !bytes.Equal(kv.Value, v3) {
		t.Fatalf("a serves %q, want the protobuf it was written as", kv.Value)
	}
	if prev, _ := get(t, a, key, kv.ModRevision-1); !bytes.Equal(prev.Value, before.Value) {
		t.Fatalf("the revision before serves %q, want %q", prev.Value, before.Value)
	}
}

// TestNamespaceOfProtobuf: the namespace rule reads an object's namespace
// from the value a site serves, protobuf included.
func TestNamespaceOfProtobuf(t *testing.T) {
	s := openSite(t, "a", nil)
	for _, value := range [][]byte{protobufConfigMap(t, "ns", nil), []byte(kubeObj("ConfigMap", "ns", "cm"))} {
		if got := s.namespaceOf([]byte(cmKey), value); got != "ns" {
			t.Fatalf("namespace of %q: %q, want ns", value, got)
		}
	}
}
