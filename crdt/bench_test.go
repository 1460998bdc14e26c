package crdt

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
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
