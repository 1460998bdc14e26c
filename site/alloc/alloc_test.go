package alloc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/registry/core/service/allocator"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/crdt/kube"
	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	"github.com/rhizome-kv/rhizome/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// openSite opens an in-memory replicated store named site.
func openSite(t *testing.T, site string) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.InMemory, cfg.Site, cfg.Replicated = true, site, true
	cfg.Now = func() time.Time { return t0 }
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange ships every change each store lacks from the others until none
// moves, as sync/peer's anti-entropy does.
func exchange(t *testing.T, stores ...*store.Store) {
	t.Helper()
	for moved := true; moved; {
		moved = false
		for _, from := range stores {
			for _, to := range stores {
				if from == to {
					continue
				}
				have := to.VersionVector()
				for origin, seq := range from.VersionVector() {
					if seq <= have[origin] {
						continue
					}
					cs, err := from.Changes(origin, have[origin], 1000)
					if err != nil {
						t.Fatal(err)
					}
					n, err := to.ApplyRemote(context.Background(), cs)
					if err != nil {
						t.Fatal(err)
					}
					moved = moved || n > 0
				}
			}
		}
	}
}

// put writes an object as kube-apiserver's JSON storage encoding would.
func put(t *testing.T, s *store.Store, key string, obj runtime.Object) {
	t.Helper()
	v, err := kube.Encode(obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), func(tx *store.WriteTxn) error {
		return tx.Put([]byte(key), v, 0)
	}); err != nil {
		t.Fatal(err)
	}
}

func svc(name, uid, ip string, nodePort int32, created time.Time) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(uid), CreationTimestamp: metav1.NewTime(created)},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIP: ip, ClusterIPs: []string{ip},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: nodePort},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: nodePort},
			},
		},
	}
}

func ipAddr(ip, parent string) *networkingv1.IPAddress {
	s := &service{svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: parent, UID: "x"}}}
	return ipAddress(netip.MustParseAddr(ip), s)
}

func serviceCIDR(cidr string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", UID: "cidr"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{cidr}}}
}

// nodePortRange is the RangeAllocation with ports set.
func nodePortRange(t *testing.T, ports ...int) *corev1.RangeAllocation {
	bm := allocator.NewAllocationMap(defaultNodePorts.Size, defaultNodePorts.String())
	for _, p := range ports {
		if _, err := bm.Allocate(p - defaultNodePorts.Base); err != nil {
			t.Fatal(err)
		}
	}
	rng, data := bm.Snapshot()
	return &corev1.RangeAllocation{Range: rng, Data: data}
}

func newRepairer(t *testing.T, s *store.Store) *Repairer {
	cfg := DefaultConfig()
	cfg.Site = s.Site()
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	cfg.Logger = slog.New(slog.DiscardHandler)
	r, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	svcA   = "/registry/services/specs/default/web-a"
	svcB   = "/registry/services/specs/default/web-b"
	ranges = "/registry/ranges/servicenodeports"
)

// TestConcurrentAllocations: two sites, cut off, each give 10.96.0.10 and
// NodePort 30080 to a Service of their own; after the heal both sites repair
// at once, and afterwards no address or port is held twice and the sites hold
// identical bytes.
func TestConcurrentAllocations(t *testing.T) {
	a, b := openSite(t, "a"), openSite(t, "b")
	put(t, a, "/registry/servicecidrs/kubernetes", serviceCIDR("10.96.0.0/24"))
	put(t, a, ranges, nodePortRange(t))
	exchange(t, a, b)

	// The cut: each site allocates, as kube-apiserver does (the IPAddress and
	// the bitmap first, then the Service).
	put(t, a, "/registry/ipaddresses/10.96.0.10", ipAddr("10.96.0.10", "web-a"))
	put(t, a, ranges, nodePortRange(t, 30080))
	put(t, a, svcA, svc("web-a", "uid-a", "10.96.0.10", 30080, t0.Add(2*time.Second)))
	put(t, b, "/registry/ipaddresses/10.96.0.10", ipAddr("10.96.0.10", "web-b"))
	put(t, b, ranges, nodePortRange(t, 30080))
	put(t, b, svcB, svc("web-b", "uid-b", "10.96.0.10", 30080, t0.Add(time.Second)))
	exchange(t, a, b)
	if len(duplicates(t, a)) == 0 {
		t.Fatal("the cut made no duplicate to repair")
	}

	ra, rb := newRepairer(t, a), newRepairer(t, b)
	repA, err := ra.RepairOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	repB, err := rb.RepairOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(repA) != 2 || len(repB) != 2 {
		t.Fatalf("repairs: a %+v, b %+v; want a ClusterIP and a NodePort at each", repA, repB)
	}
	for i := range repA {
		if ra, rb := repA[i], repB[i]; ra != rb || ra.Flagged() {
			t.Errorf("the sites repaired differently: %+v, %+v", ra, rb)
		}
	}
	exchange(t, a, b)

	// The IPAddress names the Service whose allocation won; the other moves.
	// The NodePort stays with web-b, created first.
	var owner networkingv1.IPAddress
	get(t, a, "/registry/ipaddresses/10.96.0.10", &owner)
	ipLoser := map[string]string{"web-a": "default/web-b", "web-b": "default/web-a"}[owner.Spec.ParentRef.Name]
	for _, rep := range repA {
		want := map[Kind]string{ClusterIP: ipLoser, NodePort: "default/web-a"}[rep.Kind]
		if rep.Service != want {
			t.Errorf("%s given up by %s, want %s", rep.Kind, rep.Service, want)
		}
	}
	for _, s := range []*store.Store{a, b} {
		if d := duplicates(t, s); len(d) > 0 {
			t.Errorf("site %s after repair: %v", s.Site(), d)
		}
		if rs, err := newRepairer(t, s).RepairOnce(context.Background()); err != nil || len(rs) != 0 {
			t.Errorf("site %s: a second pass repaired %+v (%v)", s.Site(), rs, err)
		}
	}
	sameBytes(t, a, b)
	acceptedByAPI(t, a)
	// Both sites wrote the same Event for each repair: one per repair.
	evs, err := a.Range([]byte("/registry/events/"), store.RangeOptions{End: prefixEnd([]byte("/registry/events/"))})
	if err != nil || len(evs.KVs) != len(repA) {
		t.Errorf("%d Events (%v), want one per repair: %d", len(evs.KVs), err, len(repA))
	}
	for _, s := range []*store.Store{a, b} {
		allocationConflicts(t, s, repA)
	}
}

// allocationConflicts asserts that the store lists each repair as an
// allocation conflict: the Service that gave the value up loses to the one
// that keeps it.
func allocationConflicts(t *testing.T, s *store.Store, reps []Repair) {
	t.Helper()
	cs, err := s.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Conflict
	for _, c := range cs {
		if c.Kind == crdt.Allocation {
			got = append(got, c)
		}
		// Both sites wrote the same repair: equal objects, no conflict.
		for _, rep := range reps {
			if string(c.Key) == "/registry/ipaddresses/"+rep.New || strings.HasPrefix(string(c.Key), "/registry/events/") {
				t.Errorf("site %s: conflict %+v at %s between the sites' identical repairs", s.Site(), c, c.Key)
			}
		}
	}
	if len(got) != len(reps) {
		t.Fatalf("site %s: allocation conflicts %+v, want one per repair %+v", s.Site(), got, reps)
	}
	sites := map[string]string{"default/web-a": "a", "default/web-b": "b"}
	for i, rep := range reps {
		c := got[i]
		if string(c.Key) != "/registry/services/specs/"+rep.Service || c.Loser.Site != sites[rep.Service] ||
			c.Winner.Site != sites[rep.Winner] || !strings.Contains(c.Detail, rep.Held) || !strings.Contains(c.Detail, rep.New) {
			t.Errorf("site %s: conflict %+v (%s) for repair %+v", s.Site(), c, c.Detail, rep)
		}
	}
}

// acceptedByAPI asserts that kube-apiserver's validation accepts every object
// a site holds.
func acceptedByAPI(t *testing.T, s *store.Store) {
	t.Helper()
	res, err := s.Range([]byte("/registry/"), store.RangeOptions{End: prefixEnd([]byte("/registry/"))})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range res.KVs {
		if err := validate.Object(kv.Value); err != nil {
			t.Errorf("%s: %v", kv.Key, err)
		}
	}
}

// get decodes the object at key.
func get(t *testing.T, s *store.Store, key string, into runtime.Object) {
	t.Helper()
	res, err := s.Range([]byte(key), store.RangeOptions{})
	if err != nil || len(res.KVs) != 1 {
		t.Fatalf("%s at %s: %v %v", key, s.Site(), res.KVs, err)
	}
	if err := kube.Decode(res.KVs[0].Value, into); err != nil {
		t.Fatal(err)
	}
}

// duplicates lists what breaks Kubernetes' uniqueness: a ClusterIP or NodePort
// held by two Services, a ClusterIP whose IPAddress names another Service, a
// NodePort missing from the bitmap.
func duplicates(t *testing.T, s *store.Store) []string {
	t.Helper()
	res, err := s.Range([]byte("/registry/services/specs/"), store.RangeOptions{End: prefixEnd([]byte("/registry/services/specs/"))})
	if err != nil {
		t.Fatal(err)
	}
	var ra corev1.RangeAllocation
	get(t, s, ranges, &ra)
	bm := allocator.NewAllocationMap(defaultNodePorts.Size, ra.Range)
	if err := bm.Restore(ra.Range, ra.Data); err != nil {
		t.Fatal(err)
	}
	held := map[string]string{}
	var out []string
	for _, kv := range res.KVs {
		var sv corev1.Service
		if err := kube.Decode(kv.Value, &sv); err != nil {
			t.Fatal(err)
		}
		if sv.Spec.ClusterIP != sv.Spec.ClusterIPs[0] {
			out = append(out, fmt.Sprintf("%s: clusterIP %s, clusterIPs %v", sv.Name, sv.Spec.ClusterIP, sv.Spec.ClusterIPs))
		}
		vals := []string{sv.Spec.ClusterIP}
		for _, p := range servicePorts(&sv) {
			vals = append(vals, strconv.Itoa(p))
			if !bm.Has(p - defaultNodePorts.Base) {
				out = append(out, fmt.Sprintf("NodePort %d of %s not in the bitmap", p, sv.Name))
			}
		}
		for _, v := range vals {
			if other, dup := held[v]; dup {
				out = append(out, fmt.Sprintf("%s held by %s and %s", v, other, sv.Name))
			}
			held[v] = sv.Name
		}
		var ip networkingv1.IPAddress
		get(t, s, "/registry/ipaddresses/"+sv.Spec.ClusterIP, &ip)
		if ip.Spec.ParentRef.Name != sv.Name {
			out = append(out, fmt.Sprintf("IPAddress %s names %s, not %s", ip.Name, ip.Spec.ParentRef.Name, sv.Name))
		}
	}
	return out
}

// sameBytes asserts that two sites hold the same keys with the same values.
func sameBytes(t *testing.T, a, b *store.Store) {
	t.Helper()
	all := store.RangeOptions{End: []byte{0}}
	ka, err := a.Range([]byte{0}, all)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Range([]byte{0}, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(ka.KVs) != len(kb.KVs) {
		t.Fatalf("a holds %d keys, b %d", len(ka.KVs), len(kb.KVs))
	}
	for i := range ka.KVs {
		x, y := ka.KVs[i], kb.KVs[i]
		if !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) {
			t.Errorf("sites differ at %s / %s:\n%s\n%s", x.Key, y.Key, x.Value, y.Value)
		}
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Error("digests differ")
	}
}

// TestStalePlanNotApplied: a plan is written only if the keys it writes are as
// it read them; RepairOnce then plans again from the new state.
func TestStalePlanNotApplied(t *testing.T) {
	a := openSite(t, "a")
	put(t, a, "/registry/servicecidrs/kubernetes", serviceCIDR("10.96.0.0/24"))
	put(t, a, "/registry/ipaddresses/10.96.0.10", ipAddr("10.96.0.10", "web-a"))
	put(t, a, svcA, svc("web-a", "uid-a", "10.96.0.10", 0, t0))
	put(t, a, svcB, svc("web-b", "uid-b", "10.96.0.10", 0, t0.Add(time.Second)))
	r := newRepairer(t, a)
	st, err := r.read()
	if err != nil {
		t.Fatal(err)
	}
	plan := Compute("/registry/", st)
	if len(plan.Writes) != 2 {
		t.Fatalf("plan %+v", plan)
	}
	moved := svc("web-b", "uid-b", "10.96.0.10", 0, t0.Add(time.Second))
	moved.Labels = map[string]string{"edited": "meanwhile"}
	put(t, a, svcB, moved)
	if err := r.apply(context.Background(), plan, nil); !errors.Is(err, errStale) {
		t.Fatalf("stale plan applied: %v", err)
	}
	reps, err := r.RepairOnce(context.Background())
	if err != nil || len(reps) != 1 || reps[0].Service != "default/web-b" {
		t.Fatalf("repair after the edit: %+v %v", reps, err)
	}
	var got corev1.Service
	get(t, a, svcB, &got)
	if got.Labels["edited"] != "meanwhile" || got.Spec.ClusterIP == "10.96.0.10" {
		t.Errorf("web-b after the repair: labels %v, clusterIP %s", got.Labels, got.Spec.ClusterIP)
	}
}
