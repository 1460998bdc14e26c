package kube_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

// testNoOpUpdate: an update that changes nothing is no write, as on etcd:
// kube-apiserver compares the object it would store with the bytes it read
// and, when they are equal, answers with the stored object, its
// resourceVersion unchanged (and no watcher sees an event). This holds only
// when the datastore serves back the bytes kube-apiserver stored, in the
// encoding it stores.
func testNoOpUpdate(t *testing.T, c *kube.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cms := c.Client.CoreV1().ConfigMaps("default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "noop-update", Labels: map[string]string{"app": "noop"}},
		Data: map[string]string{"k": "v"}}
	created, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cms.Delete(context.Background(), cm.Name, metav1.DeleteOptions{}) })
	changed := created.DeepCopy()
	changed.Data["k"] = "w"
	updated, err := cms.Update(ctx, changed, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		got, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		again, err := cms.Update(ctx, got, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if again.ResourceVersion != updated.ResourceVersion {
			t.Fatalf("no-op update %d moved the resourceVersion %s -> %s", i, updated.ResourceVersion, again.ResourceVersion)
		}
	}
}
