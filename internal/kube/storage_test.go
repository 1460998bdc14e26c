package kube_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

// testEvents: Events are written with a lease of --event-ttl and vanish
// when it expires, which watchers see as a deletion.
func testEvents(t *testing.T, c *kube.Cluster) {
	ctx := t.Context()
	const ns = "events"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	db := c.DatastoreClient(t)
	ttl := int64(c.Config.EventTTL / time.Second)

	// One Event through each API; both are stored under /registry/events.
	now := time.Now()
	core, err := c.Client.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "core-event"},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: "x", APIVersion: "v1"},
		Reason:         "Testing",
		Message:        "written through core/v1",
		Type:           corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "e2e"},
		FirstTimestamp: metav1.NewTime(now),
		LastTimestamp:  metav1.NewTime(now),
		Count:          1,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "events-event"},
		EventTime:           metav1.NewMicroTime(now),
		Regarding:           corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: "x", APIVersion: "v1"},
		Reason:              "Testing",
		Note:                "written through events.k8s.io/v1",
		Type:                corev1.EventTypeNormal,
		Action:              "Test",
		ReportingController: "rhizome.dev/e2e",
		ReportingInstance:   "e2e-1",
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	watcher, err := c.Client.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: core.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()

	for _, name := range []string{"core-event", "events-event"} {
		if _, err := c.Client.CoreV1().Events(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("event %s right after its creation: %v", name, err)
		}
		key := "/registry/events/" + ns + "/" + name
		resp, err := db.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
			t.Fatalf("datastore %s = %v, want one key with a lease", key, resp.Kvs)
		}
		ttlResp, err := db.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease), clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		// The apiserver grants --event-ttl plus a reuse margin of 5% of it,
		// whole seconds, so exactly the TTL for short ones.
		if ttlResp.GrantedTTL != ttl+ttl/20 {
			t.Errorf("lease of %s granted for %ds, want %ds", key, ttlResp.GrantedTTL, ttl+ttl/20)
		}
		found := false
		for _, k := range ttlResp.Keys {
			found = found || string(k) == key
		}
		if !found {
			t.Errorf("lease %x of %s lists attached keys %q, not it", resp.Kvs[0].Lease, key, ttlResp.Keys)
		}
	}

	waitFor(t, c.Config.EventTTL+30*time.Second, "events to expire", func(ctx context.Context) (bool, string, error) {
		list, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return len(list.Items) == 0, fmt.Sprintf("%d events", len(list.Items)), nil
	})
	// A lease expires no sooner than its TTL after it was granted, which
	// was after now.
	if gone := time.Since(now); gone < c.Config.EventTTL {
		t.Errorf("events gone %v after creation, before their TTL %v", gone, c.Config.EventTTL)
	}
	if _, err := c.Client.CoreV1().Events(ns).Get(ctx, "core-event", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of expired event: err = %v, want NotFound", err)
	}
	// Watchers see an expiry as the deletion it is.
	seen := map[string]watch.EventType{}
	deadline := time.After(30 * time.Second)
	for seen["core-event"] != watch.Deleted || seen["events-event"] != watch.Deleted {
		select {
		case ev, ok := <-watcher.ResultChan():
			if !ok {
				t.Fatalf("watch closed; saw %v", seen)
			}
			if e, isEvent := ev.Object.(*corev1.Event); isEvent {
				seen[e.Name] = ev.Type
			}
		case <-deadline:
			t.Fatalf("no deletions of both events in the watch within 30s; saw %v", seen)
		}
	}
	if out, err := c.Kubectl(ctx, "get", "events", "-n", ns, "-o", "name"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("kubectl get events after expiry: %q, %v; want nothing", out, err)
	}
}

// testCompaction: kube-apiserver's own compactor compacts the datastore
// every --etcd-compaction-interval, after which lists at older
// resourceVersions fail with 410 Gone, as on etcd: from the watch cache
// (ConfigMaps) and from the datastore itself (the uncached PodTemplates,
// whose watches from a compacted revision fail too).
func testCompaction(t *testing.T, c *kube.Cluster) {
	ctx := t.Context()
	const ns = "compact"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	selector := "scenario=compact"
	label := map[string]string{"scenario": "compact"}
	type before struct {
		k    resourceKind
		rv   string // of a first page
		cont string // its continue token
	}
	var olds []before
	for _, k := range coreKinds() {
		res := c.Dynamic.Resource(k.gvr).Namespace(ns)
		for _, name := range []string{"c1", "c2", "c3"} {
			if _, err := res.Create(ctx, k.newObject(name, "0", label), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// A first page and an exact list, both at the current revision.
		page, err := res.List(ctx, metav1.ListOptions{Limit: 1, LabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		old := before{k, page.GetResourceVersion(), page.GetContinue()}
		if old.cont == "" {
			t.Fatalf("%s: a list of 3 with limit 1 gave no continue token", k.gvr.Resource)
		}
		exact := metav1.ListOptions{ResourceVersion: old.rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact, LabelSelector: selector}
		if list, err := res.List(ctx, exact); err != nil {
			t.Fatalf("%s: exact list at %s before compaction: %v", k.gvr.Resource, old.rv, err)
		} else if len(list.Items) != 3 {
			t.Errorf("%s: exact list at %s has %d items, want 3", k.gvr.Resource, old.rv, len(list.Items))
		}
		// Something to compact away.
		for i := range 3 {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"v":"%d"}}}`, i+1)
			if _, err := res.Patch(ctx, "c1", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		olds = append(olds, old)
	}

	// Beneath the apiserver: its compactor records the revision it will
	// compact to in compact_rev_key and compacts to it one interval later.
	last := olds[len(olds)-1]
	rev, err := strconv.ParseInt(last.rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q is not an etcd revision: %v", last.rv, err)
	}
	// A watch from resourceVersion R starts at revision R+1, which etcd serves
	// while it is the compacted revision itself: so wait until R+1 is
	// compacted too, not R alone.
	db := c.DatastoreClient(t)
	waitFor(t, 3*c.Config.CompactionInterval+30*time.Second, "the datastore compacted past "+last.rv+"+1", func(ctx context.Context) (bool, string, error) {
		key, err := db.Get(ctx, "compact_rev_key")
		if err != nil {
			return false, err.Error(), nil
		}
		_, err = db.Get(ctx, "/registry/"+last.k.gvr.Resource+"/"+ns+"/c1", clientv3.WithRev(rev+1))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return true, "", nil
		}
		return false, fmt.Sprintf("compact_rev_key %v; get at %d: %v", key.Kvs, rev+1, err), nil
	})

	gone := func(err error) bool { return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) }
	for _, old := range olds {
		t.Run(old.k.gvr.Resource, func(t *testing.T) {
			res := c.Dynamic.Resource(old.k.gvr).Namespace(ns)
			exact := metav1.ListOptions{ResourceVersion: old.rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact, LabelSelector: selector}
			// The watch cache learns of the compaction within its 15s poll
			// and then stops serving from the older snapshots too.
			waitFor(t, time.Minute, "410 Gone for the exact list and the continue token at "+old.rv, func(ctx context.Context) (bool, string, error) {
				_, errExact := res.List(ctx, exact)
				_, errCont := res.List(ctx, metav1.ListOptions{Limit: 1, Continue: old.cont, LabelSelector: selector})
				return gone(errExact) && gone(errCont), fmt.Sprintf("exact: %v; continue: %v", errExact, errCont), nil
			})
			// A current list and a list from the watch cache still work.
			for _, opts := range []metav1.ListOptions{{LabelSelector: selector}, {LabelSelector: selector, ResourceVersion: "0"}} {
				list, err := res.List(ctx, opts)
				if err != nil {
					t.Errorf("list %+v after compaction: %v", opts, err)
				} else if len(list.Items) != 3 {
					t.Errorf("list %+v after compaction has %d items, want 3", opts, len(list.Items))
				}
			}
			// kubectl shows the expired token as the 410 it is.
			_, err = c.Kubectl(ctx, "get", "--raw", "/api/v1/namespaces/"+ns+"/"+old.k.gvr.Resource+"?limit=1&continue="+url.QueryEscape(old.cont))
			if err == nil || !regexp.MustCompile(`(?i)expired|too old|410|gone`).MatchString(err.Error()) {
				t.Errorf("kubectl get --raw with the compacted continue token: %v, want 410", err)
			}
			if old.k.gvr.Resource != uncachedResource {
				return // the watch cache serves watches from its own window
			}
			// A watch from a compacted revision is refused by the datastore,
			// which the apiserver passes on as a 410 error event.
			w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: old.rv, LabelSelector: selector})
			if err != nil {
				if !gone(err) {
					t.Errorf("watch from compacted %s: %v, want 410", old.rv, err)
				}
				return
			}
			defer w.Stop()
			select {
			case ev, ok := <-w.ResultChan():
				st, isStatus := ev.Object.(*metav1.Status)
				if !ok || ev.Type != watch.Error || !isStatus || st.Code != 410 {
					t.Errorf("first event of a watch from compacted %s: %s %+v (open: %v), want an Error with code 410", old.rv, ev.Type, ev.Object, ok)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("a watch from compacted %s got nothing in 30s, want a 410 error", old.rv)
			}
		})
	}
}
