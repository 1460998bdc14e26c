package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// kubeJSON encodes obj as kube-apiserver's JSON storage encoding does.
func kubeJSON(t testing.TB, obj runtime.Object) string {
	t.Helper()
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		t.Fatal(err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	var b bytes.Buffer
	if err := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{}).Encode(obj, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// decodeKube reads a value written by kubeJSON into obj.
func decodeKube(t testing.TB, v string, obj any) {
	t.Helper()
	if err := json.Unmarshal([]byte(v), obj); err != nil {
		t.Fatalf("decode %s: %v", v, err)
	}
}

// testValidator stands in for Kubernetes' validation with two of its rules: a
// Deployment's rolling update may not have both maxSurge and maxUnavailable 0,
// and its status may not count more ready replicas than replicas.
func testValidator(value []byte) error {
	var d appsv1.Deployment
	if err := json.Unmarshal(value, &d); err != nil || d.Kind != "Deployment" {
		return nil
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil && ru.MaxUnavailable != nil &&
		ru.MaxSurge.IntValue() == 0 && ru.MaxUnavailable.IntValue() == 0 {
		return errors.New("spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when maxSurge is 0")
	}
	if d.Status.ReadyReplicas > d.Status.Replicas {
		return errors.New("status.readyReplicas: cannot be greater than status.replicas")
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func deployment() *appsv1.Deployment {
	one := intstr.FromInt32(1)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1", Generation: 1,
			Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &one}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "nginx:1.27", Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}}},
					{Name: "sidecar", Image: "envoy:1", Args: []string{"-c", "/etc/envoy.yaml"}},
				}},
			},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, ReadyReplicas: 3, AvailableReplicas: 3, UpdatedReplicas: 3},
	}
}

// pair is two replicas of one key that share a base value, with a validator.
func pair(t *testing.T, base string) (a, b *replica) {
	t.Helper()
	a, b = &replica{site: "a"}, &replica{site: "b"}
	a.doc.SetValidator(testValidator)
	b.doc.SetValidator(testValidator)
	a.put(t, base)
	b.receive(t, a)
	a.changes, b.changes = nil, nil
	return a, b
}

// exchange delivers each replica's changes to the other and requires that they
// converge; it returns the merged value.
func exchange(t *testing.T, a, b *replica) string {
	t.Helper()
	ac, bc := a.changes, b.changes
	a.receive(t, &replica{changes: bc})
	b.receive(t, &replica{changes: ac})
	if value(&a.doc) != value(&b.doc) || a.doc.Digest() != b.doc.Digest() {
		t.Fatalf("diverged:\n%s\n%s", value(&a.doc), value(&b.doc))
	}
	a.changes, b.changes = nil, nil
	return value(&a.doc)
}

func TestKubeMergeRegressions(t *testing.T) {
	t.Run("maxSurge and maxUnavailable both 0: one side's whole object, a conflict", func(t *testing.T) {
		a, b := pair(t, kubeJSON(t, deployment()))
		zero := intstr.FromInt32(0)
		da, db := deployment(), deployment()
		da.Spec.Strategy.RollingUpdate.MaxSurge = &zero
		da.Spec.Replicas = ptr(int32(5))
		db.Spec.Strategy.RollingUpdate.MaxUnavailable = &zero
		da.Generation, db.Generation = 2, 2
		va, vb := kubeJSON(t, da), kubeJSON(t, db)
		a.put(t, va)
		b.put(t, vb)
		got := exchange(t, a, b)
		if got != vb { // b's write has the greater stamp (same counter, site b > a)
			t.Fatalf("merged %s\nwant b's whole object %s", got, vb)
		}
		for _, r := range []*replica{a, b} {
			log := r.doc.ConflictLog()
			if len(log) != 1 || log[0].Kind != Validation || log[0].Winner.Site != "b" || log[0].Loser.Site != "a" {
				t.Fatalf("%s: conflicts %v", r.site, log)
			}
		}
		// A later write at a builds on the value shown, not on the merged fields:
		// b's object with a label, and a's maxSurge 0 must not come back.
		db.Labels["tier"] = "front"
		a.put(t, kubeJSON(t, db))
		if got := exchange(t, a, b); got != kubeJSON(t, db) {
			t.Fatalf("after a write on the fallback: %s", got)
		}
		// A write of exactly the merged fields (nothing to diff) is read back too.
		a.put(t, va)
		b.put(t, vb)
		exchange(t, a, b)
		merged := string(materialize(a.doc.fields, nil))
		if merged == value(&a.doc) {
			t.Fatal("no fallback to test with")
		}
		a.put(t, merged)
		if got := value(&a.doc); got != merged {
			t.Fatalf("wrote the merged fields, read %s", got)
		}
		if got := exchange(t, a, b); got != merged {
			t.Fatalf("after writing the merged fields: %s", got)
		}
	})
	t.Run("status is one unit", func(t *testing.T) {
		a, b := pair(t, kubeJSON(t, deployment()))
		da, db := deployment(), deployment()
		da.Status.Replicas, da.Status.ReadyReplicas = 5, 5
		db.Status.Replicas, db.Status.ReadyReplicas, db.Status.AvailableReplicas = 2, 2, 2
		a.put(t, kubeJSON(t, da))
		b.put(t, kubeJSON(t, db))
		var m appsv1.Deployment
		decodeKube(t, exchange(t, a, b), &m)
		if !reflect.DeepEqual(m.Status, da.Status) && !reflect.DeepEqual(m.Status, db.Status) {
			t.Fatalf("status blended: %+v", m.Status)
		}
		if len(a.doc.ConflictLog()) != 0 {
			t.Fatalf("a valid merge recorded %v", a.doc.ConflictLog())
		}
	})
	t.Run("a Lease merges whole", func(t *testing.T) {
		lease := func(holder string, sec int) *coordinationv1.Lease {
			return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kube-controller-manager", Namespace: "kube-system"},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr(holder), LeaseDurationSeconds: ptr(int32(15)),
					RenewTime: &metav1.MicroTime{Time: metav1.Unix(int64(sec), 0).Time}, LeaseTransitions: ptr(int32(sec % 7))}}
		}
		a, b := pair(t, kubeJSON(t, lease("n0", 100)))
		a.put(t, kubeJSON(t, lease("n1", 101)))
		a.put(t, kubeJSON(t, lease("n1", 103)))
		b.put(t, kubeJSON(t, lease("n2", 102)))
		got := exchange(t, a, b)
		if got != kubeJSON(t, lease("n1", 103)) && got != kubeJSON(t, lease("n2", 102)) {
			t.Fatalf("lease blended: %s", got)
		}
	})
	t.Run("containers edited on both sides keep both edits", func(t *testing.T) {
		a, b := pair(t, kubeJSON(t, deployment()))
		da, db := deployment(), deployment()
		da.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
		db.Spec.Template.Spec.Containers[1].Image = "envoy:2"
		db.Spec.Template.Spec.Containers = append(db.Spec.Template.Spec.Containers, corev1.Container{Name: "log", Image: "fluent"})
		a.put(t, kubeJSON(t, da))
		b.put(t, kubeJSON(t, db))
		var m appsv1.Deployment
		decodeKube(t, exchange(t, a, b), &m)
		var got []string
		for _, c := range m.Spec.Template.Spec.Containers {
			got = append(got, c.Name+"="+c.Image)
		}
		if want := "app=nginx:1.28 sidecar=envoy:2 log=fluent"; strings.Join(got, " ") != want {
			t.Fatalf("containers %v, want %s", got, want)
		}
	})
	t.Run("labels added on both sides are both kept, finalizers too", func(t *testing.T) {
		a, b := pair(t, kubeJSON(t, deployment()))
		da, db := deployment(), deployment()
		da.Labels["a"] = "1"
		da.Finalizers = []string{"x/a"}
		db.Labels["b"] = "2"
		db.Finalizers = []string{"x/b"}
		db.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "o", UID: "o1"}}
		a.put(t, kubeJSON(t, da))
		b.put(t, kubeJSON(t, db))
		var m appsv1.Deployment
		decodeKube(t, exchange(t, a, b), &m)
		if m.Labels["a"] != "1" || m.Labels["b"] != "2" || m.Labels["app"] != "web" {
			t.Fatalf("labels %v", m.Labels)
		}
		if fin := fmt.Sprint(m.Finalizers); fin != "[x/a x/b]" && fin != "[x/b x/a]" || len(m.OwnerReferences) != 1 {
			t.Fatalf("finalizers %v owners %v", m.Finalizers, m.OwnerReferences)
		}
	})
	t.Run("generation moves after a concurrent spec merge", func(t *testing.T) {
		a, b := pair(t, kubeJSON(t, deployment()))
		da, db := deployment(), deployment()
		da.Spec.Replicas, da.Generation = ptr(int32(6)), 2
		db.Spec.Template.Spec.Containers[0].Image, db.Generation = "nginx:1.29", 2
		db.Status.ObservedGeneration = 2
		a.put(t, kubeJSON(t, da))
		b.put(t, kubeJSON(t, db))
		var m appsv1.Deployment
		decodeKube(t, exchange(t, a, b), &m)
		if *m.Spec.Replicas != 6 || m.Spec.Template.Spec.Containers[0].Image != "nginx:1.29" {
			t.Fatalf("spec not merged: %+v", m.Spec)
		}
		if m.Generation != 3 || m.Status.ObservedGeneration >= m.Generation {
			t.Fatalf("generation %d observed %d: controllers would not reconcile the merged spec", m.Generation, m.Status.ObservedGeneration)
		}
		// The controller's status update carries the moved generation; it is
		// written, so every replica keeps it once the heads are one again.
		m.Status.ObservedGeneration = 3
		b.put(t, kubeJSON(t, &m))
		var n appsv1.Deployment
		decodeKube(t, exchange(t, a, b), &n)
		if n.Generation != 3 || n.Status.ObservedGeneration != 3 {
			t.Fatalf("after the controller's update: generation %d observed %d", n.Generation, n.Status.ObservedGeneration)
		}
	})
	t.Run("status-only concurrent updates do not move the generation", func(t *testing.T) {
		a, b := pair(t, kubeJSON(t, deployment()))
		da, db := deployment(), deployment()
		da.Status.UpdatedReplicas = 2
		db.Status.AvailableReplicas = 2
		a.put(t, kubeJSON(t, da))
		b.put(t, kubeJSON(t, db))
		var m appsv1.Deployment
		decodeKube(t, exchange(t, a, b), &m)
		if m.Generation != 1 {
			t.Fatalf("generation %d", m.Generation)
		}
	})
	t.Run("a custom resource merges by JSON path", func(t *testing.T) {
		base := `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"x":1},"status":{"p":1,"q":1}}`
		a, b := pair(t, base)
		a.put(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"x":1},"status":{"p":2,"q":1}}`)
		b.put(t, `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"x":1},"status":{"p":1,"q":2}}`)
		if got, want := exchange(t, a, b), `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"x":1},"status":{"p":2,"q":2}}`; got != want {
			t.Fatalf("merged %s, want %s", got, want)
		}
	})
}

// TestKubeUnitsAreFewerFields: a built-in object's document holds one field per
// merge unit, not per leaf, and reads back byte for byte.
func TestKubeUnitsAreFewerFields(t *testing.T) {
	v := kubeJSON(t, deployment())
	var d Doc
	if _, _, err := d.Put([]byte(v), Stamp{1, "a"}); err != nil {
		t.Fatal(err)
	}
	if got := value(&d); got != v {
		t.Fatalf("read back %s, want %s", got, v)
	}
	for _, k := range []string{"=/status", "[/spec/template/spec/containers", `=/spec/template/spec/containers/"app"/image`,
		`[/spec/template/spec/containers/"app"/ports`, `=/spec/template/spec/containers/"sidecar"/args`, "=/spec/selector"} {
		if _, ok := d.fields[k]; !ok {
			t.Errorf("no field %q in %v", k, d.fields)
		}
	}
	if _, ok := d.fields["=/status/replicas"]; ok {
		t.Error("status is split into fields")
	}
}

// TestKubeFallbackSurvivesRebase: a rebase made while a merge shows one side's
// whole object starts the new history from the value shown, at every replica.
func TestKubeFallbackSurvivesRebase(t *testing.T) {
	a, b := pair(t, kubeJSON(t, deployment()))
	zero := intstr.FromInt32(0)
	da, db := deployment(), deployment()
	da.Spec.Strategy.RollingUpdate.MaxSurge = &zero
	db.Spec.Strategy.RollingUpdate.MaxUnavailable = &zero
	a.put(t, kubeJSON(t, da))
	b.put(t, kubeJSON(t, db))
	shown := exchange(t, a, b)
	c, ok, err := a.doc.Rebase("a", 1, nil)
	if err != nil || !ok {
		t.Fatalf("rebase: %v %v", ok, err)
	}
	if got := value(&a.doc); got != shown {
		t.Fatalf("rebase changed the value:\n%s\n%s", got, shown)
	}
	if _, err := b.doc.Apply(c); err != nil {
		t.Fatal(err)
	}
	if value(&b.doc) != shown || b.doc.Digest() != a.doc.Digest() {
		t.Fatalf("b after the rebase: %s", value(&b.doc))
	}
	d, err := DecodeDoc(b.doc.Encode(), nil)
	if err != nil || value(d) != shown || len(d.ConflictLog()) != 1 || d.ConflictCount() != 1 {
		t.Fatalf("decoded: %v %s %v", err, value(d), d.ConflictLog())
	}
}

// TestKubeRemovedListEditedElement: one side removes a list-map whole while the
// other edits one of its elements; the element stays (add-wins) and the value is
// still the list the schema says it is, the same at both replicas.
func TestKubeRemovedListEditedElement(t *testing.T) {
	withTolerations := func(effect corev1.TaintEffect) *appsv1.Deployment {
		d := deployment()
		d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}
		d.Spec.Template.Spec.Containers[0].Env[1].Value = string(effect)
		return d
	}
	a, b := pair(t, kubeJSON(t, withTolerations("x")))
	none := deployment()
	a.put(t, kubeJSON(t, none))
	b.put(t, kubeJSON(t, withTolerations("y")))
	var m appsv1.Deployment
	got := exchange(t, a, b)
	decodeKube(t, got, &m)
	env := m.Spec.Template.Spec.Containers[0].Env
	if env != nil || strings.Contains(got, `"env"`) {
		t.Fatalf("env %+v in %s", env, got)
	}
	// Removing one element while the other side edits it drops it too; an
	// element the other side adds stays.
	a, b = pair(t, kubeJSON(t, withTolerations("x")))
	oneLeft := withTolerations("x")
	oneLeft.Spec.Template.Spec.Containers[0].Env = oneLeft.Spec.Template.Spec.Containers[0].Env[:1]
	a.put(t, kubeJSON(t, oneLeft))
	added := withTolerations("y")
	added.Spec.Template.Spec.Containers[0].Env = append(added.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "C"})
	b.put(t, kubeJSON(t, added))
	got = exchange(t, a, b)
	decodeKube(t, got, &m)
	if env := m.Spec.Template.Spec.Containers[0].Env; fmt.Sprint(env) != "[{A 1 nil} {C  nil}]" {
		t.Fatalf("env %+v in %s", env, got)
	}
}

// TestKubeDocFromBeforeMergeUnits: a document stored before merge units (format
// 2, every leaf a field, arrays whole) decodes from its automerge fields, and the
// next write moves it to the new units without leaving old fields behind.
func TestKubeDocFromBeforeMergeUnits(t *testing.T) {
	v := kubeJSON(t, deployment())
	body, newline := strings.CutSuffix(v, "\n")
	p := newFlattener([]byte(body))
	if !p.object("", kube.Node{}) || !newline {
		t.Fatal("flatten by JSON path")
	}
	p.fields[newlineField] = ""
	am, err := newDocBody(p.fields, "a")
	if err != nil {
		t.Fatal(err)
	}
	old := &Doc{inc: Stamp{1, "a"}, epoch: Stamp{1, "a"}, kind: Document, clean: true, value: []byte(v), amBytes: am}
	enc := old.Encode()
	// Format 2 had no conflict count: drop it (0, before the prior's flag 0).
	enc = append(enc[:len(enc)-2:len(enc)-2], 0)
	enc[0] = 2
	var replicas []*Doc
	for range 2 {
		d, err := DecodeDoc(enc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if value(d) != v || d.clean {
			t.Fatalf("decoded %s clean=%t", value(d), d.clean)
		}
		replicas = append(replicas, d)
	}
	next := deployment()
	next.Status.ReadyReplicas = 1
	nv := kubeJSON(t, next)
	c, ok, err := replicas[0].Put([]byte(nv), Stamp{2, "a"})
	if err != nil || !ok {
		t.Fatalf("put: %v %v", ok, err)
	}
	if _, err := replicas[1].Apply(c); err != nil {
		t.Fatal(err)
	}
	for i, d := range replicas {
		if value(d) != nv {
			t.Fatalf("replica %d: %s", i, value(d))
		}
		if _, ok := d.fields["=/status/replicas"]; ok {
			t.Fatalf("replica %d kept an old field", i)
		}
	}
}
