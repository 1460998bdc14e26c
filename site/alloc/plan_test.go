package alloc

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

func obj(t *testing.T, key string, o runtime.Object, rev int64) Object {
	t.Helper()
	v, err := kube.Encode(o)
	if err != nil {
		t.Fatal(err)
	}
	return Object{Key: key, Value: v, ModRevision: rev}
}

func TestComputeRules(t *testing.T) {
	older, newer := svc("web-a", "uid-a", "10.96.0.10", 30080, t0), svc("web-b", "uid-b", "10.96.0.10", 30080, t0.Add(time.Second))
	services := []Object{obj(t, svcA, older, 5), obj(t, svcB, newer, 6)}
	ipNamesB := []Object{obj(t, "/registry/ipaddresses/10.96.0.10", ipAddr("10.96.0.10", "web-b"), 3)}
	cidr := func(c string) []Object {
		return []Object{obj(t, "/registry/servicecidrs/kubernetes", serviceCIDR(c), 1)}
	}
	np := obj(t, ranges, nodePortRange(t, 30080), 4)

	t.Run("parentRef beats age for ClusterIPs, age decides NodePorts", func(t *testing.T) {
		p := Compute("/registry/", State{Services: services, IPAddresses: ipNamesB, ServiceCIDRs: cidr("10.96.0.0/24"), NodePorts: &np})
		if len(p.Repairs) != 2 || p.Repairs[0].Service != "default/web-a" || p.Repairs[1].Service != "default/web-b" {
			t.Fatalf("repairs %+v", p.Repairs)
		}
		if p.Read[svcA] != 5 || p.Read[svcB] != 6 || p.Read[ranges] != 4 {
			t.Errorf("read set %v", p.Read)
		}
		if ip := "/registry/ipaddresses/" + p.Repairs[0].New; p.Read[ip] != 0 || !slices.ContainsFunc(p.Writes, func(w Write) bool { return w.Key == ip }) {
			t.Errorf("no IPAddress created for %s", ip)
		}
	})
	t.Run("the same state plans the same, whatever the order", func(t *testing.T) {
		st := State{Services: services, IPAddresses: ipNamesB, ServiceCIDRs: cidr("10.96.0.0/24"), NodePorts: &np}
		rev := State{Services: []Object{services[1], services[0]}, IPAddresses: ipNamesB, ServiceCIDRs: cidr("10.96.0.0/24"), NodePorts: &np}
		p1, p2 := Compute("/registry/", st), Compute("/registry/", rev)
		if !slices.EqualFunc(p1.Writes, p2.Writes, func(a, b Write) bool { return a.Key == b.Key && string(a.Value) == string(b.Value) }) ||
			!slices.Equal(p1.Repairs, p2.Repairs) || len(p1.Writes) != 4 {
			t.Errorf("plans differ:\n%+v\n%+v", p1, p2)
		}
	})
	t.Run("no free address: flagged, nothing written for it", func(t *testing.T) {
		// A /30 has two usable addresses: .1 and .2; both taken.
		full := []Object{obj(t, svcA, svc("web-a", "uid-a", "10.0.0.1", 0, t0), 1), obj(t, svcB, svc("web-b", "uid-b", "10.0.0.1", 0, t0), 2),
			obj(t, "/registry/services/specs/default/web-c", svc("web-c", "uid-c", "10.0.0.2", 0, t0), 3)}
		ips := []Object{obj(t, "/registry/ipaddresses/10.0.0.1", ipAddr("10.0.0.1", "web-a"), 4),
			obj(t, "/registry/ipaddresses/10.0.0.2", ipAddr("10.0.0.2", "web-c"), 5)}
		p := Compute("/registry/", State{Services: full, IPAddresses: ips, ServiceCIDRs: cidr("10.0.0.0/30")})
		if len(p.Repairs) != 1 || !p.Repairs[0].Flagged() || p.Repairs[0].Service != "default/web-b" || len(p.Writes) != 0 {
			t.Errorf("plan %+v", p)
		}
		p = Compute("/registry/", State{Services: full})
		if len(p.Repairs) != 1 || !p.Repairs[0].Flagged() {
			t.Errorf("without a ServiceCIDR: %+v", p)
		}
	})
	t.Run("an address whose IPAddress was deleted under its Service gets it back", func(t *testing.T) {
		// kube-apiserver's repair loop deletes a re-allocation's IPAddress
		// when its IPAddress informer is ahead of its Service informer.
		moved := []Object{obj(t, svcA, svc("web-a", "uid-a", "10.96.0.10", 0, t0), 1),
			obj(t, svcB, svc("web-b", "uid-b", "10.96.0.215", 0, t0), 2),
			obj(t, "/registry/services/specs/default/out", svc("out", "uid-o", "10.1.0.1", 0, t0), 3)}
		p := Compute("/registry/", State{Services: moved, ServiceCIDRs: cidr("10.96.0.0/24")})
		if len(p.Repairs) != 0 || len(p.Writes) != 2 {
			t.Fatalf("plan %+v, want the IPAddresses of web-a and web-b (not of out, outside every ServiceCIDR)", p)
		}
		for i, want := range []struct{ ip, parent string }{{"10.96.0.10", "web-a"}, {"10.96.0.215", "web-b"}} {
			key := "/registry/ipaddresses/" + want.ip
			var ip networkingv1.IPAddress
			if w := p.Writes[i]; w.Key != key || p.Read[key] != 0 || kube.Decode(w.Value, &ip) != nil || ip.Spec.ParentRef.Name != want.parent {
				t.Errorf("write %d: %s %s (read at %d), want %s naming %s", i, w.Key, w.Value, p.Read[w.Key], key, want.parent)
			}
		}
		if p := Compute("/registry/", State{Services: moved}); len(p.Writes) != 0 {
			t.Errorf("without ServiceCIDRs (no IPAddress allocator): %+v", p)
		}
	})
	t.Run("a port missing from the merged bitmap is added back", func(t *testing.T) {
		empty := obj(t, ranges, nodePortRange(t), 4)
		p := Compute("/registry/", State{Services: services[:1], NodePorts: &empty})
		if len(p.Writes) != 1 || p.Writes[0].Key != ranges || len(p.Repairs) != 0 {
			t.Fatalf("plan %+v", p)
		}
		held := obj(t, ranges, nodePortRange(t, 30080), 4)
		if string(p.Writes[0].Value) != string(held.Value) {
			t.Errorf("bitmap written %s, want %s", p.Writes[0].Value, held.Value)
		}
	})
}

func TestFreeAddr(t *testing.T) {
	c := netip.MustParsePrefix("fd00::/120")
	taken := map[netip.Addr]bool{}
	a, ok := freeAddr(c, 0, taken)
	if !ok || !c.Contains(a) || a.String() != "fd00::11" {
		t.Errorf("first free of %s from seed 0: %s %v, want fd00::11 (after the static band)", c, a, ok)
	}
}

// BenchmarkCompute: a pass over 5,000 Services with their IPAddresses and no
// duplicate (what every pass after a change of a Service costs).
func BenchmarkCompute(b *testing.B) {
	t := &testing.T{}
	var st State
	st.ServiceCIDRs = []Object{obj(t, "/registry/servicecidrs/kubernetes", serviceCIDR("10.96.0.0/16"), 1)}
	for i := range 5000 {
		ip := addrAt(netip.MustParseAddr("10.96.0.0"), uint64(1+i)).String()
		name := fmt.Sprintf("s%d", i)
		np := int32(0)
		if i < 2768 {
			np = int32(30000 + i)
		}
		st.Services = append(st.Services, obj(t, "/registry/services/specs/default/"+name, svc(name, "u"+name, ip, np, t0), 1))
		st.IPAddresses = append(st.IPAddresses, obj(t, "/registry/ipaddresses/"+ip, ipAddr(ip, name), 1))
	}
	b.ResetTimer()
	for b.Loop() {
		if p := Compute("/registry/", st); len(p.Repairs) != 0 {
			b.Fatalf("repairs %+v", p.Repairs[0])
		}
	}
}
