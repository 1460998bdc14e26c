package alloc

import (
	"bytes"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Object is one stored object as read at one revision.
type Object struct {
	Key         string
	Value       []byte
	ModRevision int64
}

// State is what a repair reads, all at one revision: kube-apiserver's Services,
// IPAddresses and ServiceCIDRs, and the NodePort RangeAllocation (nil when
// absent). Values are JSON, as the store materialises them.
type State struct {
	Services     []Object
	IPAddresses  []Object
	ServiceCIDRs []Object
	NodePorts    *Object
}

// Kind names what was held twice.
type Kind string

const (
	ClusterIP Kind = "ClusterIP"
	NodePort  Kind = "NodePort"
)

// Repair is one Service that held a ClusterIP or NodePort another Service keeps.
type Repair struct {
	Kind    Kind
	Service string // namespace/name of the Service that gave the value up
	UID     string // its uid
	Held    string // the address or port held twice
	Winner  string // namespace/name of the Service that keeps it
	New     string // the address or port given instead; "" when flagged
	Reason  string // why it was flagged rather than re-allocated
}

// Flagged reports whether the Service keeps the duplicate (no free value).
func (r Repair) Flagged() bool { return r.New == "" }

// Write is one value a plan puts.
type Write struct {
	Key   string
	Value []byte
}

// Plan is what a repair does: the writes (in key order), the repairs they make,
// and the keys it read with their mod revisions (0: must still be absent). The
// plan holds only while those keys are unchanged.
type Plan struct {
	Writes  []Write
	Repairs []Repair
	Read    map[string]int64
}

// Compute plans the repair of the state kube-apiserver keeps under prefix (its
// --etcd-prefix, with a trailing slash). It is pure: the same state gives the
// same plan, byte for byte, at every site. Objects it cannot decode are left
// alone.
func Compute(prefix string, st State) Plan {
	p := planner{prefix: prefix, plan: Plan{Read: map[string]int64{}}}
	for _, o := range st.Services {
		var svc corev1.Service
		if kube.Decode(o.Value, &svc) == nil {
			p.services = append(p.services, &service{obj: o, svc: &svc})
		}
	}
	slices.SortFunc(p.services, func(a, b *service) int { return strings.Compare(a.obj.Key, b.obj.Key) })
	p.repairClusterIPs(st.IPAddresses, st.ServiceCIDRs)
	p.repairNodePorts(st.NodePorts)
	p.writeServices()
	slices.SortFunc(p.plan.Writes, func(a, b Write) int { return strings.Compare(a.Key, b.Key) })
	return p.plan
}

// planner builds one Plan.
type planner struct {
	prefix   string
	services []*service // by key
	plan     Plan
}

// service is a Service the plan may change.
type service struct {
	obj     Object
	svc     *corev1.Service
	changed bool
}

func (s *service) name() string { return s.svc.Namespace + "/" + s.svc.Name }

// put adds a write of key, read at modRev (0: absent).
func (p *planner) put(key string, value []byte, modRev int64) {
	p.plan.Writes = append(p.plan.Writes, Write{Key: key, Value: value})
	p.plan.Read[key] = modRev
}

// writeServices adds the changed Services to the writes.
func (p *planner) writeServices() {
	for _, s := range p.services {
		if !s.changed {
			continue
		}
		v, err := kube.Encode(s.svc)
		if err != nil {
			continue // a decoded Service always encodes
		}
		p.put(s.obj.Key, framed(s.obj.Value, v), s.obj.ModRevision)
	}
}

// framed returns v, an object encoded with a trailing newline as
// kube-apiserver's JSON encoding writes it, without that newline when the stored
// JSON it replaces had none.
func framed(stored, v []byte) []byte {
	if bytes.HasSuffix(stored, []byte("\n")) || kube.IsProtobuf(stored) {
		return v
	}
	return bytes.TrimSuffix(v, []byte("\n"))
}

// earliest returns the Service created first: by creationTimestamp, then uid,
// then key (all the same at every site).
func earliest(hs []*service) *service {
	return slices.MinFunc(hs, func(a, b *service) int {
		ta, tb := a.svc.CreationTimestamp.Time, b.svc.CreationTimestamp.Time
		switch {
		case ta.Before(tb):
			return -1
		case tb.Before(ta):
			return 1
		}
		if c := strings.Compare(string(a.svc.UID), string(b.svc.UID)); c != 0 {
			return c
		}
		return strings.Compare(a.obj.Key, b.obj.Key)
	})
}

// seed is where the search for a free value starts for a Service giving up
// held: spread by its uid, so that repairs of different Services seldom race
// for one value, and the same at every site.
func seed(s *service, held string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(string(s.svc.UID) + "/" + s.svc.Namespace + "/" + s.svc.Name + "/" + held))
	return h.Sum64()
}

// derivedUID names an object a repair creates, the same at every site.
func derivedUID(parts ...string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, []byte("rhizome/alloc/"+strings.Join(parts, "/"))).String()
}
