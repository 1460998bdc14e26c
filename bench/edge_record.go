package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// recorder follows a run from the moment the workloads are deployed: it counts
// every site's pods per workload each SampleEvery, notes pod names bound to
// different nodes at different sites at the same moment, and watches every
// site's store for the last write a controller made.
type recorder struct {
	run    *edgeRun
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu        sync.Mutex
	samples   []EdgeSample
	doubles   []EdgeDoubleBinding
	seenPairs map[string]bool
	lastWrite time.Time // of a key outside leaseLikePrefixes, at any site
}

// leaseLikePrefixes hold what keeps changing while nothing else does:
// leader and node Leases, the apiservers' identity, endpoint and peer
// leases, Events. A write elsewhere is a controller (or a user) acting.
var leaseLikePrefixes = []string{"/registry/leases/", "/registry/masterleases/", "/registry/peerserverleases/", "/registry/events/", "/registry/events.k8s.io/"}

func startRecorder(ctx context.Context, r *edgeRun) *recorder {
	ctx, cancel := context.WithCancel(ctx)
	rec := &recorder{run: r, start: time.Now(), cancel: cancel, seenPairs: map[string]bool{}, lastWrite: time.Now()}
	for _, s := range r.sites {
		rec.wg.Go(func() { rec.watch(ctx, s.etcd) })
	}
	rec.wg.Go(func() { rec.sample(ctx) })
	return rec
}

// stop ends the recording; it may be called more than once.
func (rec *recorder) stop() {
	rec.once.Do(func() {
		rec.cancel()
		rec.wg.Wait()
	})
}

// mark stores the time since the recording started, in seconds, into *at.
func (rec *recorder) mark(at *float64) { *at = time.Since(rec.start).Seconds() }

// watch notes the time of every write outside leaseLikePrefixes at one
// site's store.
func (rec *recorder) watch(ctx context.Context, cli *clientv3.Client) {
	for resp := range cli.Watch(ctx, "/registry/", clientv3.WithPrefix()) {
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			if slices.ContainsFunc(leaseLikePrefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
				continue
			}
			rec.mu.Lock()
			rec.lastWrite = time.Now()
			rec.mu.Unlock()
		}
	}
}

// waitQuiet waits until no controller has written for quiet and returns
// the time of the last write; timeout bounds the wait from since.
func (rec *recorder) waitQuiet(ctx context.Context, since time.Time, quiet, timeout time.Duration) (time.Time, error) {
	for {
		rec.mu.Lock()
		last := rec.lastWrite
		rec.mu.Unlock()
		if time.Since(last) >= quiet {
			return last, nil
		}
		if time.Since(since) > timeout {
			return time.Time{}, fmt.Errorf("bench: edge: controllers still writing %v after the heal", timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// sample counts the pods at every site each SampleEvery.
func (rec *recorder) sample(ctx context.Context) {
	tick := time.NewTicker(rec.run.cfg.SampleEvery)
	defer tick.Stop()
	for {
		rec.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sampleOnce lists every site's pods at once and records the counts and
// any pod name that two sites see bound to different nodes.
func (rec *recorder) sampleOnce(ctx context.Context) {
	sites := rec.run.sites
	lists := make([][]corev1.Pod, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			// From the apiserver's watch cache: a site's own view, cheaply.
			l, err := s.kube.Client.CoreV1().Pods(edgeNS).List(lctx, metav1.ListOptions{ResourceVersion: "0"})
			if err == nil {
				lists[i] = l.Items
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	at := time.Since(rec.start).Seconds()
	bound := map[string]map[string]string{} // pod name -> site -> node
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, pods := range lists {
		if pods == nil {
			continue
		}
		smp := EdgeSample{Seconds: at, Site: sites[i].name, Pods: map[string]int{}}
		for _, p := range pods {
			if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			smp.Pods[p.Labels[edgeLabel]]++
			if p.Spec.NodeName != "" {
				if bound[p.Name] == nil {
					bound[p.Name] = map[string]string{}
				}
				bound[p.Name][sites[i].name] = p.Spec.NodeName
			}
		}
		rec.samples = append(rec.samples, smp)
	}
	for pod, bySite := range bound {
		nodes := map[string]bool{}
		for _, n := range bySite {
			nodes[n] = true
		}
		if len(nodes) > 1 && !rec.seenPairs[pod] {
			rec.seenPairs[pod] = true
			rec.doubles = append(rec.doubles, EdgeDoubleBinding{Pod: pod, Seconds: at, NodeBySite: bySite})
		}
	}
}

// workloads summarises the samples: per workload the most pods any site
// held at once, against the largest spec the story gave it and the bound
// the checker derives.
func (rec *recorder) workloads() []EdgeWorkload {
	var out []EdgeWorkload
	for _, w := range edgeWorkloads() {
		ew := EdgeWorkload{Name: w.name, Kind: w.kind, Spec: w.spec, Bound: w.bound(2)}
		for _, s := range rec.samples {
			if n := s.Pods[w.name]; n > ew.MaxPods {
				ew.MaxPods, ew.MaxSite, ew.MaxSeconds = n, s.Site, s.Seconds
			}
		}
		out = append(out, ew)
	}
	return out
}

// edgeWorkload is one workload of the story and the most pods its spec
// allows at once.
type edgeWorkload struct {
	name, kind string
	spec       int // the largest replicas (parallelism for a Job) the story sets
	surge      int // extra pods a rolling update may add (maxSurge 25%, rounded up)
	// twice: created on both sides of the cut, so two objects (incarnations)
	// of different specs each had controllers; the checker derives no bound
	// for that.
	twice bool
}

// bound is the checker's derived per-replica bound S·R (checker/k8s,
// "Over-replication bounds"): with S sides each running its own
// controllers, a replica holds at most S times what one controller keeps
// active, R = spec plus the rolling update's surge. 0: no derived bound.
func (w edgeWorkload) bound(sides int) int {
	if w.twice {
		return 0
	}
	return sides * (w.spec + w.surge)
}

func edgeWorkloads() []edgeWorkload {
	return []edgeWorkload{
		{name: "web", kind: "Deployment", spec: 5, surge: 2},
		{name: "api", kind: "Deployment", spec: 2, surge: 1},
		{name: "twin", kind: "Deployment (created on both sides)", spec: 3, surge: 1, twice: true},
		{name: "db", kind: "StatefulSet", spec: 4},
		{name: "batch", kind: "Job", spec: 2},
		{name: "nightly", kind: "Job (created on both sides)", spec: 1, twice: true},
	}
}
