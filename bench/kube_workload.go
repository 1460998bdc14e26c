package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// kubeOp is one kind of API call of the Kubernetes workload.
type kubeOp int

const (
	opCreate kubeOp = iota
	opGet
	opList
	opUpdate
	opDelete
	numKubeOps
)

func (o kubeOp) String() string {
	return [...]string{"create", "get", "list", "update", "delete"}[o]
}

// kubeKind is the resource a call goes to.
type kubeKind int

const (
	kindPod kubeKind = iota
	kindConfigMap
	numKubeKinds
)

func (k kubeKind) String() string { return [...]string{"pods", "configmaps"}[k] }

// KubeMix weighs the operations: each call picks one with probability
// weight/sum, then pods or ConfigMaps with equal probability.
type KubeMix [numKubeOps]int

// defaultKubeMix leans on reads and updates, as a control plane's traffic
// does; creates and deletes balance so each client's pool of objects keeps
// its size.
func defaultKubeMix() KubeMix {
	var m KubeMix
	m[opCreate], m[opGet], m[opList], m[opUpdate], m[opDelete] = 15, 25, 10, 35, 15
	return m
}

func (m KubeMix) String() string {
	var parts []string
	for op, w := range m {
		parts = append(parts, fmt.Sprintf("%s %d", kubeOp(op), w))
	}
	return strings.Join(parts, ", ")
}

// kubeStats is what one client measured in one phase, by operation and kind.
type kubeStats struct {
	hist      [numKubeOps][numKubeKinds]histogram
	errors    [numKubeOps][numKubeKinds]int64
	lastErr   error
	pages     int64 // list pages fetched; a list op follows continue tokens to the end
	items     int64 // objects the lists returned
	conflicts int64 // updates refused for a stale resourceVersion (clients own their objects: should be 0)
}

func (s *kubeStats) merge(o *kubeStats) {
	for op := range s.hist {
		for k := range s.hist[op] {
			s.hist[op][k].merge(&o.hist[op][k])
			s.errors[op][k] += o.errors[op][k]
		}
	}
	if o.lastErr != nil {
		s.lastErr = o.lastErr
	}
	s.pages += o.pages
	s.items += o.items
	s.conflicts += o.conflicts
}

// kubeClient is one simulated API client. It owns the objects it creates,
// so its updates carry the resourceVersion it last saw and never conflict
// with another client's. It is used by one goroutine at a time.
type kubeClient struct {
	id       int
	ns       string
	cs       kubernetes.Interface
	rng      *rand.Rand
	mix      KubeMix
	mixSum   int
	pool     int // objects of each kind the client keeps, on average
	pageSize int64

	pods []*corev1.Pod
	cms  []*corev1.ConfigMap
	seq  int
	gen  int
}

func newKubeClient(id int, ns string, cs kubernetes.Interface, cfg KubeConfig, level int) *kubeClient {
	sum := 0
	for _, w := range cfg.Mix {
		sum += w
	}
	return &kubeClient{
		id: id, ns: ns, cs: cs,
		// The same seed on every system: each sees the same sequence of calls.
		rng: rand.New(rand.NewPCG(cfg.Seed, uint64(level)<<32|uint64(id))),
		mix: cfg.Mix, mixSum: sum, pool: cfg.PoolPerClient, pageSize: int64(cfg.PageSize),
	}
}

func (c *kubeClient) live(k kubeKind) int {
	if k == kindPod {
		return len(c.pods)
	}
	return len(c.cms)
}

// pick chooses the next call. An empty pool turns a call that needs an
// object into a create; a pool twice its size turns a create into a delete,
// so no pool drifts far from its size.
func (c *kubeClient) pick() (kubeOp, kubeKind) {
	r := c.rng.IntN(c.mixSum)
	op := kubeOp(0)
	for ; op < numKubeOps-1 && r >= c.mix[op]; op++ {
		r -= c.mix[op]
	}
	kind := kubeKind(c.rng.IntN(int(numKubeKinds)))
	n := c.live(kind)
	switch {
	case n == 0 && (op == opGet || op == opUpdate || op == opDelete):
		op = opCreate
	case n >= 2*c.pool && op == opCreate:
		op = opDelete
	}
	return op, kind
}

// fill creates objects until the client holds pool of each kind.
func (c *kubeClient) fill(ctx context.Context) error {
	for _, k := range []kubeKind{kindPod, kindConfigMap} {
		for c.live(k) < c.pool {
			if err := c.do(ctx, opCreate, k, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// do makes one call (a list: every page of it) and returns its error.
func (c *kubeClient) do(ctx context.Context, op kubeOp, kind kubeKind, st *kubeStats) error {
	pods, cms := c.cs.CoreV1().Pods(c.ns), c.cs.CoreV1().ConfigMaps(c.ns)
	switch op {
	case opCreate:
		c.seq++
		name := fmt.Sprintf("c%03d-%06d", c.id, c.seq)
		if kind == kindPod {
			p, err := pods.Create(ctx, benchPod(c.ns, name, c.id, c.gen), metav1.CreateOptions{})
			if err == nil {
				c.pods = append(c.pods, p)
			}
			return err
		}
		cm, err := cms.Create(ctx, benchConfigMap(c.ns, name, c.id, c.gen), metav1.CreateOptions{})
		if err == nil {
			c.cms = append(c.cms, cm)
		}
		return err
	case opGet:
		i := c.rng.IntN(c.live(kind))
		if kind == kindPod {
			_, err := pods.Get(ctx, c.pods[i].Name, metav1.GetOptions{})
			return err
		}
		_, err := cms.Get(ctx, c.cms[i].Name, metav1.GetOptions{})
		return err
	case opList:
		// Namespace-scoped and paged, as kubectl and controllers list.
		opts := metav1.ListOptions{Limit: c.pageSize}
		for {
			var (
				cont string
				n    int
				err  error
			)
			if kind == kindPod {
				var l *corev1.PodList
				if l, err = pods.List(ctx, opts); err == nil {
					cont, n = l.Continue, len(l.Items)
				}
			} else {
				var l *corev1.ConfigMapList
				if l, err = cms.List(ctx, opts); err == nil {
					cont, n = l.Continue, len(l.Items)
				}
			}
			if err != nil {
				return err
			}
			if st != nil {
				st.pages++
				st.items += int64(n)
			}
			if cont == "" {
				return nil
			}
			opts.Continue = cont
		}
	case opUpdate:
		c.gen++
		i := c.rng.IntN(c.live(kind))
		var err error
		if kind == kindPod {
			p := c.pods[i].DeepCopy()
			touchPod(p, c.gen)
			if p, err = pods.Update(ctx, p, metav1.UpdateOptions{}); err == nil {
				c.pods[i] = p
			}
		} else {
			cm := c.cms[i].DeepCopy()
			touchConfigMap(cm, c.gen)
			if cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{}); err == nil {
				c.cms[i] = cm
			}
		}
		if apierrors.IsConflict(err) {
			// Only this client writes the object: a conflict means a
			// lost or reordered write. Count it and resynchronise.
			if st != nil {
				st.conflicts++
			}
			c.refresh(ctx, kind, i)
		}
		return err
	case opDelete:
		i := c.rng.IntN(c.live(kind))
		// Pods are never scheduled (no scheduler, no nodes), so the
		// apiserver deletes them at once, without a grace period.
		var err error
		if kind == kindPod {
			err = pods.Delete(ctx, c.pods[i].Name, metav1.DeleteOptions{})
			if err == nil || apierrors.IsNotFound(err) {
				c.pods = append(c.pods[:i], c.pods[i+1:]...)
			}
		} else {
			err = cms.Delete(ctx, c.cms[i].Name, metav1.DeleteOptions{})
			if err == nil || apierrors.IsNotFound(err) {
				c.cms = append(c.cms[:i], c.cms[i+1:]...)
			}
		}
		return err
	}
	return fmt.Errorf("bench: unknown kube op %d", op)
}

// refresh re-reads object i of kind after a conflict.
func (c *kubeClient) refresh(ctx context.Context, kind kubeKind, i int) {
	if kind == kindPod {
		if p, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, c.pods[i].Name, metav1.GetOptions{}); err == nil {
			c.pods[i] = p
		}
		return
	}
	if cm, err := c.cs.CoreV1().ConfigMaps(c.ns).Get(ctx, c.cms[i].Name, metav1.GetOptions{}); err == nil {
		c.cms[i] = cm
	}
}

// runKubePhase runs every client in its own goroutine until deadline (no
// call starts after it) and returns the merged stats and the time from the
// start until the last call ended. done counts finished calls, for progress.
func runKubePhase(ctx context.Context, clients []*kubeClient, deadline time.Time, done *atomic.Int64) (kubeStats, time.Duration) {
	stats := make([]kubeStats, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			st := &stats[i]
			failures := 0
			for ctx.Err() == nil && time.Now().Before(deadline) {
				op, kind := c.pick()
				t0 := time.Now()
				err := c.do(ctx, op, kind, st)
				d := time.Since(t0)
				done.Add(1)
				if err != nil {
					st.errors[op][kind]++
					st.lastErr = fmt.Errorf("%s %s: %w", op, kind, err)
					// A dead apiserver fails fast; do not spin on it.
					if failures++; failures > 1000 && st.hist[op][kind].count() == 0 {
						return
					}
					continue
				}
				st.hist[op][kind].record(d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all kubeStats
	for i := range stats {
		all.merge(&stats[i])
	}
	return all, elapsed
}

// fillClients brings every client's pool to its size, many at once.
func fillClients(ctx context.Context, clients []*kubeClient) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { errs[i] = c.fill(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: creating the initial objects: %w", err)
	}
	return nil
}

// benchPod is a Pod shaped like a typical Deployment's: an application
// container and a proxy sidecar, probes, resources, environment from
// fields and ConfigMaps, volumes, tolerations and anti-affinity. Its JSON
// form is about 3 KB before the apiserver adds defaults.
func benchPod(ns, name string, client, gen int) *corev1.Pod {
	app := fmt.Sprintf("svc-%02d", client%10)
	labels := map[string]string{
		"app.kubernetes.io/name":       app,
		"app.kubernetes.io/instance":   app + "-prod",
		"app.kubernetes.io/component":  "backend",
		"app.kubernetes.io/part-of":    "storefront",
		"app.kubernetes.io/managed-by": "rhizome-bench",
		"pod-template-hash":            "7d9f8c6b5d",
		"bench/client":                 fmt.Sprint(client),
	}
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "LOG_LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}, Key: "log.level", Optional: ptr(true)}}},
		{Name: "DATABASE_URL", Value: "postgres://storefront@db.storefront.svc.cluster.local:5432/orders?sslmode=require"},
		{Name: "CACHE_ADDR", Value: "redis.storefront.svc.cluster.local:6379"},
		{Name: "OTEL_SERVICE_NAME", Value: app},
		{Name: "GOMAXPROCS", Value: "2"},
		{Name: "FEATURE_FLAGS", Value: "checkout-v2,async-inventory,new-pricing"},
	}
	probe := func(path string, delay int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3,
		}
	}
	res := func(cpu, mem, cpuLim, memLim string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuLim), corev1.ResourceMemory: resource.MustParse(memLim)},
		}
	}
	secCtx := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true), RunAsNonRoot: ptr(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns, Labels: labels,
			Annotations: map[string]string{
				"prometheus.io/scrape": "true",
				"prometheus.io/port":   "9090",
				"prometheus.io/path":   "/metrics",
				"checksum/config":      "3f2a9c1e8b7d6054a1f2e3d4c5b6a79881726354a0b9c8d7e6f5a4b3c2d1e0f9",
			},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:    "app",
				Image:   fmt.Sprintf("registry.example.com/storefront/%s:1.%d.0", app, gen%50),
				Command: []string{"/usr/local/bin/server"},
				Args:    []string{"--config=/etc/app/app.yaml", "--listen=:8080", "--metrics-listen=:9090", "--graceful-shutdown=20s"},
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
				},
				Env:             env,
				Resources:       res("250m", "256Mi", "1", "512Mi"),
				VolumeMounts:    []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app", ReadOnly: true}, {Name: "tmp", MountPath: "/tmp"}},
				LivenessProbe:   probe("/healthz", 10),
				ReadinessProbe:  probe("/readyz", 2),
				SecurityContext: secCtx,
			}, {
				Name:  "proxy",
				Image: "registry.example.com/mesh/proxy:1.31.2",
				Args:  []string{"proxy", "sidecar", "--concurrency=2", "--log-level=warn", "--drain-time=15s"},
				Ports: []corev1.ContainerPort{{Name: "proxy-admin", ContainerPort: 15000, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "SERVICE_ACCOUNT", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
				},
				Resources:       res("100m", "128Mi", "500m", "256Mi"),
				VolumeMounts:    []corev1.VolumeMount{{Name: "proxy-certs", MountPath: "/etc/certs", ReadOnly: true}},
				SecurityContext: secCtx,
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("64Mi"))}}},
				{Name: "proxy-certs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			},
			TerminationGracePeriodSeconds: ptr(int64(30)),
			NodeSelector:                  map[string]string{"kubernetes.io/os": "linux", "node.kubernetes.io/pool": "general"},
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300))},
			},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": app}},
						TopologyKey:   "kubernetes.io/hostname",
					},
				}},
			}},
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr(int64(10001)), RunAsGroup: ptr(int64(10001)), FSGroup: ptr(int64(10001))},
		},
	}
	return p
}

// touchPod changes what a rollout or an operator changes on a live Pod: the
// application image and an annotation.
func touchPod(p *corev1.Pod, gen int) {
	p.Spec.Containers[0].Image = fmt.Sprintf("%s:1.%d.0", strings.Split(p.Spec.Containers[0].Image, ":")[0], gen%50)
	p.Annotations["bench/generation"] = fmt.Sprint(gen)
}

// benchConfigMap is an application's configuration: a YAML file, a
// properties file and a few flags, about 1 KB.
func benchConfigMap(ns, name string, client, gen int) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/name": fmt.Sprintf("svc-%02d", client%10), "app.kubernetes.io/managed-by": "rhizome-bench"},
		},
		Data: map[string]string{
			"app.yaml": `server:
  listen: ":8080"
  readTimeout: 5s
  writeTimeout: 10s
  idleTimeout: 120s
database:
  maxOpenConns: 20
  maxIdleConns: 5
  connMaxLifetime: 30m
cache:
  ttl: 60s
  size: 10000
tracing:
  sampler: parentbased_traceidratio
  ratio: 0.05
`,
			"logging.properties": "handlers=console\nlevel=INFO\nconsole.format=json\nconsole.level=INFO\nio.netty.level=WARN\n",
			"log.level":          "info",
			"feature.flags":      `{"checkout-v2":true,"async-inventory":true,"new-pricing":false,"dark-mode":true}`,
		},
	}
	touchConfigMap(cm, gen)
	return cm
}

// touchConfigMap changes one value, as a configuration rollout does.
func touchConfigMap(cm *corev1.ConfigMap, gen int) {
	cm.Data["generation"] = fmt.Sprint(gen)
	cm.Data["rollout.id"] = fmt.Sprintf("%016x", uint64(gen)*0x9e3779b97f4a7c15)
}

func ptr[T any](v T) *T { return &v }
