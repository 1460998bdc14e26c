package site

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// startAPIServer runs an unmodified kube-apiserver on site s, with a static
// admin token, and returns a client of it.
func startAPIServer(t *testing.T, bin string, s *Site) *kubernetes.Clientset {
	t.Helper()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte("admin-token,admin,1,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := testbin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path, cfg.LogPath = "kube-apiserver", bin, filepath.Join(dir, "kube-apiserver.log")
	cfg.Args = []string{
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + port,
		"--cert-dir=" + dir, "--etcd-servers=" + s.ClientURLs()[0],
		"--service-cluster-ip-range=10.96.0.0/24", "--service-node-port-range=30000-32767",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey, "--token-auth-file=" + tokens,
		"--authorization-mode=RBAC", "--enable-priority-and-fairness=false", "--profiling=false",
		"--endpoint-reconciler-type=none",
	}
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(cfg.LogPath); err == nil {
				t.Logf("%s log tail:\n%s", s.cfg.Name, tail(b, 3000))
			}
		}
	})
	c, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:" + port, BearerToken: "admin-token",
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		if _, err := c.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err == nil {
			return c
		} else if ctx.Err() != nil {
			t.Fatalf("kube-apiserver on %s not ready: %v", s.cfg.Name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail(b []byte, n int) []byte { return b[max(0, len(b)-n):] }

// TestAllocationRepairKubeAPIServers: two sites, apart, each with its own
// unmodified kube-apiserver, each create a Service asking for ClusterIP
// 10.96.0.50 and NodePort 30080. After the sites meet, both apiservers list
// the two Services with distinct addresses and ports (the same at both), the
// IPAddress of each address names its Service, and the moved Service takes an
// update through the API.
func TestAllocationRepairKubeAPIServers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two kube-apiservers")
	}
	bins := testbin.Kube(t)
	var sites []*Site
	for _, name := range []string{"east", "west"} {
		sites = append(sites, startSitesWith(t, 1, "", func(c *Config) { c.Name = name })[0])
	}
	clients := []*kubernetes.Clientset{startAPIServer(t, bins.APIServer, sites[0]), startAPIServer(t, bins.APIServer, sites[1])}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i, name := range []string{"web-east", "web-west"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.50",
				Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080}}}}
		if _, err := clients[i].CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	if err := sites[1].Gossip.Join([]string{sites[0].cfg.GossipAddr}); err != nil {
		t.Fatal(err)
	}
	joined := time.Now()

	// held lists what each Service holds: its address and its port.
	held := func(c *kubernetes.Clientset) ([2][2]string, error) {
		var out [2][2]string
		for i, name := range []string{"web-east", "web-west"} {
			s, err := c.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return out, err
			}
			out[i] = [2]string{s.Spec.ClusterIP, fmt.Sprint(s.Spec.Ports[0].NodePort)}
		}
		return out, nil
	}
	var last [2][2]string
	for {
		a, errA := held(clients[0])
		b, errB := held(clients[1])
		last = a
		if errA == nil && errB == nil && a == b && a[0][0] != a[1][0] && a[0][1] != a[1][1] {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not repaired: east %v (%v), west %v (%v)", a, errA, b, errB)
		}
		time.Sleep(time.Second)
	}
	t.Logf("both apiservers list the repaired Services %v after the join", time.Since(joined).Round(time.Millisecond))
	for _, c := range clients {
		for _, name := range []string{"web-east", "web-west"} {
			s, err := c.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A site applies another site's changes key by key, so the
			// Service's new address can show before its IPAddress does.
			var ip *networkingv1.IPAddress
			for {
				ip, err = c.NetworkingV1().IPAddresses().Get(ctx, s.Spec.ClusterIP, metav1.GetOptions{})
				if err == nil && ip.Spec.ParentRef.Name == name || ctx.Err() != nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil || ip.Spec.ParentRef.Name != name {
				t.Errorf("IPAddress of %s's %s: %v %v; the site holds %s", name, s.Spec.ClusterIP, ip, err, ipAddresses(c))
			}
			// As a controller does: a merge may have changed the Service since
			// it was read (a 409 then), so read it again and retry.
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				s, err := c.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				s.Labels = map[string]string{"touched": "yes"}
				_, err = c.CoreV1().Services("default").Update(ctx, s, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				t.Errorf("update %s after the repair: %v", name, err)
			}
		}
	}
	t.Logf("after the repair (address, port): web-east %v, web-west %v; IPAddresses and updates checked %v after the join",
		last[0], last[1], time.Since(joined).Round(time.Millisecond))
}

// ipAddresses lists the IPAddress objects an apiserver serves, with the
// Service each names, for a failure message.
func ipAddresses(c *kubernetes.Clientset) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.NetworkingV1().IPAddresses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ip := range list.Items {
		out = append(out, ip.Name+"->"+ip.Spec.ParentRef.Name+" (uid "+string(ip.UID)+")")
	}
	return fmt.Sprint(out)
}
