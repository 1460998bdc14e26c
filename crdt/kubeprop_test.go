package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// propValidator is testValidator plus two rules that concurrent edits of an HPA
// and a PodDisruptionBudget can break.
func propValidator(value []byte) error {
	if err := testValidator(value); err != nil {
		return err
	}
	var o struct {
		Kind string `json:"kind"`
		Spec struct {
			MinReplicas    *int32          `json:"minReplicas"`
			MaxReplicas    int32           `json:"maxReplicas"`
			MinAvailable   json.RawMessage `json:"minAvailable"`
			MaxUnavailable json.RawMessage `json:"maxUnavailable"`
		} `json:"spec"`
	}
	if json.Unmarshal(value, &o) != nil {
		return nil
	}
	switch {
	case o.Kind == "HorizontalPodAutoscaler" && o.Spec.MinReplicas != nil && *o.Spec.MinReplicas > o.Spec.MaxReplicas:
		return errors.New("spec.maxReplicas: must be greater than or equal to minReplicas")
	case o.Kind == "PodDisruptionBudget" && o.Spec.MinAvailable != nil && o.Spec.MaxUnavailable != nil:
		return errors.New("spec: minAvailable and maxUnavailable cannot be both set")
	}
	return nil
}

// kubeKind is a built-in kind the property test edits: a fresh object, and a
// random edit of the kind a user or a controller makes.
type kubeKind struct {
	name  string
	empty func() runtime.Object
	base  func() runtime.Object
	edit  func(rng *rand.Rand, obj runtime.Object, site string)
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

func editMeta(rng *rand.Rand, m *metav1.ObjectMeta, site string) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	switch rng.IntN(4) {
	case 0:
		m.Labels[pick(rng, "a", "b", "c")] = site
	case 1:
		delete(m.Labels, pick(rng, "a", "b", "c"))
	case 2:
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations["by-"+site] = strconv.Itoa(rng.IntN(9))
	default:
		if f := "f/" + site; !slices.Contains(m.Finalizers, f) {
			m.Finalizers = append(m.Finalizers, f)
		}
	}
}

func editPodSpec(rng *rand.Rand, p *corev1.PodSpec, site string) {
	switch rng.IntN(4) {
	case 0:
		c := &p.Containers[rng.IntN(len(p.Containers))]
		c.Image = fmt.Sprintf("img:%s%d", site, rng.IntN(9))
	case 1:
		p.Containers = append(p.Containers, corev1.Container{Name: "c-" + site + strconv.Itoa(rng.IntN(3)), Image: "x"})
	case 2:
		if len(p.Containers) > 1 {
			i := rng.IntN(len(p.Containers))
			p.Containers = slices.Delete(p.Containers, i, i+1)
		}
	default:
		c := &p.Containers[0]
		c.Args = []string{"--by=" + site, strconv.Itoa(rng.IntN(9))}
	}
	seen := map[string]bool{}
	p.Containers = slices.DeleteFunc(p.Containers, func(c corev1.Container) bool { d := seen[c.Name]; seen[c.Name] = true; return d })
}

var kubeKinds = []kubeKind{
	{"Deployment", func() runtime.Object { return &appsv1.Deployment{} },
		func() runtime.Object { return deployment() },
		func(rng *rand.Rand, o runtime.Object, site string) {
			d := o.(*appsv1.Deployment)
			switch rng.IntN(5) {
			case 0:
				d.Spec.Replicas = ptr(int32(rng.IntN(6)))
			case 1:
				v := intstr.FromInt32(int32(rng.IntN(2)))
				if rng.IntN(2) == 0 {
					d.Spec.Strategy.RollingUpdate.MaxSurge = &v
				} else {
					d.Spec.Strategy.RollingUpdate.MaxUnavailable = &v
				}
				if ru := d.Spec.Strategy.RollingUpdate; ru.MaxSurge.IntValue() == 0 && ru.MaxUnavailable.IntValue() == 0 {
					ru.MaxSurge = ptr(intstr.FromInt32(1)) // each side writes only valid objects
				}
			case 2:
				editPodSpec(rng, &d.Spec.Template.Spec, site)
			case 3:
				r := int32(rng.IntN(5))
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: r, ReadyReplicas: int32(rng.IntN(int(r) + 1)), UpdatedReplicas: r}
			default:
				editMeta(rng, &d.ObjectMeta, site)
			}
		}},
	{"StatefulSet", func() runtime.Object { return &appsv1.StatefulSet{} },
		func() runtime.Object {
			d := deployment()
			return &appsv1.StatefulSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(2)), Selector: d.Spec.Selector,
				Template: d.Spec.Template, ServiceName: "web"}, Status: appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2}}
		},
		func(rng *rand.Rand, o runtime.Object, site string) {
			s := o.(*appsv1.StatefulSet)
			switch rng.IntN(4) {
			case 0:
				s.Spec.Replicas = ptr(int32(rng.IntN(6)))
			case 1:
				editPodSpec(rng, &s.Spec.Template.Spec, site)
			case 2:
				s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: int32(rng.IntN(4)), CurrentRevision: "r-" + site}
			default:
				editMeta(rng, &s.ObjectMeta, site)
			}
		}},
	{"Service", func() runtime.Object { return &corev1.Service{} },
		func() runtime.Object {
			return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.0.0.7", Type: corev1.ServiceTypeClusterIP,
					Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}}
		},
		func(rng *rand.Rand, o runtime.Object, site string) {
			s := o.(*corev1.Service)
			switch rng.IntN(3) {
			case 0:
				port := int32(81 + rng.IntN(3))
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
					s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", port), Port: port, Protocol: corev1.ProtocolTCP})
				}
			case 1:
				s.Spec.Selector = map[string]string{"app": "web", "by": site}
			default:
				editMeta(rng, &s.ObjectMeta, site)
			}
		}},
	{"HorizontalPodAutoscaler", func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
		func() runtime.Object {
			return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr(int32(2)), MaxReplicas: 4,
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}}}
		},
		func(rng *rand.Rand, o runtime.Object, site string) {
			h := o.(*autoscalingv2.HorizontalPodAutoscaler)
			switch rng.IntN(3) {
			case 0: // each side keeps min <= max; together they may not
				h.Spec.MinReplicas = ptr(int32(1 + rng.IntN(int(h.Spec.MaxReplicas))))
			case 1:
				h.Spec.MaxReplicas = max(*h.Spec.MinReplicas, int32(1+rng.IntN(6)))
			default:
				h.Status = autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: int32(rng.IntN(5)), DesiredReplicas: int32(rng.IntN(5))}
			}
		}},
	{"PodDisruptionBudget", func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
		func() runtime.Object {
			return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: 1},
				Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(1)),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}
		},
		func(rng *rand.Rand, o runtime.Object, site string) {
			p := o.(*policyv1.PodDisruptionBudget)
			switch rng.IntN(3) {
			case 0: // switch between the two exclusive fields
				v := intstr.FromInt32(int32(rng.IntN(3)))
				if rng.IntN(2) == 0 {
					p.Spec.MinAvailable, p.Spec.MaxUnavailable = &v, nil
				} else {
					p.Spec.MinAvailable, p.Spec.MaxUnavailable = nil, &v
				}
			case 1:
				p.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: p.Generation, DisruptionsAllowed: int32(rng.IntN(3)), ExpectedPods: 3}
			default:
				editMeta(rng, &p.ObjectMeta, site)
			}
		}},
	{"ConfigMap", func() runtime.Object { return &corev1.ConfigMap{} },
		func() runtime.Object {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"}, Data: map[string]string{"k0": "v"}}
		},
		func(rng *rand.Rand, o runtime.Object, site string) {
			c := o.(*corev1.ConfigMap)
			if c.Data == nil {
				c.Data = map[string]string{}
			}
			switch k := pick(rng, "k0", "k1", "k2"); rng.IntN(3) {
			case 0:
				delete(c.Data, k)
			case 1:
				c.Data[k] = site
			default:
				editMeta(rng, &c.ObjectMeta, site)
			}
		}},
	{"Lease", func() runtime.Object { return &coordinationv1.Lease{} },
		func() runtime.Object {
			return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kcm", Namespace: "kube-system"},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("n0"), LeaseDurationSeconds: ptr(int32(15))}}
		},
		func(rng *rand.Rand, o runtime.Object, site string) {
			l := o.(*coordinationv1.Lease)
			if rng.IntN(2) == 0 || *l.Spec.HolderIdentity != site {
				l.Spec.HolderIdentity = ptr(site)
				l.Spec.AcquireTime = &metav1.MicroTime{Time: metav1.Unix(int64(rng.IntN(1000)), 0).Time}
				l.Spec.LeaseTransitions = ptr(int32(rng.IntN(5)))
			}
			l.Spec.RenewTime = &metav1.MicroTime{Time: metav1.Unix(int64(1000+rng.IntN(1000)), 0).Time}
		}},
}

// memberOf returns a top-level member of a JSON object as JSON text ("" when
// absent).
func memberOf(v, name string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(v), &m) != nil {
		return ""
	}
	return string(m[name])
}

// propSite is one site editing one key.
type propSite struct {
	name  string
	clock uint64
	doc   Doc
	own   []Change
	last  string // the last value it wrote (or its base)
}

// write edits what the site sees and writes it as kube-apiserver would: the
// generation moves when the spec changes.
func (s *propSite) write(t *testing.T, k kubeKind, rng *rand.Rand) {
	t.Helper()
	cur := value(&s.doc)
	obj := k.empty()
	decodeKube(t, cur, obj)
	k.edit(rng, obj, s.name)
	m := obj.(metav1.Object)
	if next := kubeJSON(t, obj); memberOf(next, "spec") != memberOf(cur, "spec") && m.GetGeneration() > 0 {
		m.SetGeneration(m.GetGeneration() + 1)
	}
	v := kubeJSON(t, obj)
	s.clock++
	c, ok, err := s.doc.Put([]byte(v), Stamp{s.clock, s.name})
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		s.own = append(s.own, c)
	}
	s.last = v
}

func (s *propSite) take(t *testing.T, cs []Change) {
	t.Helper()
	for _, c := range cs {
		if _, err := s.doc.Apply(c); err != nil {
			t.Fatal(err)
		}
		s.clock = max(s.clock, c.Inc.Counter, c.Epoch.Counter)
	}
}

// applyInOrder applies changes to a fresh replica in the given order, holding back
// a change whose dependencies have not arrived as the store does, and once
// through the durable encoding. It returns the replica.
func applyInOrder(t *testing.T, create Change, cs []Change, order []int, recode int) *Doc {
	t.Helper()
	d := &Doc{}
	d.SetValidator(propValidator)
	if _, err := d.Apply(create); err != nil {
		t.Fatal(err)
	}
	var held []Change
	for i, j := range order {
		held = append(held, cs[j])
		for progress := true; progress; {
			progress = false
			for x, c := range held {
				_, err := d.Apply(c)
				if errors.Is(err, ErrMissingDependency) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				held, progress = slices.Delete(held, x, x+1), true
				break
			}
		}
		if i == recode {
			var err error
			if d, err = DecodeDoc(d.Encode(), nil); err != nil {
				t.Fatal(err)
			}
			d.SetValidator(propValidator)
		}
	}
	if len(held) > 0 {
		t.Fatalf("%d changes never applied", len(held))
	}
	return d
}

// interleavings returns every order of indexes 0..na+nb-1 that keeps 0..na-1 in
// order and na..na+nb-1 in order: every way two sites' logs can arrive.
func interleavings(na, nb int) [][]int {
	if na == 0 || nb == 0 {
		var o []int
		for i := range na + nb {
			o = append(o, i)
		}
		return [][]int{o}
	}
	var out [][]int
	for _, rest := range interleavings(na-1, nb) { // a's first change first
		o := []int{0}
		for _, i := range rest {
			o = append(o, i+1)
		}
		out = append(out, o)
	}
	for _, rest := range interleavings(na, nb-1) { // b's first change first
		o := []int{na}
		for _, i := range rest {
			if i >= na {
				i++
			}
			o = append(o, i)
		}
		out = append(out, o)
	}
	return out
}

// TestKubeMergeProperty: random concurrent edits of built-in objects at two sites
// (sometimes one having seen the other's first) merge to the same bytes in every
// order of arrival (and through the durable encoding at a random point), and the result keeps the merge units: it passes the
// validator; status, atomic selectors and a Lease's spec are one side's whole; a
// label changed by one side only is that side's; and when the merge falls back,
// the value is one side's whole last write.
func TestKubeMergeProperty(t *testing.T) {
	if n := len(interleavings(3, 2)); n != 10 {
		t.Fatalf("%d interleavings of 3 and 2 changes, want 10", n)
	}
	seeds := 40
	if s := os.Getenv("RHIZOME_CRDT_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	fallbacks, bumps := 0, 0
	for seed := range uint64(seeds) {
		for _, k := range kubeKinds {
			t.Run(fmt.Sprintf("%s/%d", k.name, seed), func(t *testing.T) {
				fb, bu := kubeMergeProperty(t, k, seed)
				fallbacks += fb
				bumps += bu
			})
		}
	}
	t.Logf("%d validation fallbacks, %d generation moves", fallbacks, bumps)
	if seeds >= 20 && (fallbacks == 0 || bumps == 0) {
		t.Fatal("the property never exercised a fallback or a generation move")
	}
}

func kubeMergeProperty(t *testing.T, k kubeKind, seed uint64) (fallbacks, bumps int) {
	rng := rand.New(rand.NewPCG(seed, uint64(len(k.name))))
	base := kubeJSON(t, k.base())
	a, b := &propSite{name: "a"}, &propSite{name: "b"}
	a.doc.SetValidator(propValidator)
	b.doc.SetValidator(propValidator)
	create, _, err := a.doc.Put([]byte(base), Stamp{1, "a"})
	if err != nil {
		t.Fatal(err)
	}
	a.clock = 1
	b.take(t, []Change{create})
	a.last, b.last = base, base
	for range 1 + rng.IntN(3) {
		a.write(t, k, rng)
	}
	sawA := rng.IntN(3) == 0
	if sawA { // b has seen a's edits
		b.take(t, slices.Clone(a.own))
	}
	seen := len(b.doc.ConflictLog())
	for range 1 + rng.IntN(3) {
		b.write(t, k, rng)
	}
	all := append(slices.Clone(a.own), b.own...)
	var want *Doc
	for n, order := range interleavings(len(a.own), len(b.own)) {
		d := applyInOrder(t, create, all, order, rng.IntN(len(all)+1)-1)
		if want == nil {
			want = d
			continue
		}
		if value(d) != value(want) || d.Digest() != want.Digest() {
			t.Fatalf("order %d %v diverged:\n%s\n%s", n, order, value(d), value(want))
		}
	}
	got := value(want)
	if err := propValidator([]byte(got)); err != nil {
		t.Fatalf("merged object rejected: %v\n%s", err, got)
	}
	if len(want.ConflictLog()) > seen {
		if got != a.last && got != b.last {
			t.Fatalf("fallback is neither side's whole object:\n%s\na: %s\nb: %s", got, a.last, b.last)
		}
		return 1, 0
	}
	oneSide := func(what, g, x, y string) {
		if g != x && g != y {
			t.Fatalf("%s blended: %s\na: %s\nb: %s", what, g, x, y)
		}
	}
	oneSide("status", memberOf(got, "status"), memberOf(a.last, "status"), memberOf(b.last, "status"))
	if k.name == "Lease" {
		oneSide("lease spec", memberOf(got, "spec"), memberOf(a.last, "spec"), memberOf(b.last, "spec"))
	}
	sel := func(v string) string { return memberOf(memberOf(v, "spec"), "selector") }
	oneSide("selector", sel(got), sel(a.last), sel(b.last))
	meta := func(v string) metav1.ObjectMeta {
		var o struct{ Metadata metav1.ObjectMeta }
		decodeKube(t, v, &o)
		return o.Metadata
	}
	g, x, y, o := meta(got), meta(a.last), meta(b.last), meta(base)
	for _, l := range []string{"a", "b", "c"} {
		switch {
		case sawA:
			// b's writes follow all of a's: nothing is concurrent.
			if got != b.last {
				t.Fatalf("b wrote after seeing a, merged %s\nb wrote %s", got, b.last)
			}
		case x.Labels[l] != o.Labels[l] && y.Labels[l] == o.Labels[l] && g.Labels[l] != x.Labels[l]:
			t.Fatalf("label %s: a's %q lost, merged %q", l, x.Labels[l], g.Labels[l])
		case y.Labels[l] != o.Labels[l] && x.Labels[l] == o.Labels[l] && g.Labels[l] != y.Labels[l]:
			t.Fatalf("label %s: b's %q lost, merged %q", l, y.Labels[l], g.Labels[l])
		}
	}
	if g.Generation > max(x.Generation, y.Generation) {
		bumps++
	}
	return 0, bumps
}

// TestKubeMergeRebaseProperty runs random edits of built-in objects at three
// replicas with rebases and partial deliveries in between, and checks that they
// converge and that what they converge to passes the validator.
func TestKubeMergeRebaseProperty(t *testing.T) {
	fallbacks, rebases := 0, 0
	for seed := range uint64(12) {
		for _, k := range kubeKinds {
			t.Run(fmt.Sprintf("%s/%d", k.name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 11))
				r := newReplicas(t, "a", "b", "c")
				for _, n := range r.names {
					r.docs[n].SetValidator(propValidator)
				}
				r.put("a", kubeJSON(t, k.base()))
				r.settle()
				for range 40 {
					site := r.names[rng.IntN(3)]
					switch x := rng.IntN(10); {
					case x < 5:
						obj := k.empty()
						decodeKube(t, value(r.docs[site]), obj)
						k.edit(rng, obj, site)
						r.put(site, kubeJSON(t, obj))
					case x < 6:
						r.dropPriors("a")
						if r.rebase("a") {
							rebases++
						}
					default:
						to, from := r.names[rng.IntN(3)], r.names[rng.IntN(3)]
						for range rng.IntN(3) {
							r.deliver(to, from)
						}
						r.dropPriors(to)
					}
				}
				r.settle()
				r.settle()
				if err := propValidator([]byte(r.same())); err != nil {
					t.Fatalf("converged to a rejected object: %v", err)
				}
				for _, c := range r.docs["a"].ConflictLog() {
					if c.Kind == Validation {
						fallbacks++
					}
				}
			})
		}
	}
	t.Logf("%d rebases, %d validation fallbacks seen at a", rebases, fallbacks)
	if rebases == 0 || fallbacks == 0 {
		t.Fatal("the property never exercised a rebase or a fallback")
	}
}
