package site

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// TestAllocationRepairWired: two real sites; a Service at each holds the same
// ClusterIP and NodePort (as after a cut). The sites' repairers, woken by the
// watch hub, leave every address and port held once, the same at both sites.
func TestAllocationRepairWired(t *testing.T) {
	sites := startSites(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c0, c1 := client(t, sites[0]), client(t, sites[1])
	put := func(c *clientv3.Client, key string, obj runtime.Object) {
		v, err := kube.Encode(obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Put(ctx, key, string(v)); err != nil {
			t.Fatal(err)
		}
	}
	service := func(name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: k8stypes.UID("uid-" + name)},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
				Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}}},
		}
	}
	put(c0, "/registry/servicecidrs/kubernetes", &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/24"}}})
	put(c0, "/registry/services/specs/default/a", service("a"))
	put(c1, "/registry/services/specs/default/b", service("b"))

	held := func(c *clientv3.Client) (map[string]int, string) {
		res, err := c.Get(ctx, "/registry/services/specs/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		n, all := map[string]int{}, ""
		for _, kv := range res.Kvs {
			var s corev1.Service
			if err := kube.Decode(kv.Value, &s); err != nil {
				t.Fatal(err)
			}
			n[s.Spec.ClusterIP]++
			n[fmt.Sprint(s.Spec.Ports[0].NodePort)]++
			all += string(kv.Value)
		}
		return n, all
	}
	for {
		n0, all0 := held(c0)
		_, all1 := held(c1)
		dup := false
		for _, k := range n0 {
			dup = dup || k > 1
		}
		if !dup && len(n0) == 4 && all0 == all1 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("duplicates remain or sites differ: %v\n%s\n%s", n0, all0, all1)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
