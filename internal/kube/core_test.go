package kube_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

// testCore: namespaces, ConfigMaps and Secrets through client-go and
// kubectl — create, get, list with paging, update, patch, delete — with
// `kubectl get -w` seeing every change in order.
func testCore(t *testing.T, c *kube.Cluster) {
	ctx := t.Context()
	const ns = "core"
	nsObj, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != nsObj.UID || got.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace read back as uid %s phase %s, want uid %s phase Active", got.UID, got.Status.Phase, nsObj.UID)
	}
	if out, err := c.Kubectl(ctx, "get", "namespaces", "-o", "name"); err != nil {
		t.Fatal(err)
	} else if !slices.Contains(strings.Fields(out), "namespace/"+ns) {
		t.Errorf("kubectl get namespaces = %q, want namespace/%s among them", out, ns)
	}

	for _, k := range coreKinds() {
		t.Run("watch-"+k.gvr.Resource, func(t *testing.T) { testCoreWatch(t, c, ns, k) })
		t.Run("paging-"+k.gvr.Resource, func(t *testing.T) { testCorePaging(t, c, ns, k) })
	}
	t.Run("secrets", func(t *testing.T) { testCoreSecrets(t, c, ns) })

	// Deleting a namespace is finalised by the controller manager's
	// namespace controller, which first deletes everything in it.
	if _, err := c.Kubectl(ctx, "delete", "namespace", ns, "--wait=false"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "namespace "+ns+" to be gone", func(ctx2 context.Context) (bool, string, error) {
		n, err := c.Client.CoreV1().Namespaces().Get(ctx2, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, fmt.Sprintf("phase %s, conditions %v", n.Status.Phase, n.Status.Conditions), nil
	})
	cms, err := c.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 0 {
		t.Errorf("%d ConfigMaps left in deleted namespace %s", len(cms.Items), ns)
	}
}

// resourceKind is a namespaced kind the watch and paging tests run on.
type resourceKind struct {
	gvr  schema.GroupVersionResource
	kind string
	body map[string]any // fields besides apiVersion, kind and metadata
}

// coreKinds are run through the same watch and paging tests: ConfigMaps
// are served from kube-apiserver's watch cache; PodTemplates have it
// turned off (uncachedResource), so their lists, pages and watches go to
// the datastore itself.
func coreKinds() []resourceKind {
	return []resourceKind{
		{
			gvr:  schema.GroupVersionResource{Version: "v1", Resource: "configmaps"},
			kind: "ConfigMap",
			body: map[string]any{"data": map[string]any{"k": "v"}},
		},
		{
			gvr:  schema.GroupVersionResource{Version: "v1", Resource: uncachedResource},
			kind: "PodTemplate",
			body: map[string]any{"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "x"}},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": image1}}},
			}},
		},
	}
}

// newObject makes an object of kind k carrying v in its annotation "v".
func (k resourceKind) newObject(name, v string, labels map[string]string) *unstructured.Unstructured {
	obj := map[string]any{
		"apiVersion": k.gvr.GroupVersion().String(),
		"kind":       k.kind,
	}
	for f, val := range k.body {
		obj[f] = runtime.DeepCopyJSONValue(val)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetName(name)
	u.SetAnnotations(map[string]string{"v": v})
	u.SetLabels(labels)
	return u
}

func (k resourceKind) yaml(name, v string) string {
	out, err := json.Marshal(k.newObject(name, v, nil).Object)
	if err != nil {
		panic(err)
	}
	return string(out) // JSON is YAML
}

// testCoreWatch makes a sequence of changes through client-go and kubectl
// while `kubectl get -w` watches, and checks it sees each, in order, with
// the resourceVersion the write returned.
func testCoreWatch(t *testing.T, c *kube.Cluster, ns string, k resourceKind) {
	ctx := t.Context()
	res := c.Dynamic.Resource(k.gvr).Namespace(ns)
	label := map[string]string{"scenario": "watch"}
	// The watch starts with a list; an object that exists first shows when
	// that list is done.
	sentinel, err := res.Create(ctx, k.newObject("sentinel", "0", label), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := startKubectlWatch(t, c, k.gvr.Resource, "-n", ns, "-l", "scenario=watch")
	if ev := w.next(t, 30*time.Second); ev.Type != "ADDED" || ev.Object.Metadata.Name != "sentinel" || ev.Object.Metadata.ResourceVersion != sentinel.GetResourceVersion() {
		t.Fatalf("first event %v, want ADDED sentinel rv=%s", ev, sentinel.GetResourceVersion())
	}

	type want struct {
		typ, name, rv string // rv "" for deletes: the API does not return it
		v             string
	}
	var wants []want
	a, err := res.Create(ctx, k.newObject("a", "1", label), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"ADDED", "a", a.GetResourceVersion(), "1"})

	// A write from a stale resourceVersion must conflict, as on etcd: the
	// apiserver's compare-and-swap is the datastore's Txn compare.
	stale := a.DeepCopy()
	a.SetAnnotations(map[string]string{"v": "2"})
	if a, err = res.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"MODIFIED", "a", a.GetResourceVersion(), "2"})
	stale.SetAnnotations(map[string]string{"v": "stale"})
	if _, err := res.Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("update from stale resourceVersion %s: err = %v, want a conflict", stale.GetResourceVersion(), err)
	}
	if _, err := res.Create(ctx, k.newObject("a", "dup", label), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create of a: err = %v, want AlreadyExists", err)
	}

	if a, err = res.Patch(ctx, "a", types.MergePatchType, []byte(`{"metadata":{"annotations":{"v":"3"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"MODIFIED", "a", a.GetResourceVersion(), "3"})
	checkStored(t, c, "/registry/"+k.gvr.Resource+"/"+ns+"/a", a)

	if _, err := c.KubectlRun(ctx, strings.NewReader(k.yaml("b", "4")), "create", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// b is created without the label, so the watch sees it appear when
	// kubectl labels it: a selector watch turns that into ADDED.
	if _, err := c.Kubectl(ctx, "label", k.gvr.Resource, "b", "-n", ns, "scenario=watch"); err != nil {
		t.Fatal(err)
	}
	b, err := res.Get(ctx, "b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"ADDED", "b", b.GetResourceVersion(), "4"})

	if _, err := c.Kubectl(ctx, "patch", k.gvr.Resource, "b", "-n", ns, "--type=merge", "-p", `{"metadata":{"annotations":{"v":"5"}}}`); err != nil {
		t.Fatal(err)
	}
	if b, err = res.Get(ctx, "b", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"MODIFIED", "b", b.GetResourceVersion(), "5"})

	if err := res.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"DELETED", "a", "", "3"})
	if _, err := c.Kubectl(ctx, "delete", k.gvr.Resource, "b", "-n", ns); err != nil {
		t.Fatal(err)
	}
	wants = append(wants, want{"DELETED", "b", "", "5"})
	if _, err := res.Get(ctx, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of deleted a: err = %v, want NotFound", err)
	}

	prev := sentinel.GetResourceVersion()
	for i, wt := range wants {
		ev := w.next(t, 30*time.Second)
		md := ev.Object.Metadata
		if ev.Type != wt.typ || md.Name != wt.name || md.Annotations["v"] != wt.v || (wt.rv != "" && md.ResourceVersion != wt.rv) {
			t.Errorf("event %d = %v, want %s %s rv=%s v=%s", i, ev, wt.typ, wt.name, wt.rv, wt.v)
		}
		if !rvLess(prev, md.ResourceVersion) {
			t.Errorf("event %d (%v) has resourceVersion %s, not above the previous %s", i, ev, md.ResourceVersion, prev)
		}
		prev = md.ResourceVersion
	}
	// Anything further would be a change nobody made.
	select {
	case ev, ok := <-w.events:
		if ok {
			t.Errorf("unexpected event after the last change: %v", ev)
		}
	case <-time.After(time.Second):
	}
}

// testCorePaging lists in pages with client-go and with kubectl
// --chunk-size, and checks a paged list is one snapshot.
func testCorePaging(t *testing.T, c *kube.Cluster, ns string, k resourceKind) {
	ctx := t.Context()
	res := c.Dynamic.Resource(k.gvr).Namespace(ns)
	label := map[string]string{"scenario": "paging"}
	const n, pageSize = 25, 7
	var want []string
	for i := range n {
		name := fmt.Sprintf("page-%02d", i)
		want = append(want, name)
		if _, err := res.Create(ctx, k.newObject(name, name, label), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	datastoreLists := func() float64 {
		m, err := c.APIServerMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.Sum("etcd_requests_total", map[string]string{"resource": k.gvr.Resource, "operation": "list"})
	}
	listsBefore := datastoreLists()

	// client-go: Limit and Continue. Between pages, one object that was
	// not yet listed is deleted and one is added; neither may show, since
	// every page is served at the first page's resourceVersion.
	opts := metav1.ListOptions{LabelSelector: "scenario=paging", Limit: pageSize}
	var names []string
	var pages int
	var listRV string
	for {
		list, err := res.List(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(list.Items) > pageSize {
			t.Errorf("page %d has %d items, limit was %d", pages, len(list.Items), pageSize)
		}
		if pages == 1 {
			listRV = list.GetResourceVersion()
			if err := res.Delete(ctx, want[n-1], metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := res.Create(ctx, k.newObject("page-zz", "page-zz", label), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		} else if list.GetResourceVersion() != listRV {
			t.Errorf("page %d at resourceVersion %s, first page at %s", pages, list.GetResourceVersion(), listRV)
		}
		for _, it := range list.Items {
			names = append(names, it.GetName())
			if v := it.GetAnnotations()["v"]; v != it.GetName() {
				t.Errorf("%s read back with annotation v=%q", it.GetName(), v)
			}
		}
		if opts.Continue = list.GetContinue(); opts.Continue == "" {
			break
		}
		if pages > n {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("paged list = %v, want the snapshot %v", names, want)
	}
	if min := (n + pageSize - 1) / pageSize; pages < min {
		t.Errorf("%d pages, want at least %d", pages, min)
	}
	// Without a watch cache every page is a range read of the datastore.
	if d := datastoreLists() - listsBefore; k.gvr.Resource == uncachedResource && d < float64(pages) {
		t.Errorf("%d pages of %s made %v list requests to the datastore; is its watch cache really off?", pages, k.gvr.Resource, d)
	}

	// kubectl --chunk-size: the same (now current) set, fetched in chunks;
	// -v=6 logs each request, so the chunks can be counted.
	want = append(slices.Clone(want[:n-1]), "page-zz")
	out, err := c.KubectlRun(ctx, nil, "get", k.gvr.Resource, "-n", ns, "-l", "scenario=paging", "--chunk-size=7", "-o", "name", "-v=6")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range strings.Fields(out.Stdout) {
		_, name, _ := strings.Cut(f, "/")
		got = append(got, name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("kubectl --chunk-size=7 listed %v, want %v", got, want)
	}
	if requests := strings.Count(out.Stderr, "continue="); requests < len(want)/pageSize {
		t.Errorf("kubectl made %d continue requests, want at least %d:\n%s", requests, len(want)/pageSize, out.Stderr)
	}
}

// testCoreSecrets round-trips a Secret through create, get, update, patch
// and delete, with kubectl reading what client-go wrote.
func testCoreSecrets(t *testing.T, c *kube.Cluster, ns string) {
	ctx := t.Context()
	secrets := c.Client.CoreV1().Secrets(ns)
	s, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("hunter2"), "binary": {0, 1, 2, 255}},
		StringData: map[string]string{"user": "admin"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		got, err := secrets.Get(ctx, "s", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if len(got.Data) != len(want) {
			t.Errorf("%s: secret has keys %v, want %v", step, keys(got.Data), want)
		}
		for k, v := range want {
			if string(got.Data[k]) != v {
				t.Errorf("%s: secret[%s] = %q, want %q", step, k, got.Data[k], v)
			}
		}
	}
	check("create", map[string]string{"password": "hunter2", "binary": "\x00\x01\x02\xff", "user": "admin"})

	s.Data["password"] = []byte("correct horse")
	s.Data["extra"] = []byte("x")
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	check("update", map[string]string{"password": "correct horse", "binary": "\x00\x01\x02\xff", "user": "admin", "extra": "x"})

	patch := fmt.Sprintf(`{"data":{"extra":null,"token":%q}}`, base64.StdEncoding.EncodeToString([]byte("t0k")))
	if _, err := secrets.Patch(ctx, "s", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	check("patch", map[string]string{"password": "correct horse", "binary": "\x00\x01\x02\xff", "user": "admin", "token": "t0k"})

	out, err := c.Kubectl(ctx, "get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.token}")
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := base64.StdEncoding.DecodeString(out); err != nil || string(dec) != "t0k" {
		t.Errorf("kubectl read token %q (%v), want base64 of t0k", out, err)
	}

	if _, err := c.Kubectl(ctx, "delete", "secret", "s", "-n", ns); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Get(ctx, "s", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of deleted secret: err = %v, want NotFound", err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkStored reads key from the datastore beneath the apiserver and
// checks it decodes, in whichever encoding it is held, to the object the
// API returned: same kind, UID and annotations.
func checkStored(t *testing.T, c *kube.Cluster, key string, want *unstructured.Unstructured) {
	t.Helper()
	resp, err := c.DatastoreClient(t).Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("datastore has %d keys %s", len(resp.Kvs), key)
	}
	raw := resp.Kvs[0].Value
	format := "json"
	if bytes.HasPrefix(raw, []byte("k8s\x00")) {
		format = "protobuf"
	}
	t.Logf("%s is stored as %s (%d bytes, mod_revision %d)", key, format, len(raw), resp.Kvs[0].ModRevision)
	if rv := fmt.Sprint(resp.Kvs[0].ModRevision); rv != want.GetResourceVersion() {
		t.Errorf("%s: mod_revision %s, the API said resourceVersion %s", key, rv, want.GetResourceVersion())
	}
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		t.Fatalf("stored %s does not decode: %v\n%q", key, err, raw)
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	if gvk.Kind != want.GetKind() || acc.GetUID() != want.GetUID() || !maps.Equal(acc.GetAnnotations(), want.GetAnnotations()) {
		t.Errorf("stored %s decodes to %s uid %s annotations %v; the API returned %s uid %s annotations %v",
			key, gvk.Kind, acc.GetUID(), acc.GetAnnotations(), want.GetKind(), want.GetUID(), want.GetAnnotations())
	}
}
