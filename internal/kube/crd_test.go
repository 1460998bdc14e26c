package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

// widgetCRD is applied with kubectl. v1 is stored; v1beta1 is served from
// the same objects (conversion None), so a read through it is a second
// decoding of what the datastore holds.
const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.e2e.rhizome.dev
spec:
  group: e2e.rhizome.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 0}
              color: {type: string}
              tags: {type: array, items: {type: string}}
          status:
            type: object
            properties:
              ready: {type: boolean}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

var widgetGVR = schema.GroupVersionResource{Group: "e2e.rhizome.dev", Version: "v1", Resource: "widgets"}

// testCRD: a CustomResourceDefinition and custom objects — create, get,
// paged list, update, status, patch, server-side apply, watch, delete —
// and the CRD's deletion cleaning up its objects.
func testCRD(t *testing.T, c *kube.Cluster) {
	ctx := t.Context()
	const ns = "crd"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KubectlRun(ctx, strings.NewReader(widgetCRD), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	waitFor(t, time.Minute, "CRD established and served", func(ctx context.Context) (bool, string, error) {
		crd, err := c.Dynamic.Resource(crdGVR).Get(ctx, "widgets.e2e.rhizome.dev", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		established := false
		for _, cd := range conds {
			m, _ := cd.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				established = true
			}
		}
		if !established {
			return false, fmt.Sprintf("conditions %v", conds), nil
		}
		// Established is set before every apiserver handler serves it.
		_, err = c.Dynamic.Resource(widgetGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		return err == nil, fmt.Sprint(err), nil
	})

	widgets := c.Dynamic.Resource(widgetGVR).Namespace(ns)
	widget := func(name string, size int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "e2e.rhizome.dev/v1",
			"kind":       "Widget",
			"metadata":   map[string]any{"name": name},
			"spec":       map[string]any{"size": size, "color": "blue", "tags": []any{"a", "b"}},
		}}
	}
	const n = 12
	var names []string
	for i := range n {
		name := fmt.Sprintf("w-%02d", i)
		names = append(names, name)
		if _, err := widgets.Create(ctx, widget(name, int64(i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := widgets.Create(ctx, widget("w-bad", -1), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("create against the schema (size -1): err = %v, want Invalid", err)
	}

	// Paged list, as client-go pagers do it.
	var listed []string
	opts := metav1.ListOptions{Limit: 5}
	for pages := 0; ; pages++ {
		list, err := widgets.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range list.Items {
			listed = append(listed, it.GetName())
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			if pages+1 < (n+4)/5 {
				t.Errorf("listed in %d pages of 5, want %d", pages+1, (n+4)/5)
			}
			break
		}
		if pages > n {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(listed, names) {
		t.Errorf("paged list = %v, want %v", listed, names)
	}

	// Custom resources are always JSON in storage, whatever the apiserver's
	// storage media type: the datastore holds what it was given.
	key := "/registry/e2e.rhizome.dev/widgets/" + ns + "/w-00"
	db := c.DatastoreClient(t)
	resp, err := db.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || !strings.HasPrefix(string(resp.Kvs[0].Value), "{") {
		t.Errorf("datastore value of %s = %q, want one JSON object", key, resp.Kvs)
	}

	// Watch from now on, then change one object in every way there is.
	w0, err := widgets.Get(ctx, "w-01", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := widgets.Watch(ctx, metav1.ListOptions{ResourceVersion: w0.GetResourceVersion(), FieldSelector: "metadata.name=w-01"})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()

	type step struct {
		typ  watch.EventType
		rv   string
		size int64
	}
	var steps []step
	if err := unstructured.SetNestedField(w0.Object, int64(100), "spec", "size"); err != nil {
		t.Fatal(err)
	}
	w1, err := widgets.Update(ctx, w0, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, step{watch.Modified, w1.GetResourceVersion(), 100})
	if _, err := widgets.Update(ctx, w0, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update from stale resourceVersion: err = %v, want a conflict", err)
	}
	if err := unstructured.SetNestedField(w1.Object, true, "status", "ready"); err != nil {
		t.Fatal(err)
	}
	w2, err := widgets.UpdateStatus(ctx, w1, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, step{watch.Modified, w2.GetResourceVersion(), 100})
	w3, err := widgets.Patch(ctx, "w-01", types.MergePatchType, []byte(`{"spec":{"size":101,"color":null}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, step{watch.Modified, w3.GetResourceVersion(), 101})
	w01 := "apiVersion: e2e.rhizome.dev/v1\nkind: Widget\nmetadata: {name: w-01}\nspec: {size: 102, tags: [c]}\n"
	if _, err := c.KubectlRun(ctx, strings.NewReader(w01), "apply", "--server-side", "--field-manager=e2e", "--force-conflicts", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	w4, err := widgets.Get(ctx, "w-01", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps = append(steps, step{watch.Modified, w4.GetResourceVersion(), 102})
	if _, err := c.Kubectl(ctx, "delete", "widgets.e2e.rhizome.dev", "w-01", "-n", ns); err != nil {
		t.Fatal(err)
	}
	steps = append(steps, step{watch.Deleted, "", 102})

	spec, _, _ := unstructured.NestedMap(w4.Object, "spec")
	ready, _, _ := unstructured.NestedBool(w4.Object, "status", "ready")
	if fmt.Sprint(spec) != "map[size:102 tags:[c]]" || !ready {
		t.Errorf("after update, status, patch and apply: spec %v, status.ready %v; want map[size:102 tags:[c]], true", spec, ready)
	}
	// Read through the other served version: the same stored object.
	beta := c.Dynamic.Resource(schema.GroupVersionResource{Group: "e2e.rhizome.dev", Version: "v1beta1", Resource: "widgets"}).Namespace(ns)
	if b, err := beta.Get(ctx, "w-02", metav1.GetOptions{}); err != nil {
		t.Errorf("get through v1beta1: %v", err)
	} else if b.GetAPIVersion() != "e2e.rhizome.dev/v1beta1" {
		t.Errorf("v1beta1 read has apiVersion %s", b.GetAPIVersion())
	}

	prev := w0.GetResourceVersion()
	for i, st := range steps {
		select {
		case ev, ok := <-watcher.ResultChan():
			if !ok {
				t.Fatalf("watch closed before event %d", i)
			}
			u, isObj := ev.Object.(*unstructured.Unstructured)
			if !isObj {
				t.Fatalf("event %d: %s %T %v", i, ev.Type, ev.Object, ev.Object)
			}
			size, _, _ := unstructured.NestedInt64(u.Object, "spec", "size")
			rv := u.GetResourceVersion()
			if ev.Type != st.typ || size != st.size || (st.rv != "" && rv != st.rv) || !rvLess(prev, rv) {
				t.Errorf("event %d = %s rv=%s size=%d, want %s rv=%s size=%d after rv %s", i, ev.Type, rv, size, st.typ, st.rv, st.size, prev)
			}
			prev = rv
		case <-time.After(30 * time.Second):
			t.Fatalf("no watch event %d within 30s", i)
		}
	}

	out, err := c.Kubectl(ctx, "get", "widgets", "-n", ns, "--chunk-size=4", "-o", "custom-columns=NAME:.metadata.name,SIZE:.spec.size", "--no-headers")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != n-1 || strings.Fields(lines[0])[0] != "w-00" || strings.Fields(lines[0])[1] != "0" {
		t.Errorf("kubectl get widgets:\n%s\nwant %d rows, w-00 size 0 first", out, n-1)
	}

	// Deleting the CRD deletes its objects first (the customresourcecleanup
	// finalizer lists and deletes them through storage).
	if _, err := c.Kubectl(ctx, "delete", "crd", "widgets.e2e.rhizome.dev", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "CRD and its objects to be gone", func(ctx context.Context) (bool, string, error) {
		_, err := c.Dynamic.Resource(crdGVR).Get(ctx, "widgets.e2e.rhizome.dev", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, fmt.Sprintf("CRD: %v", err), nil
		}
		resp, err := db.Get(ctx, "/registry/e2e.rhizome.dev/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return false, err.Error(), nil
		}
		return resp.Count == 0, fmt.Sprintf("%d widgets left in the datastore", resp.Count), nil
	})
}
