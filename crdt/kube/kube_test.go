package kube

import (
	"bytes"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// encode writes obj as kube-apiserver's storage would in protobuf and in JSON.
func encode(t *testing.T, obj runtime.Object, gvk schema.GroupVersionKind) (pb, js []byte) {
	t.Helper()
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	var a, b bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &a); err != nil {
		t.Fatal(err)
	}
	if err := encoder.Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes()
}

func TestProtobufBecomesTheJSONDocument(t *testing.T) {
	replicas := int32(3)
	cases := []struct {
		name string
		obj  runtime.Object
		gvk  schema.GroupVersionKind
	}{
		{"pod", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default", Labels: map[string]string{"app": "web"}, ResourceVersion: ""},
			Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "nginx:1.27", Args: []string{"<a&b>"}}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}, corev1.SchemeGroupVersion.WithKind("Pod")},
		{"deployment", &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: map[string]string{"x": "é"}},
			Spec:       appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		}, appsv1.SchemeGroupVersion.WithKind("Deployment")},
		{"configmap", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}, Data: map[string]string{"k": "v"}, BinaryData: map[string][]byte{"b": {0, 1}}},
			corev1.SchemeGroupVersion.WithKind("ConfigMap")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pb, js := encode(t, tc.obj, tc.gvk)
			if !IsProtobuf(pb) {
				t.Fatalf("protobuf encoding lacks the envelope: %q", pb[:8])
			}
			got, ok := ToJSON(pb)
			if !ok {
				t.Fatal("a built-in object did not convert")
			}
			if !bytes.Equal(got, js) {
				t.Fatalf("converted:\n%s\nJSON encoding:\n%s", got, js)
			}
			if !bytes.Equal(Canonical(pb), js) || !bytes.Equal(Canonical(js), js) {
				t.Fatal("Canonical is not the JSON form of both encodings")
			}
			// Decode reads both forms into the same object.
			fromPB, fromJSON := tc.obj.DeepCopyObject(), tc.obj.DeepCopyObject()
			if err := Decode(pb, fromPB); err != nil {
				t.Fatal(err)
			}
			if err := Decode(js, fromJSON); err != nil {
				t.Fatal(err)
			}
			fromPB.GetObjectKind().SetGroupVersionKind(tc.gvk)
			fromJSON.GetObjectKind().SetGroupVersionKind(tc.gvk)
			if !equality.Semantic.DeepEqual(fromPB, fromJSON) {
				t.Fatalf("decoded from protobuf:\n%#v\nfrom JSON:\n%#v", fromPB, fromJSON)
			}
		})
	}
}

func TestUnknownStaysOpaque(t *testing.T) {
	for _, v := range [][]byte{[]byte("k8s\x00garbage"), []byte(`{"a":1}`), nil} {
		if _, ok := ToJSON(v); ok {
			t.Fatalf("%q converted", v)
		}
	}
}
