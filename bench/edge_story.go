package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

// The story's namespace, the label every workload's pods carry, and the
// image every container starts with.
const (
	edgeNS        = "edge"
	edgeLabel     = "workload"
	edgeImage     = "registry.example/app:1"
	edgeImageNew  = "registry.example/app:2"
	edgeLeaseName = "kube-controller-manager"
	heartbeatTick = 500 * time.Millisecond
	// requestTimeout is long: a write that is slow on a loaded machine is
	// not one the site refused.
	requestTimeout = 30 * time.Second
)

// story deploys the workloads, cuts the last site off while both sides
// change them, heals, and fills rep.
func (r *edgeRun) story(ctx context.Context, rep *EdgeReport) error {
	first, cut := r.sites[0], r.sites[len(r.sites)-1]
	rep.CutSite = cut.name
	rec := startRecorder(ctx, r)
	defer rec.stop()
	r.logf("deploying Deployments web (3) and api (2), StatefulSet db (3), Job batch (4 completions, 2 at once) at site %s", first.name)
	if err := deployWorkloads(ctx, first.kube.Client); err != nil {
		return err
	}
	if err := r.waitAll(ctx, "the workloads ready at every site", workloadsReady); err != nil {
		return err
	}

	r.logf("cutting site %s off", cut.name)
	cutAt := time.Now()
	rec.mark(&rep.Timeline.CutStart)
	r.topo.cut(len(r.sites) - 1)
	beat := startHeartbeats(ctx, r.sites)
	if took, err := r.waitOwnLeaders(ctx, cut.name); err != nil {
		r.logf("%v", err)
		rep.LeaderTakeoverSeconds = -1
	} else {
		rep.LeaderTakeoverSeconds = took.Seconds()
		r.logf("every side has its own controller-manager leader, %.1fs after the cut", took.Seconds())
	}
	writes := r.cutWrites(ctx, first, cut)
	select {
	case <-time.After(time.Until(cutAt.Add(r.cfg.CutDuration))):
	case <-ctx.Done():
		return ctx.Err()
	}
	rep.Requests = mergeCounts(beat.stop(), writes)
	r.topo.heal(len(r.sites) - 1)
	healAt := time.Now()
	rec.mark(&rep.Timeline.CutEnd)
	r.logf("healed; waiting for identical stores and settled controllers")

	rep.ConvergeSeconds = -1
	if took, err := r.converge(ctx); err == nil {
		rep.ConvergeSeconds = took.Seconds()
		r.logf("stores identical %.1fs after the heal", took.Seconds())
	} else {
		r.logf("%v", err)
	}
	rep.ControllersQuietSeconds = -1
	if last, err := rec.waitQuiet(ctx, healAt, r.cfg.Quiet, r.cfg.SettleTimeout); err == nil {
		rep.ControllersQuietSeconds = last.Sub(healAt).Seconds()
		r.logf("controllers stopped writing %.1fs after the heal", rep.ControllersQuietSeconds)
	} else {
		r.logf("%v", err)
	}
	rec.stop()
	rep.Timeline.Samples, rep.DoubleBindings = rec.samples, rec.doubles
	rep.Workloads = rec.workloads()
	rep.Leader, rep.Restarts = r.leaderState(ctx)
	rep.Final = r.finalState(ctx)
	rep.Conflicts = r.conflicts(ctx)
	return nil
}

// waitAll polls cond at every site until it holds everywhere.
func (r *edgeRun) waitAll(ctx context.Context, what string, cond func(context.Context, kubernetes.Interface) (bool, string)) error {
	err := kubePoll(ctx, r.cfg.SettleTimeout, time.Second, func(ctx context.Context) (bool, string) {
		for _, s := range r.sites {
			if ok, st := cond(ctx, s.kube.Client); !ok {
				return false, "site " + s.name + ": " + st
			}
		}
		return true, ""
	})
	if err != nil {
		return fmt.Errorf("bench: edge: waiting for %s: %w", what, err)
	}
	r.logf("%s", what)
	return nil
}

// kubePoll calls cond every interval until it holds or timeout passes; the
// error carries cond's last status.
func kubePoll(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) (bool, string)) error {
	return kube.Poll(ctx, timeout, interval, func(ctx context.Context) (bool, string, error) {
		ok, st := cond(ctx)
		return ok, st, nil
	})
}

// waitOwnLeaders waits until every site sees a controller-manager leader of
// its own side of the cut, and returns how long that took.
func (r *edgeRun) waitOwnLeaders(ctx context.Context, cut string) (time.Duration, error) {
	start := time.Now()
	err := kubePoll(ctx, r.cfg.CutDuration, time.Second, func(ctx context.Context) (bool, string) {
		var state []string
		ok := true
		for _, s := range r.sites {
			holder := leaseHolderSite(ctx, s.kube.Client)
			ok = ok && holder != "" && (holder == cut) == (s.name == cut)
			state = append(state, fmt.Sprintf("site %s sees %q", s.name, holder))
		}
		return ok, strings.Join(state, ", ")
	})
	if err != nil {
		return 0, fmt.Errorf("bench: edge: not every side of the cut elected its own leader: %w", err)
	}
	return time.Since(start), nil
}

// leaseHolderSite names the site whose controller-manager holds the Lease
// as a site sees it ("" if none or unreadable): identities are
// "<hostname>_<uuid>", hostnames "site-<name>".
func leaseHolderSite(ctx context.Context, cs kubernetes.Interface) string {
	l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, edgeLeaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	host, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return strings.TrimPrefix(host, "site-")
}

// cutWrites changes the workloads on both sides of the cut, the same
// objects on both, and counts the requests per site.
func (r *edgeRun) cutWrites(ctx context.Context, side, cut *edgeSite) map[string]*EdgeRequests {
	counts := map[string]*EdgeRequests{side.name: {Site: side.name}, cut.name: {Site: cut.name}}
	do := func(s *edgeSite, what string, f func(kubernetes.Interface) error) {
		c := counts[s.name]
		c.Requests++
		if err := f(s.kube.Client); err != nil {
			c.Failed++
			c.LastError = what + ": " + err.Error()
			r.logf("site %s: %s failed: %v", s.name, what, err)
			return
		}
		r.logf("site %s: %s", s.name, what)
	}
	do(side, "scale Deployment web to 5", scaleDeployment("web", 5))
	do(cut, "set Deployment web's image to app:2", setImage("web", edgeImageNew))
	do(side, "set Deployment api's image to app:2", setImage("api", edgeImageNew))
	do(cut, "scale StatefulSet db to 4", scaleStatefulSet("db", 4))
	for i, s := range []*edgeSite{side, cut} {
		do(s, "create ConfigMap shared", createObject(configMap("shared", map[string]string{"site": s.name})))
		do(s, "create Job nightly", createObject(job("nightly", 2, 1, "registry.example/site-"+s.name)))
		do(s, "create Deployment twin", createObject(deployment("twin", int32(2+i), "registry.example/site-"+s.name)))
	}
	return counts
}

func scaleDeployment(name string, replicas int32) func(kubernetes.Interface) error {
	return patch(func(cs kubernetes.Interface, p []byte) error {
		_, err := cs.AppsV1().Deployments(edgeNS).Patch(context.Background(), name, types.MergePatchType, p, metav1.PatchOptions{})
		return err
	}, fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
}

func scaleStatefulSet(name string, replicas int32) func(kubernetes.Interface) error {
	return patch(func(cs kubernetes.Interface, p []byte) error {
		_, err := cs.AppsV1().StatefulSets(edgeNS).Patch(context.Background(), name, types.MergePatchType, p, metav1.PatchOptions{})
		return err
	}, fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
}

func setImage(name, image string) func(kubernetes.Interface) error {
	return patch(func(cs kubernetes.Interface, p []byte) error {
		_, err := cs.AppsV1().Deployments(edgeNS).Patch(context.Background(), name, types.StrategicMergePatchType, p, metav1.PatchOptions{})
		return err
	}, fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image))
}

func patch(f func(kubernetes.Interface, []byte) error, body string) func(kubernetes.Interface) error {
	return func(cs kubernetes.Interface) error { return f(cs, []byte(body)) }
}

// heartbeats updates one ConfigMap per site every heartbeatTick during the
// cut: the steady writes whose failures the report counts.
type heartbeats struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	counts []*EdgeRequests
}

func startHeartbeats(ctx context.Context, sites []*edgeSite) *heartbeats {
	ctx, cancel := context.WithCancel(ctx)
	h := &heartbeats{cancel: cancel}
	for _, s := range sites {
		c := &EdgeRequests{Site: s.name}
		h.counts = append(h.counts, c)
		h.wg.Go(func() { heartbeat(ctx, s.kube.Client, "heartbeat-"+s.name, c) })
	}
	return h
}

func (h *heartbeats) stop() []*EdgeRequests {
	h.cancel()
	h.wg.Wait()
	return h.counts
}

func heartbeat(ctx context.Context, cs kubernetes.Interface, name string, c *EdgeRequests) {
	cms := cs.CoreV1().ConfigMaps(edgeNS)
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(heartbeatTick):
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		cm := configMap(name, map[string]string{"beat": fmt.Sprint(n)})
		_, err := cms.Update(rctx, cm, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(rctx, cm, metav1.CreateOptions{})
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.Requests++
		if err != nil {
			c.Failed++
			c.LastError = "heartbeat: " + err.Error()
		}
	}
}

// mergeCounts adds the one-off writes to the heartbeats, per site.
func mergeCounts(beats []*EdgeRequests, writes map[string]*EdgeRequests) []EdgeRequests {
	var out []EdgeRequests
	for _, b := range beats {
		c := *b
		if w := writes[c.Site]; w != nil {
			c.Requests += w.Requests
			c.Failed += w.Failed
			if w.LastError != "" {
				c.LastError = w.LastError
			}
		}
		out = append(out, c)
	}
	return out
}

// deployWorkloads creates the namespace and the workloads.
func deployWorkloads(ctx context.Context, cs kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: edgeNS}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bench: edge: %w", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: edgeNS},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{edgeLabel: "db"},
			Ports: []corev1.ServicePort{{Name: "db", Port: 5432}}},
	}
	for _, create := range []func(kubernetes.Interface) error{
		createObject(deployment("web", 3, edgeImage)),
		createObject(deployment("api", 2, edgeImage)),
		createObject(svc),
		createObject(statefulSet("db", 3)),
		createObject(job("batch", 4, 2, edgeImage)),
	} {
		if err := create(cs); err != nil {
			return fmt.Errorf("bench: edge: %w", err)
		}
	}
	return nil
}

// createObject creates one of the story's objects.
func createObject(obj any) func(kubernetes.Interface) error {
	return func(cs kubernetes.Interface) error {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		var err error
		switch o := obj.(type) {
		case *appsv1.Deployment:
			_, err = cs.AppsV1().Deployments(edgeNS).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.StatefulSet:
			_, err = cs.AppsV1().StatefulSets(edgeNS).Create(ctx, o, metav1.CreateOptions{})
		case *batchv1.Job:
			_, err = cs.BatchV1().Jobs(edgeNS).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = cs.CoreV1().Services(edgeNS).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.ConfigMap:
			_, err = cs.CoreV1().ConfigMaps(edgeNS).Create(ctx, o, metav1.CreateOptions{})
		default:
			err = fmt.Errorf("bench: edge: cannot create %T", obj)
		}
		return err
	}
}

func podTemplate(name, image string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{edgeLabel: name}},
		Spec: corev1.PodSpec{RestartPolicy: restart,
			Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func deployment(name string, replicas int32, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: edgeNS},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{edgeLabel: name}},
			Template: podTemplate(name, image, corev1.RestartPolicyAlways)},
	}
}

func statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: edgeNS},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr(replicas), ServiceName: name,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{edgeLabel: name}},
			Template: podTemplate(name, edgeImage, corev1.RestartPolicyAlways)},
	}
}

func job(name string, completions, parallelism int32, image string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: edgeNS},
		Spec: batchv1.JobSpec{Completions: ptr(completions), Parallelism: ptr(parallelism),
			Template: podTemplate(name, image, corev1.RestartPolicyNever)},
	}
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: edgeNS}, Data: data}
}

// workloadsReady reports whether a site sees every initial workload done.
func workloadsReady(ctx context.Context, cs kubernetes.Interface) (bool, string) {
	for _, name := range []string{"web", "api"} {
		d, err := cs.AppsV1().Deployments(edgeNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil || d.Status.ObservedGeneration != d.Generation || d.Status.ReadyReplicas != *d.Spec.Replicas || d.Status.UpdatedReplicas != *d.Spec.Replicas {
			return false, "Deployment " + name + " not rolled out"
		}
	}
	s, err := cs.AppsV1().StatefulSets(edgeNS).Get(ctx, "db", metav1.GetOptions{})
	if err != nil || s.Status.ReadyReplicas != *s.Spec.Replicas {
		return false, "StatefulSet db not ready"
	}
	j, err := cs.BatchV1().Jobs(edgeNS).Get(ctx, "batch", metav1.GetOptions{})
	if err != nil || j.Status.Succeeded != *j.Spec.Completions {
		return false, "Job batch not complete"
	}
	return true, ""
}
