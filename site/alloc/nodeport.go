package alloc

import (
	"bytes"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/kubernetes/pkg/registry/core/service/allocator"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// defaultNodePorts is kube-apiserver's --service-node-port-range default, used
// until its RangeAllocation exists.
var defaultNodePorts = utilnet.PortRange{Base: 30000, Size: 2768}

// nodePorts is the NodePort bitmap as stored.
type nodePorts struct {
	obj    *Object
	ra     *corev1.RangeAllocation
	rng    utilnet.PortRange
	bitmap *allocator.AllocationBitmap // nil: no RangeAllocation to keep
}

// readNodePorts decodes the RangeAllocation (absent or unreadable: the default
// range, no bitmap).
func readNodePorts(o *Object) nodePorts {
	np := nodePorts{rng: defaultNodePorts}
	if o == nil {
		return np
	}
	var ra corev1.RangeAllocation
	if kube.Decode(o.Value, &ra) != nil {
		return np
	}
	pr, err := utilnet.ParsePortRange(ra.Range)
	if err != nil || pr.Size == 0 {
		return np
	}
	bm := allocator.NewAllocationMap(pr.Size, ra.Range)
	if bm.Restore(ra.Range, ra.Data) != nil {
		return np
	}
	return nodePorts{obj: o, ra: &ra, rng: *pr, bitmap: bm}
}

// repairNodePorts gives every Service that holds a NodePort another Service
// keeps a free one, and makes the bitmap hold every port Services hold.
func (p *planner) repairNodePorts(raObj *Object) {
	np := readNodePorts(raObj)
	taken := map[int]bool{}
	holders := map[int][]*service{}
	for _, s := range p.services {
		for _, port := range servicePorts(s.svc) {
			taken[port] = true
			holders[port] = append(holders[port], s)
		}
	}
	if np.bitmap != nil {
		np.bitmap.ForEach(func(off int) { taken[np.rng.Base+off] = true })
	}
	var dups []int
	for port, hs := range holders {
		if len(hs) > 1 {
			dups = append(dups, port)
		}
	}
	slices.Sort(dups)
	for _, port := range dups {
		hs := holders[port]
		winner := earliest(hs)
		for _, s := range hs {
			if s != winner {
				p.reallocPort(s, port, winner, np.rng, taken)
			}
		}
	}
	p.keepBitmap(np)
}

// servicePorts returns the NodePorts a Service holds, each once (one port may
// serve several protocols).
func servicePorts(svc *corev1.Service) []int {
	var out []int
	for _, sp := range svc.Spec.Ports {
		if sp.NodePort != 0 && !slices.Contains(out, int(sp.NodePort)) {
			out = append(out, int(sp.NodePort))
		}
	}
	if hc := int(svc.Spec.HealthCheckNodePort); hc != 0 && !slices.Contains(out, hc) {
		out = append(out, hc)
	}
	return out
}

// reallocPort moves Service s off port, which winner keeps.
func (p *planner) reallocPort(s *service, port int, winner *service, rng utilnet.PortRange, taken map[int]bool) {
	r := Repair{Kind: NodePort, Service: s.name(), UID: string(s.svc.UID), Held: strconv.Itoa(port), Winner: winner.name()}
	free, ok := freePort(rng, seed(s, r.Held), taken)
	if !ok {
		r.Reason = "no free port in the NodePort range " + rng.String()
		p.plan.Repairs = append(p.plan.Repairs, r)
		return
	}
	taken[free] = true
	r.New = strconv.Itoa(free)
	for i := range s.svc.Spec.Ports {
		if int(s.svc.Spec.Ports[i].NodePort) == port {
			s.svc.Spec.Ports[i].NodePort = int32(free)
		}
	}
	if int(s.svc.Spec.HealthCheckNodePort) == port {
		s.svc.Spec.HealthCheckNodePort = int32(free)
	}
	s.changed = true
	p.plan.Repairs = append(p.plan.Repairs, r)
}

// freePort finds a port of rng not taken, from an offset derived from seed
// onwards (wrapping).
func freePort(rng utilnet.PortRange, seed uint64, taken map[int]bool) (int, bool) {
	start := int(seed % uint64(rng.Size))
	for i := range rng.Size {
		if port := rng.Base + (start+i)%rng.Size; !taken[port] {
			return port, true
		}
	}
	return 0, false
}

// keepBitmap writes the RangeAllocation when its bitmap lacks a port a Service
// holds. Bits are only added: one set without a Service may be a Service being
// created.
func (p *planner) keepBitmap(np nodePorts) {
	if np.bitmap == nil {
		return
	}
	for _, s := range p.services {
		for _, port := range servicePorts(s.svc) {
			if off := port - np.rng.Base; off >= 0 && off < np.rng.Size {
				np.bitmap.Allocate(off) // false when already set
			}
		}
	}
	_, data := np.bitmap.Snapshot()
	if bytes.Equal(data, np.ra.Data) {
		return
	}
	ra := np.ra.DeepCopy()
	ra.Data = data
	v, err := kube.Encode(ra)
	if err != nil {
		return
	}
	p.put(np.obj.Key, framed(np.obj.Value, v), np.obj.ModRevision)
}
