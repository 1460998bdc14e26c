package crdt

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchValues returns n versions of a Deployment, each one edit away from the
// last: a status update by its controller, or a new image in its template.
func benchValues(b *testing.B, n int, status bool) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		d := deployment()
		if status {
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: int32(i % 4), ReadyReplicas: int32(i % 3), AvailableReplicas: int32(i % 3)}
		} else {
			d.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("nginx:1.%d", i)
		}
		out[i] = []byte(kubeJSON(b, d))
	}
	return out
}

// benchmarkPut measures a site's local writes and, at a second replica, applying
// them: the automerge bytes each write ships, and the time of both.
func benchmarkPut(b *testing.B, status bool) {
	vals := benchValues(b, 64, status)
	var w, r Doc
	create, _, err := w.Put(vals[0], Stamp{1, "w"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Apply(create); err != nil {
		b.Fatal(err)
	}
	clock, shipped := uint64(1), 0
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCgo(b)()
	for i := range b.N {
		clock++
		c, ok, err := w.Put(vals[(i+1)%len(vals)], Stamp{clock, "w"})
		if err != nil || !ok {
			b.Fatalf("put: %v %v", ok, err)
		}
		if _, err := r.Apply(c); err != nil {
			b.Fatal(err)
		}
		shipped += len(c.Data)
		if w.Edits() >= 64 { // bounded history, as the store keeps it
			w.DropPrior()
			r.DropPrior()
			rc, ok, err := w.Rebase("w", uint64(i), nil)
			if err != nil || !ok {
				b.Fatalf("rebase: %v %v", ok, err)
			}
			if _, err := r.Apply(rc); err != nil {
				b.Fatal(err)
			}
			r.DropPrior()
		}
	}
	b.ReportMetric(float64(shipped)/float64(b.N), "change-B/op")
	b.ReportMetric(float64(len(w.Encode())), "doc-B")
	b.ReportMetric(float64(len(w.fields)), "fields")
}

func BenchmarkPutStatus(b *testing.B) { benchmarkPut(b, true) }
func BenchmarkPutImage(b *testing.B)  { benchmarkPut(b, false) }

// BenchmarkConcurrentMerge measures taking a remote edit concurrent with a local
// one at both replicas: one site rolls a new image, the other updates status, so
// each merge runs the merge rules (a fork per head, the generation rule, the
// validator). Writing the edits is not timed.
func BenchmarkConcurrentMerge(b *testing.B) {
	val := func(image, status int) []byte {
		d := deployment()
		d.Spec.Template.Spec.Containers[0].Image = fmt.Sprintf("nginx:1.%d", image)
		d.Status.UpdatedReplicas = int32(status % 4)
		return []byte(kubeJSON(b, d))
	}
	var x, y Doc
	x.SetValidator(testValidator)
	y.SetValidator(testValidator)
	create, _, err := x.Put(val(0, 0), Stamp{1, "x"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := y.Apply(create); err != nil {
		b.Fatal(err)
	}
	clock := uint64(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		clock++
		cx, _, err := x.Put(val(i+1, i), Stamp{clock, "x"})
		if err != nil {
			b.Fatal(err)
		}
		cy, _, err := y.Put(val(i, i+1), Stamp{clock, "y"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := x.Apply(cy); err != nil {
			b.Fatal(err)
		}
		if _, err := y.Apply(cx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if x.Edits() >= 64 {
			x.DropPrior()
			rc, ok, err := x.Rebase("x", uint64(i), nil)
			if err != nil || !ok {
				b.Fatalf("rebase: %v %v", ok, err)
			}
			if _, err := y.Apply(rc); err != nil {
				b.Fatal(err)
			}
			y.DropPrior()
		}
		b.StartTimer()
	}
}

// benchPod returns a pod-shaped object of about 2 KB, as kube-apiserver stores
// it: generation gen differs from the last in its status only.
func benchPod(b testing.TB, gen int) []byte {
	ready := corev1.ConditionStatus([...]string{"True", "False"}[gen%2])
	mount := corev1.VolumeMount{Name: "kube-api-access", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0000001", Namespace: "ns-1", UID: "6f1c7c1e-0001",
			Labels:      map[string]string{"app": "web", "pod-template-hash": "7d9f8c6b5", "tier": "frontend"},
			Annotations: map[string]string{"prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8c6b5",
				UID: "0a2b4c6d", Controller: ptr(true), BlockOwnerDeletion: ptr(true)}}},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: mount.Name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}},
			Containers: []corev1.Container{{Name: "web", Image: "registry.example.com/web:1.25.1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   []corev1.EnvVar{{Name: "MODE", Value: "production"}, {Name: "LOG_LEVEL", Value: "info"}},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("500m")},
					Requests: corev1.ResourceList{"cpu": resource.MustParse("100m")}},
				VolumeMounts: []corev1.VolumeMount{mount}, TerminationMessagePath: "/dev/termination-log"}},
			RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, NodeName: "edge-node-1",
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "10.0.1.1", PodIP: "10.244.1.2",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}, {Type: corev1.PodScheduled, Status: "True"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: gen%2 == 0, RestartCount: int32(gen),
				Image: "registry.example.com/web:1.25.1", ContainerID: "containerd://9a8b7c6d5e4f"}}},
	}
	return []byte(kubeJSON(b, p))
}

// BenchmarkPodCreate measures a pod's create as the store makes it: the write
// and the durable form.
func BenchmarkPodCreate(b *testing.B) {
	v := benchPod(b, 0)
	b.ReportAllocs()
	for i := range b.N {
		var d Doc
		if _, _, err := d.Put(v, Stamp{uint64(i + 1), "w"}); err != nil {
			b.Fatal(err)
		}
		_ = d.Encode()
	}
}

// BenchmarkPodFirstEdit measures a pod's first status update after its create,
// as the store makes it (decode the stored document, write, encode), and
// applying that edit at another replica, which builds the body too.
func BenchmarkPodFirstEdit(b *testing.B) {
	var created Doc
	create, _, err := created.Put(benchPod(b, 0), Stamp{1, "w"})
	if err != nil {
		b.Fatal(err)
	}
	stored, next := created.Encode(), benchPod(b, 1)
	saved := 0
	edit := func(b *testing.B) Change {
		d, err := DecodeDoc(stored, nil)
		if err != nil {
			b.Fatal(err)
		}
		c, ok, err := d.Put(next, Stamp{2, "w"})
		if err != nil || !ok {
			b.Fatalf("put: %v %v", ok, err)
		}
		saved = len(d.Encode())
		return c
	}
	b.Run("local", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCgo(b)()
		for range b.N {
			edit(b)
		}
		b.ReportMetric(float64(saved), "doc-B")
	})
	c := edit(b)
	b.Run("remote", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCgo(b)()
		for range b.N {
			var d Doc
			if _, err := d.Apply(create); err != nil {
				b.Fatal(err)
			}
			if _, err := d.Apply(c); err != nil {
				b.Fatal(err)
			}
			_ = d.Encode()
		}
	})
}

// BenchmarkPodLaterEdit measures a pod's status updates after earlier ones, as
// the store makes them when the document is not cached (decode the stored
// document, write, encode; the earlier edits were made so too): the eight edits that follow a history of 1 to 56
// edits (the store rebases at 64), so that work done every few edits (a
// whole save) counts its share.
func BenchmarkPodLaterEdit(b *testing.B) {
	for _, edits := range []int{1, 16, 56} {
		b.Run(fmt.Sprintf("edits=%d", edits), func(b *testing.B) { benchmarkLaterEdit(b, edits) })
	}
}

func benchmarkLaterEdit(b *testing.B, edits int) {
	const window = 8
	var stored, next [][]byte
	d := &Doc{}
	for gen := range edits + window + 1 {
		if gen > edits {
			stored, next = append(stored, d.Encode()), append(next, benchPod(b, gen))
		}
		if _, _, err := d.Put(benchPod(b, gen), Stamp{uint64(gen + 1), "w"}); err != nil {
			b.Fatal(err)
		}
		var err error
		if d, err = DecodeDoc(d.Encode(), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	defer reportCgo(b)()
	defer reportCPU(b, window)()
	for range b.N {
		for i := range stored {
			r, err := DecodeDoc(stored[i], nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok, err := r.Put(next[i], Stamp{uint64(edits + i + 2), "w"}); err != nil || !ok {
				b.Fatalf("put: %v %v", ok, err)
			}
			_ = r.Encode()
		}
	}
	b.ReportMetric(float64(len(stored[window-1])), "doc-B")
}

// reportCPU returns a function that reports the process's CPU time (user and
// system, every thread) per unit since reportCPU was called, n units an op:
// steadier than wall time on a machine shared with other work.
func reportCPU(b *testing.B, n int) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N*n), "cpu-ns/edit")
	}
}

// cpuTime returns the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCgo returns a function that reports the cgo calls made per op since
// reportCgo was called (automerge's calls, mostly).
func reportCgo(b *testing.B) func() {
	start := runtime.NumCgoCall()
	return func() {
		b.ReportMetric(float64(runtime.NumCgoCall()-start)/float64(b.N), "cgo/op")
	}
}

// BenchmarkFlattenPod measures cutting a pod's JSON into its fields.
func BenchmarkFlattenPod(b *testing.B) {
	v := benchPod(b, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for range b.N {
		if _, ok := flatten(v, nil); !ok {
			b.Fatal("not a document")
		}
	}
}
