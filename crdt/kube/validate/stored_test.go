package validate_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/stored/ from what a real kube-apiserver stores")

// perKind is how many stored objects of one kind -update keeps.
const perKind = 2

// TestStoredByKubeAPIServer applies testdata/manifests.yaml to a real
// kube-apiserver v1.36.3 (with its controllers, its scheduler and
// kubelet-less nodes) storing JSON in a real etcd, and checks that every
// value it stored, of any kind, passes Object, and that every kind of
// coveredKinds was stored. With -update it writes a few objects of each
// covered kind to testdata/stored/, the goldens of the other tests.
func TestStoredByKubeAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Kubernetes control plane (a minute or more); not in -short")
	}
	values := storedByKubeAPIServer(t)
	seen := map[string][]string{} // kind -> keys
	for key, value := range values {
		if err := validate.Object(value); err != nil {
			t.Errorf("%s: stored by kube-apiserver, rejected: %v", key, err)
		}
		var tm metav1.TypeMeta
		if json.Unmarshal(value, &tm) == nil {
			seen[kindOf(tm)] = append(seen[kindOf(tm)], key)
		}
	}
	for _, kind := range coveredKinds {
		if len(seen[kind]) == 0 {
			t.Errorf("kube-apiserver stored no %s; testdata/manifests.yaml should make one", kind)
		}
	}
	if *update && !t.Failed() {
		writeGoldens(t, values, seen)
	}
}

// storedByKubeAPIServer runs the control plane, applies the manifests,
// waits until the controllers have filled in statuses, and returns every
// value under /registry/ by key.
func storedByKubeAPIServer(t *testing.T) map[string][]byte {
	cfg := kube.DefaultConfig()
	cfg.Datastore = kube.Etcd
	cfg.Encoding = kube.JSON
	cfg.EtcdBinary, _ = testbin.Etcd(t)
	cfg.Kube = testbin.Kube(t)
	cfg.UnsafeNoFsync = true
	c := kube.Start(t, cfg)
	kube.StartNodes(t, c.Client, kube.DefaultNodesConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := c.Kubectl(ctx, "apply", "-f", filepath.Join("testdata", "manifests.yaml")); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	waitReady(ctx, t, c)
	resp, err := c.DatastoreClient(t).Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]byte{}
	for _, kv := range resp.Kvs {
		values[string(kv.Key)] = kv.Value
	}
	return values
}

// waitReady waits until the web Deployment is rolled out and ready, so its
// status and its pods' statuses are what a running cluster stores.
func waitReady(ctx context.Context, t *testing.T, c *kube.Cluster) {
	for {
		d, err := c.Client.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == 3 && d.Status.AvailableReplicas == 3 {
			time.Sleep(5 * time.Second) // endpoints, slices, HPA and PDB status follow
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment shop/web not ready: %v (last error %v)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// writeGoldens replaces testdata/stored/ with up to perKind values of each
// covered kind, objects in namespace shop first.
func writeGoldens(t *testing.T, values map[string][]byte, seen map[string][]string) {
	dir := filepath.Join("testdata", "stored")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kind := range coveredKinds {
		keys := seen[kind]
		sort.Slice(keys, func(i, j int) bool {
			si, sj := strings.Contains(keys[i], "/shop/"), strings.Contains(keys[j], "/shop/")
			if si != sj {
				return si
			}
			return keys[i] < keys[j]
		})
		for i, key := range keys[:min(perKind, len(keys))] {
			name := fmt.Sprintf("%s-%d.json", strings.ToLower(strings.ReplaceAll(kind, ".", "_")), i+1)
			if err := os.WriteFile(filepath.Join(dir, name), values[key], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
