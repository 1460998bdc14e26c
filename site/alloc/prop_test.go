package alloc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// TestComputeProperty: random states with Services sharing ClusterIPs (IPv4 and
// IPv6) and NodePorts, IPAddresses naming some of them. After applying the plan,
// nothing is held twice (unless the plan flagged it), every moved address has
// its IPAddress, and planning again writes nothing: the repair is a fixpoint.
func TestComputeProperty(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			st := randomState(t, rng)
			p := Compute("/registry/", st)
			flagged := slices.ContainsFunc(p.Repairs, Repair.Flagged)
			after := applyPlan(st, p)
			if d := stateDuplicates(t, after, p.Repairs); len(d) > 0 && !flagged {
				t.Fatalf("after the plan: %v\nrepairs %+v", d, p.Repairs)
			}
			if again := Compute("/registry/", after); len(again.Writes) != 0 {
				t.Fatalf("a second plan writes %d values: %+v", len(again.Writes), again.Repairs)
			}
		})
	}
}

func randomState(t *testing.T, rng *rand.Rand) State {
	var st State
	st.ServiceCIDRs = []Object{obj(t, "/registry/servicecidrs/kubernetes", serviceCIDR("10.96.0.0/27"), 1)}
	v6 := serviceCIDR("fd00::/124")
	v6.Name = "v6"
	st.ServiceCIDRs = append(st.ServiceCIDRs, obj(t, "/registry/servicecidrs/v6", v6, 1))
	ports := []int{30000 + rng.IntN(2768), 30000 + rng.IntN(2768)}
	parented := map[string]bool{}
	for i := range 2 + rng.IntN(12) {
		name := fmt.Sprintf("s%d", i)
		ip := fmt.Sprintf("10.96.0.%d", 1+rng.IntN(6))
		s := svc(name, fmt.Sprintf("uid-%d", rng.IntN(1000)), ip, int32(ports[rng.IntN(2)]), t0.Add(time.Duration(rng.IntN(3))*time.Second))
		if rng.IntN(3) == 0 {
			s.Spec.ClusterIPs = append(s.Spec.ClusterIPs, fmt.Sprintf("fd00::%x", 1+rng.IntN(4)))
			s.Spec.IPFamilies = append(s.Spec.IPFamilies, corev1.IPv6Protocol)
		}
		st.Services = append(st.Services, obj(t, "/registry/services/specs/default/"+name, s, int64(10+i)))
		for _, ip := range s.Spec.ClusterIPs {
			if !parented[ip] && rng.IntN(2) == 0 {
				parented[ip] = true
				st.IPAddresses = append(st.IPAddresses, obj(t, "/registry/ipaddresses/"+ip, ipAddr(ip, name), 5))
			}
		}
	}
	np := obj(t, ranges, nodePortRange(t, ports[0]), 4)
	st.NodePorts = &np
	return st
}

// applyPlan returns the state with the plan's writes made (at revision 100).
func applyPlan(st State, p Plan) State {
	set := func(objs []Object, w Write) []Object {
		o := Object{Key: w.Key, Value: w.Value, ModRevision: 100}
		if i := slices.IndexFunc(objs, func(x Object) bool { return x.Key == w.Key }); i >= 0 {
			objs[i] = o
			return objs
		}
		return append(objs, o)
	}
	out := State{Services: slices.Clone(st.Services), IPAddresses: slices.Clone(st.IPAddresses), ServiceCIDRs: st.ServiceCIDRs, NodePorts: st.NodePorts}
	for _, w := range p.Writes {
		switch {
		case w.Key == ranges:
			out.NodePorts = &Object{Key: w.Key, Value: w.Value, ModRevision: 100}
		case len(w.Key) > len("/registry/ipaddresses/") && w.Key[:len("/registry/ipaddresses/")] == "/registry/ipaddresses/":
			out.IPAddresses = set(out.IPAddresses, w)
		default:
			out.Services = set(out.Services, w)
		}
	}
	return out
}

// stateDuplicates lists values held by two Services, and addresses the repairs
// gave without an IPAddress naming their Service.
func stateDuplicates(t *testing.T, st State, reps []Repair) []string {
	var out []string
	owner := map[string]string{}
	ipObjs := map[string]string{}
	for _, o := range st.IPAddresses {
		var ip networkingv1.IPAddress
		if err := kube.Decode(o.Value, &ip); err != nil {
			t.Fatal(err)
		}
		ipObjs[ip.Name] = ip.Spec.ParentRef.Namespace + "/" + ip.Spec.ParentRef.Name
	}
	for _, r := range reps {
		if r.Kind == ClusterIP && !r.Flagged() && ipObjs[r.New] != r.Service {
			out = append(out, fmt.Sprintf("%s given to %s; its IPAddress names %q", r.New, r.Service, ipObjs[r.New]))
		}
	}
	for _, o := range st.Services {
		var s corev1.Service
		if err := kube.Decode(o.Value, &s); err != nil {
			t.Fatal(err)
		}
		vals := slices.Clone(s.Spec.ClusterIPs)
		for _, p := range servicePorts(&s) {
			vals = append(vals, fmt.Sprint(p))
		}
		for _, v := range vals {
			if other, dup := owner[v]; dup {
				out = append(out, fmt.Sprintf("%s held by %s and %s", v, other, s.Name))
			}
			owner[v] = s.Name
		}
	}
	return out
}
