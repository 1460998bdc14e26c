package kube

import (
	"bytes"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// FuzzToJSON converts arbitrary bytes as a value kube-apiserver stored in
// protobuf: ToJSON never panics, and what it converts is a JSON object with
// apiVersion and kind, whose decoding (Decode) into its type succeeds. The
// corpus (testdata/fuzz/FuzzToJSON) holds real objects' protobuf encodings.
func FuzzToJSON(f *testing.F) {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(pod, &buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := ToJSON(b)
		if !ok {
			return
		}
		var head struct{ APIVersion, Kind string }
		if err := json.Unmarshal(out, &head); err != nil || head.APIVersion == "" || head.Kind == "" {
			t.Fatalf("converted to %q: not a JSON object with apiVersion and kind (%v)", out, err)
		}
		gvk := schema.FromAPIVersionAndKind(head.APIVersion, head.Kind)
		obj, err := scheme.Scheme.New(gvk)
		if err != nil {
			t.Fatalf("converted to a kind the scheme does not know: %v", err)
		}
		if err := Decode(out, obj); err != nil {
			t.Fatalf("converted JSON does not decode as %v: %v", gvk, err)
		}
	})
}
