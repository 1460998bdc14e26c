package alloc

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubernetes/pkg/registry/core/service/ipallocator"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// maxSpan bounds the addresses of one ServiceCIDR a search considers (a /8 of
// IPv4; IPv6 ranges are larger than any cluster fills).
const maxSpan = 1 << 24

// repairClusterIPs gives every Service that holds an address another Service
// keeps a free one (see the package doc for who keeps it).
func (p *planner) repairClusterIPs(ipObjs, cidrObjs []Object) {
	taken := map[netip.Addr]bool{}
	objects := map[netip.Addr]bool{}   // the addresses that have an IPAddress
	parents := map[netip.Addr]string{} // the Service an IPAddress names
	for _, o := range ipObjs {
		var ip networkingv1.IPAddress
		if kube.Decode(o.Value, &ip) != nil {
			continue
		}
		a, err := netip.ParseAddr(ip.Name)
		if err != nil {
			continue
		}
		taken[a], objects[a] = true, true
		if r := ip.Spec.ParentRef; r != nil && r.Group == "" && r.Resource == "services" {
			parents[a] = r.Namespace + "/" + r.Name
		}
	}
	holders := map[netip.Addr][]*service{}
	for _, s := range p.services {
		for _, a := range clusterIPs(s) {
			taken[a] = true
			holders[a] = append(holders[a], s)
		}
	}
	cidrs := serviceCIDRs(cidrObjs)
	var dups []netip.Addr
	for a, hs := range holders {
		if len(hs) > 1 {
			dups = append(dups, a)
		}
	}
	slices.SortFunc(dups, netip.Addr.Compare)
	for _, a := range dups {
		hs := holders[a]
		winner := earliest(hs)
		if i := slices.IndexFunc(hs, func(s *service) bool { return s.name() == parents[a] }); i >= 0 {
			winner = hs[i]
		}
		for _, s := range hs {
			if s != winner {
				p.reallocIP(s, a, winner, cidrs, taken, objects)
			}
		}
	}
	p.restoreIPAddresses(objects, cidrs)
}

// restoreIPAddresses gives an IPAddress to every address in a ServiceCIDR that
// one Service holds and no IPAddress names. kube-apiserver creates a Service's
// IPAddress before the Service, so this happens only when the IPAddress was
// deleted under the Service: by kube-apiserver's own repair loop, when its
// IPAddress informer saw a re-allocation's new IPAddress before its Service
// informer saw the Service holding it ("wrong reference; cleaning up").
// Upstream's loop would put it back only at its next full resync (3 minutes);
// this puts it back at the next pass.
func (p *planner) restoreIPAddresses(objects map[netip.Addr]bool, cidrs []netip.Prefix) {
	holders := map[netip.Addr][]*service{}
	var missing []netip.Addr
	for _, s := range p.services {
		for _, a := range clusterIPs(s) {
			if !objects[a] && len(holders[a]) == 0 && inAny(cidrs, a) {
				missing = append(missing, a)
			}
			holders[a] = append(holders[a], s)
		}
	}
	for _, a := range missing {
		if hs := holders[a]; len(hs) == 1 {
			p.putIPAddress(a, hs[0])
		}
	}
}

// inAny reports whether a lies in one of cidrs.
func inAny(cidrs []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(cidrs, func(c netip.Prefix) bool { return c.Contains(a) })
}

// putIPAddress writes the IPAddress of Service s holding a, which must still
// be absent when the plan is applied.
func (p *planner) putIPAddress(a netip.Addr, s *service) {
	if v, err := kube.Encode(ipAddress(a, s)); err == nil {
		p.put(p.prefix+"ipaddresses/"+a.String(), v, 0)
	}
}

// clusterIPs returns the addresses a Service holds (none for a headless or
// ExternalName Service).
func clusterIPs(s *service) []netip.Addr {
	ips := s.svc.Spec.ClusterIPs
	if len(ips) == 0 && s.svc.Spec.ClusterIP != "" {
		ips = []string{s.svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// serviceCIDRs returns the ranges of the ServiceCIDRs not being deleted, by name.
func serviceCIDRs(objs []Object) []netip.Prefix {
	var sc []networkingv1.ServiceCIDR
	for _, o := range objs {
		var c networkingv1.ServiceCIDR
		if kube.Decode(o.Value, &c) == nil && c.DeletionTimestamp == nil {
			sc = append(sc, c)
		}
	}
	slices.SortFunc(sc, func(a, b networkingv1.ServiceCIDR) int { return cmp.Compare(a.Name, b.Name) })
	var out []netip.Prefix
	for _, c := range sc {
		for _, s := range c.Spec.CIDRs {
			if pf, err := netip.ParsePrefix(s); err == nil {
				out = append(out, pf.Masked())
			}
		}
	}
	return out
}

// reallocIP moves Service s off address old, which winner keeps.
func (p *planner) reallocIP(s *service, old netip.Addr, winner *service, cidrs []netip.Prefix, taken, objects map[netip.Addr]bool) {
	r := Repair{Kind: ClusterIP, Service: s.name(), UID: string(s.svc.UID), Held: old.String(), Winner: winner.name()}
	// The range that held the old address first, then the others of its family.
	var order []netip.Prefix
	for _, c := range cidrs {
		if c.Contains(old) {
			order = append([]netip.Prefix{c}, order...)
		} else if c.Addr().Is4() == old.Is4() {
			order = append(order, c)
		}
	}
	a, ok := netip.Addr{}, false
	for _, c := range order {
		if a, ok = freeAddr(c, seed(s, r.Held), taken); ok {
			break
		}
	}
	if !ok {
		r.Reason = "no free address in a ServiceCIDR of its family"
		p.plan.Repairs = append(p.plan.Repairs, r)
		return
	}
	taken[a] = true
	r.New = a.String()
	spec := &s.svc.Spec
	if len(spec.ClusterIPs) == 0 {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	for i, ip := range spec.ClusterIPs {
		if x, err := netip.ParseAddr(ip); err == nil && x == old {
			spec.ClusterIPs[i] = r.New
		}
	}
	spec.ClusterIP = spec.ClusterIPs[0]
	s.changed = true
	p.plan.Repairs = append(p.plan.Repairs, r)
	p.putIPAddress(a, s)
	objects[a] = true
}

// ipAddress is the IPAddress kube-apiserver's allocator would have created for
// Service s holding a; its uid and creation time are derived from s, the same
// at every site.
func ipAddress(a netip.Addr, s *service) *networkingv1.IPAddress {
	family := "IPv4"
	if a.Is6() {
		family = "IPv6"
	}
	return &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{
			Name:              a.String(),
			UID:               types.UID(derivedUID("ipaddress", string(s.svc.UID), a.String())),
			CreationTimestamp: s.svc.CreationTimestamp,
			Labels: map[string]string{
				networkingv1.LabelIPAddressFamily: family,
				networkingv1.LabelManagedBy:       ipallocator.ControllerName,
			},
		},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{
			Resource: "services", Namespace: s.svc.Namespace, Name: s.svc.Name,
		}},
	}
}

// freeAddr finds an address of c that is not taken: from an offset derived from
// seed in the upper band kube-apiserver allocates dynamically from, onwards
// (wrapping). The network address and the last address are never given.
func freeAddr(c netip.Prefix, seed uint64, taken map[netip.Addr]bool) (netip.Addr, bool) {
	size := uint64(maxSpan)
	if hostBits := c.Addr().BitLen() - c.Bits(); hostBits < 24 {
		size = 1 << hostBits
	}
	if size < 4 {
		return netip.Addr{}, false
	}
	usable := size - 2 // offsets 1 .. size-2
	band := rangeOffset(size)
	if band >= usable {
		band = 0
	}
	start := band + seed%(usable-band)
	steps := min(usable, uint64(len(taken))+1)
	for i := range steps {
		a := addrAt(c.Addr(), 1+(start+i)%usable)
		if !taken[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// rangeOffset is where kube-apiserver's dynamic allocations start in a range of
// size addresses (below it, addresses are kept for Services that ask for one):
// min(max(16, size/16), 256), none for ranges of 16 or fewer.
func rangeOffset(size uint64) uint64 {
	if size <= 16 {
		return 0
	}
	return min(max(16, size/16), 256)
}

// addrAt returns base plus off.
func addrAt(base netip.Addr, off uint64) netip.Addr {
	b := base.As16()
	lo := binary.BigEndian.Uint64(b[8:]) + off
	if lo < off {
		binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(b[:8])+1)
	}
	binary.BigEndian.PutUint64(b[8:], lo)
	a := netip.AddrFrom16(b)
	if base.Is4() {
		return a.Unmap()
	}
	return a
}
