package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// NodesConfig describes kubelet-less nodes.
type NodesConfig struct {
	Names []string
	// Capacity of each node; also its allocatable.
	CPU, Memory string
	Pods        int
	// LeaseDuration is what the node's Lease promises; it is renewed every
	// third of it, as the kubelet does (40s, renewed every 10s).
	LeaseDuration time.Duration
	// CompleteAfter, when positive, ends the pods that are not restarted
	// (restartPolicy Never or OnFailure: a Job's) this long after they
	// started, as if their containers exited 0, so Jobs complete. Zero
	// keeps every pod running.
	CompleteAfter time.Duration
}

// DefaultNodesConfig is three roomy nodes.
func DefaultNodesConfig() NodesConfig {
	return NodesConfig{
		Names:         []string{"node-1", "node-2", "node-3"},
		CPU:           "8",
		Memory:        "32Gi",
		Pods:          110,
		LeaseDuration: 40 * time.Second,
	}
}

// Validate reports the first thing wrong with c.
func (c NodesConfig) Validate() error {
	if len(c.Names) == 0 {
		return errors.New("kube: no node names")
	}
	for _, q := range []string{c.CPU, c.Memory} {
		if _, err := resource.ParseQuantity(q); err != nil {
			return fmt.Errorf("kube: node capacity %q: %w", q, err)
		}
	}
	if c.Pods <= 0 {
		return fmt.Errorf("kube: node pod capacity %d", c.Pods)
	}
	if c.LeaseDuration < 3*time.Second {
		return fmt.Errorf("kube: LeaseDuration %v is shorter than 3s", c.LeaseDuration)
	}
	if c.CompleteAfter < 0 {
		return fmt.Errorf("kube: negative CompleteAfter %v", c.CompleteAfter)
	}
	return nil
}

// Nodes stands in for kubelets: it registers Node objects that report
// Ready, renews their Leases so the node lifecycle controller keeps them
// schedulable, marks pods bound to them Running and Ready (again, when
// another party marked them not ready), and completes
// the deletion of their terminating pods (a kubelet deletes with grace 0
// once the containers are gone). It runs no containers.
type Nodes struct {
	client kubernetes.Interface
	cfg    NodesConfig
	own    map[string]bool

	cancel context.CancelFunc
	wg     sync.WaitGroup

	errs    atomic.Int64
	lastErr atomic.Pointer[error]
}

// StartNodes registers the nodes and runs their stand-in kubelets until tb
// ends. It fails tb if the nodes cannot be created.
func StartNodes(tb testing.TB, client kubernetes.Interface, cfg NodesConfig) *Nodes {
	tb.Helper()
	n, err := RunNodes(client, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Close)
	return n
}

// RunNodes registers the nodes and runs their stand-in kubelets until
// Close, for a command rather than a test. On error nothing is left
// running.
func RunNodes(client kubernetes.Interface, cfg NodesConfig) (*Nodes, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Nodes{client: client, cfg: cfg, own: map[string]bool{}, cancel: cancel}
	for _, name := range cfg.Names {
		n.own[name] = true
		if err := n.register(ctx, name); err != nil {
			n.Close()
			return nil, err
		}
	}

	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.renewLeases(ctx)
	}()

	// Only pods bound to some node interest a kubelet.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	pods := factory.Core().V1().Pods().Informer()
	queue := make(chan string, 1024)
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			select {
			case queue <- key:
			case <-ctx.Done():
			}
		}
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		n.Close()
		return nil, fmt.Errorf("kube: nodes: %w", err)
	}
	factory.Start(ctx.Done())
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer factory.Shutdown()
		n.syncLoop(ctx, pods, queue, enqueue)
	}()
	return n, nil
}

// syncLoop plays the kubelet for each queued pod until ctx ends.
func (n *Nodes) syncLoop(ctx context.Context, pods cache.SharedIndexInformer, queue <-chan string, enqueue func(any)) {
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-queue:
			obj, exists, err := pods.GetStore().GetByKey(key)
			if err != nil || !exists {
				continue
			}
			after, err := n.syncPod(ctx, obj.(*corev1.Pod))
			if err != nil {
				n.record(err)
				// The next update of the pod, or the requeue, retries.
				after = time.Second
			}
			if after > 0 {
				go func() {
					select {
					case <-time.After(after):
						enqueue(obj)
					case <-ctx.Done():
					}
				}()
			}
		}
	}
}

// Errors returns how many API calls of the stand-in kubelets failed (each
// is retried) and the last failure.
func (n *Nodes) Errors() (int64, error) {
	var last error
	if p := n.lastErr.Load(); p != nil {
		last = *p
	}
	return n.errs.Load(), last
}

func (n *Nodes) record(err error) {
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) || errors.Is(err, context.Canceled) {
		return // the ordinary races of a kubelet, retried from fresher state
	}
	n.errs.Add(1)
	n.lastErr.Store(&err)
}

// Close stops the stand-in kubelets; the Node objects stay.
func (n *Nodes) Close() {
	n.cancel()
	n.wg.Wait()
}

func (n *Nodes) register(ctx context.Context, name string) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
		},
	}
	created, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kube: create node %s: %w", name, err)
	}
	status := n.readyStatus(name)
	// Status is ignored on create; the kubelet sets it through the
	// subresource, and so does this. The node lifecycle controller may
	// have tainted the new Node in between, hence the retry.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := n.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status = status
		_, err = n.client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("kube: status of node %s: %w", name, err)
	}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: corev1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: name, UID: created.UID,
			}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(name),
			LeaseDurationSeconds: ptr.To(int32(n.cfg.LeaseDuration / time.Second)),
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	if _, err := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("kube: lease of node %s: %w", name, err)
	}
	return nil
}

// readyStatus is the status a healthy kubelet reports for node name.
func (n *Nodes) readyStatus(name string) corev1.NodeStatus {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(n.cfg.CPU),
		corev1.ResourceMemory: resource.MustParse(n.cfg.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(n.cfg.Pods), resource.DecimalSI),
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
		},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
		NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.36.3", OperatingSystem: "linux", Architecture: "amd64"},
	}
}

// keepReady reports node name Ready again when its Ready condition is not
// true: the node lifecycle controller of a site that lost sight of the
// node's Lease marked it unknown, and a kubelet's next status update
// corrects that, which lets the controller lift its taints.
func (n *Nodes) keepReady(ctx context.Context, name string) error {
	nodes := n.client.CoreV1().Nodes()
	cur, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range cur.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	cur.Status = n.readyStatus(name)
	_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	return err
}

// renewLeases renews every node's Lease each third of its duration and
// keeps the nodes reported Ready, as kubelets do.
func (n *Nodes) renewLeases(ctx context.Context) {
	tick := time.NewTicker(n.cfg.LeaseDuration / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, name := range n.cfg.Names {
			leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
			l, err := leases.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				n.record(err)
				continue
			}
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
				n.record(err)
			}
			if err := n.keepReady(ctx, name); err != nil {
				n.record(err)
			}
		}
	}
}

// syncPod does what a kubelet would for a pod bound to one of the nodes;
// a positive duration asks to be called again for the pod that much later.
func (n *Nodes) syncPod(ctx context.Context, pod *corev1.Pod) (time.Duration, error) {
	if !n.own[pod.Spec.NodeName] {
		return 0, nil
	}
	pods := n.client.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To(int64(0)),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return 0, nil
	case corev1.PodRunning:
		if !PodReady(pod) {
			// Someone else (the node lifecycle controller of a site that
			// lost sight of this node) marked it not ready: a kubelet's
			// status manager reports the truth again.
			_, err := pods.UpdateStatus(ctx, running(pod), metav1.UpdateOptions{})
			return 0, err
		}
		if n.cfg.CompleteAfter <= 0 || pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || pod.Status.StartTime == nil {
			return 0, nil
		}
		if left := time.Until(pod.Status.StartTime.Add(n.cfg.CompleteAfter)); left > 0 {
			return left, nil
		}
		_, err := pods.UpdateStatus(ctx, completed(pod), metav1.UpdateOptions{})
		return 0, err
	}
	_, err := pods.UpdateStatus(ctx, running(pod), metav1.UpdateOptions{})
	return 0, err
}

// PodReady reports whether pod's Ready condition is true.
func PodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// running is pod as a kubelet reports it once its containers run and are
// ready (since its start time, if it has one).
func running(pod *corev1.Pod) *corev1.Pod {
	now := metav1.Now()
	p := pod.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.HostIP = "127.0.0.1"
	p.Status.PodIP = "127.0.0.1"
	if p.Status.StartTime == nil {
		p.Status.StartTime = &now
	}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:    c.Name,
			Image:   c.Image,
			ImageID: c.Image,
			Ready:   true,
			Started: ptr.To(true),
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	return p
}

// completed is pod as a kubelet reports it once every container exited 0.
func completed(pod *corev1.Pod) *corev1.Pod {
	now := metav1.Now()
	p := pod.DeepCopy()
	p.Status.Phase = corev1.PodSucceeded
	for i := range p.Status.Conditions {
		if t := p.Status.Conditions[i].Type; t == corev1.PodReady || t == corev1.ContainersReady {
			p.Status.Conditions[i].Status, p.Status.Conditions[i].Reason = corev1.ConditionFalse, "PodCompleted"
			p.Status.Conditions[i].LastTransitionTime = now
		}
	}
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		started := now
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		cs.Ready, cs.Started = false, ptr.To(false)
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: now}}
	}
	return p
}
