package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

const (
	image1 = "registry.k8s.io/pause:3.10"
	image2 = "registry.k8s.io/pause:3.9"
	// settleTimeout bounds each step of the Deployment scenario: the
	// controllers react within seconds; the slack is for a loaded CI box.
	settleTimeout = 2 * time.Minute
)

// testDeployment: the controller manager turns a Deployment into a
// ReplicaSet and Pods, the scheduler binds the Pods to registered Nodes,
// and scaling, a rolling update and a cascading delete all complete.
func testDeployment(t *testing.T, c *kube.Cluster) {
	ctx := t.Context()
	const ns = "deploy"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ncfg := kube.DefaultNodesConfig()
	nodes := kube.StartNodes(t, c.Client, ncfg)
	t.Cleanup(func() {
		for _, name := range ncfg.Names {
			_ = c.Client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	// New Nodes carry the not-ready taint until the node lifecycle
	// controller sees them Ready; the scheduler skips them till then.
	waitFor(t, time.Minute, "nodes to be schedulable", func(ctx context.Context) (bool, string, error) {
		list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		var tainted []string
		for _, n := range list.Items {
			for _, taint := range n.Spec.Taints {
				tainted = append(tainted, n.Name+":"+taint.Key)
			}
		}
		return len(list.Items) == len(ncfg.Names) && len(tainted) == 0,
			fmt.Sprintf("%d nodes, taints %v", len(list.Items), tainted), nil
	})
	// Pods cannot be admitted before the namespace's default service
	// account exists; waiting spares the ReplicaSet controller a backoff.
	waitFor(t, time.Minute, "default service account", func(ctx context.Context) (bool, string, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err), nil
	})

	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "pause",
						Image: image1,
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("100m"),
							corev1.ResourceMemory: resource.MustParse("64Mi"),
						}},
					}},
				},
			},
		},
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	settled := func(step string, replicas int, image string) {
		t.Helper()
		waitFor(t, settleTimeout, fmt.Sprintf("%s: %d pods of %s", step, replicas, image), func(ctx context.Context) (bool, string, error) {
			return deploymentSettled(ctx, c, ns, "web", replicas, image, ncfg.Names)
		})
	}
	settled("create", 3, image1)

	if _, err := c.Kubectl(ctx, "scale", "deployment", "web", "-n", ns, "--replicas=5"); err != nil {
		t.Fatal(err)
	}
	settled("scale up", 5, image1)

	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 2}}
	if _, err := c.Client.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	settled("scale down", 2, image1)

	if _, err := c.Kubectl(ctx, "set", "image", "deployment/web", "-n", ns, "pause="+image2); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl(ctx, "rollout", "status", "deployment/web", "-n", ns, "--timeout=2m"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "successfully rolled out") {
		t.Errorf("kubectl rollout status said %q", out)
	}
	settled("rolling update", 2, image2)
	rss, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, rs := range rss.Items {
		summary = append(summary, fmt.Sprintf("%s=%d rev %s", rs.Spec.Template.Spec.Containers[0].Image,
			ptr.Deref(rs.Spec.Replicas, -1), rs.Annotations["deployment.kubernetes.io/revision"]))
	}
	slices.Sort(summary)
	if want := []string{image1 + "=0 rev 1", image2 + "=2 rev 2"}; !slices.Equal(summary, want) {
		t.Errorf("ReplicaSets after the rollout: %v, want %v", summary, want)
	}

	// kubectl deletes in the background: the garbage collector removes
	// the ReplicaSets, then their Pods.
	if _, err := c.Kubectl(ctx, "delete", "deployment", "web", "-n", ns); err != nil {
		t.Fatal(err)
	}
	waitFor(t, settleTimeout, "cascading delete", func(ctx context.Context) (bool, string, error) {
		d, err1 := c.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		r, err2 := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		p, err3 := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err := firstErr(err1, err2, err3); err != nil {
			return false, err.Error(), nil
		}
		n := len(d.Items) + len(r.Items) + len(p.Items)
		return n == 0, fmt.Sprintf("%d deployments, %d replicasets, %d pods left", len(d.Items), len(r.Items), len(p.Items)), nil
	})
	if n, err := nodes.Errors(); n > 0 {
		t.Errorf("the stand-in kubelets had %d failed API calls, the last: %v", n, err)
	}
}

// deploymentSettled reports whether a Deployment has finished converging
// to replicas Running pods of image, each bound to one of nodes and owned
// by the Deployment's current ReplicaSet.
func deploymentSettled(ctx context.Context, c *kube.Cluster, ns, name string, replicas int, image string, nodes []string) (bool, string, error) {
	d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err.Error(), nil
	}
	st := d.Status
	status := fmt.Sprintf("generation %d observed %d, replicas %d updated %d ready %d available %d",
		d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas)
	n := int32(replicas)
	if st.ObservedGeneration < d.Generation || st.Replicas != n || st.UpdatedReplicas != n || st.ReadyReplicas != n || st.AvailableReplicas != n {
		return false, status, nil
	}
	rss, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error(), nil
	}
	current := map[string]bool{} // UIDs of ReplicaSets of this image
	for _, rs := range rss.Items {
		ref := metav1.GetControllerOf(&rs)
		if ref == nil || ref.UID != d.UID {
			return false, fmt.Sprintf("ReplicaSet %s not controlled by the Deployment: %v", rs.Name, rs.OwnerReferences), nil
		}
		if rs.Spec.Template.Spec.Containers[0].Image == image {
			current[string(rs.UID)] = true
		}
	}
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err.Error(), nil
	}
	if len(pods.Items) != replicas {
		return false, fmt.Sprintf("%s; %d pods", status, len(pods.Items)), nil
	}
	for _, p := range pods.Items {
		ref := metav1.GetControllerOf(&p)
		switch {
		case ref == nil || !current[string(ref.UID)]:
			return false, fmt.Sprintf("pod %s owned by %v, not a ReplicaSet of %s", p.Name, p.OwnerReferences, image), nil
		case !slices.Contains(nodes, p.Spec.NodeName):
			return false, fmt.Sprintf("pod %s bound to %q", p.Name, p.Spec.NodeName), nil
		case p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil:
			return false, fmt.Sprintf("pod %s %s (deleting: %v)", p.Name, p.Status.Phase, p.DeletionTimestamp != nil), nil
		case p.Spec.Containers[0].Image != image:
			return false, fmt.Sprintf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image), nil
		}
	}
	return true, status, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
