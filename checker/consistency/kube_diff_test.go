package consistency_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/checker/consistency"
	"github.com/rhizome-kv/rhizome/crdt"
)

// The differential test for built-in kinds: random concurrent edits of one
// apps/v1 Deployment at 2-3 sites, applied both to crdt.Docs (which merge it
// by Kubernetes' schema, move metadata.generation and fall back to one
// side's whole object when the validator rejects the merge) and to this
// package's Write/MergeKube/Shown, which must show the same object at every
// site after every step.
//
// The model's slots are in the reverse of crdt's key order (status fields,
// spec fields, generation): NewKube orders the units' operations as crdt/
// writes them, whatever the slots' order.
const (
	kObserved = iota
	kReady
	kStatusReplicas
	kUnavail
	kSurge
	kReplicas
	kGen
	kFields
)

// deployKube returns the model's Deployment, its merge units, their order
// and its generation taken from crdt/kube's schema by NewKube.
func deployKube(t *testing.T) *consistency.Kube {
	t.Helper()
	k, err := consistency.NewKube("apps/v1", "Deployment", [consistency.MaxFields]string{
		kGen:            "/metadata/generation",
		kReplicas:       "/spec/replicas",
		kSurge:          "/spec/strategy/rollingUpdate/maxSurge",
		kUnavail:        "/spec/strategy/rollingUpdate/maxUnavailable",
		kStatusReplicas: "/status/replicas",
		kReady:          "/status/readyReplicas",
		kObserved:       "/status/observedGeneration",
	}, validDeploy)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// validDeploy mirrors kube-apiserver's validation of the modelled fields.
func validDeploy(v [consistency.MaxFields]int32) bool {
	return !(v[kSurge] == 0 && v[kUnavail] == 0) && v[kReady] <= v[kStatusReplicas]
}

func deployJSON(v [consistency.MaxFields]int32) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"generation":%d,"name":"obj"},`+
		`"spec":{"replicas":%d,"strategy":{"rollingUpdate":{"maxSurge":%d,"maxUnavailable":%d}}},`+
		`"status":{"observedGeneration":%d,"readyReplicas":%d,"replicas":%d}}`,
		v[kGen], v[kReplicas], v[kSurge], v[kUnavail], v[kObserved], v[kReady], v[kStatusReplicas])
}

func deployVals(value []byte) ([consistency.MaxFields]int32, error) {
	var d struct {
		Metadata struct{ Generation int32 }
		Spec     struct {
			Replicas int32
			Strategy struct {
				RollingUpdate struct{ MaxSurge, MaxUnavailable int32 }
			}
		}
		Status struct{ ObservedGeneration, ReadyReplicas, Replicas int32 }
	}
	var v [consistency.MaxFields]int32
	if err := json.Unmarshal(value, &d); err != nil {
		return v, fmt.Errorf("decode %s: %w", value, err)
	}
	ru := d.Spec.Strategy.RollingUpdate
	v[kGen], v[kReplicas], v[kSurge], v[kUnavail] = d.Metadata.Generation, d.Spec.Replicas, ru.MaxSurge, ru.MaxUnavailable
	v[kStatusReplicas], v[kReady], v[kObserved] = d.Status.Replicas, d.Status.ReadyReplicas, d.Status.ObservedGeneration
	return v, nil
}

// deployValidator is validDeploy over the JSON crdt materialises.
func deployValidator(value []byte) error {
	v, err := deployVals(value)
	if err != nil {
		return err
	}
	if !validDeploy(v) {
		return errors.New("invalid Deployment")
	}
	return nil
}

type kubeSite struct {
	id    uint8
	clock uint32
	doc   crdt.Doc
	model consistency.Doc
	got   []int
}

type kubeMsg struct {
	origin  uint8
	seq     int
	deps    []int
	change  crdt.Change
	post    consistency.Doc
	counter uint32
}

type kubeHistory struct {
	t     *testing.T
	kube  *consistency.Kube
	seed  uint64
	names []string
	ranks []uint8
	rng   *rand.Rand
	sites []*kubeSite
	msgs  []*kubeMsg
	log   []string
}

func (h *kubeHistory) fail(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("seed %d (sites %v): %s\nhistory:\n  %s", h.seed, h.names, fmt.Sprintf(format, args...), strings.Join(h.log, "\n  "))
}

func (h *kubeHistory) shown(s *kubeSite) [consistency.MaxFields]int32 {
	v, _ := consistency.Shown(&s.model, h.kube)
	return v
}

// put writes vals at s, as a controller or user would after reading the
// object s shows.
func (h *kubeHistory) put(s *kubeSite, vals [consistency.MaxFields]int32) {
	s.clock++
	st := consistency.Stamp{Counter: s.clock, Site: s.id}
	prev := s.model
	s.model = consistency.Write(s.model, vals, st, h.ranks[s.id], h.kube)
	c, ok, err := s.doc.Put(deployJSON(vals), crdt.Stamp{Counter: uint64(s.clock), Site: h.names[s.id]})
	if err != nil {
		h.fail("put: %v", err)
	}
	h.log = append(h.log, fmt.Sprintf("%d@%s puts %s (ok=%v)", s.clock, h.names[s.id], deployJSON(vals), ok))
	if !ok {
		s.model = prev
		return
	}
	h.msgs = append(h.msgs, &kubeMsg{origin: s.id, seq: s.got[s.id] + 1, deps: append([]int(nil), s.got...),
		change: c, post: s.model, counter: s.clock})
	s.got[s.id]++
}

func (h *kubeHistory) deliver(s *kubeSite, m *kubeMsg) {
	if _, err := s.doc.Apply(m.change); err != nil {
		h.fail("apply: %v", err)
	}
	s.model, _ = consistency.MergeKube(s.model, m.post)
	s.clock = max(s.clock, m.counter)
	if s.got[m.origin] < m.seq {
		s.got[m.origin]++
	}
	h.log = append(h.log, fmt.Sprintf("%s applies %s#%d", h.names[s.id], h.names[m.origin], m.seq))
}

func (h *kubeHistory) compare(s *kubeSite) {
	h.t.Helper()
	value, ok := s.doc.Value()
	if !ok {
		h.fail("%s: crdt shows no object", h.names[s.id])
	}
	got, err := deployVals(value)
	if err != nil {
		h.fail("%v", err)
	}
	if want := h.shown(s); got != want {
		h.fail("%s: crdt shows %s, model %s", h.names[s.id], value, deployJSON(want))
	}
}

func (h *kubeHistory) pending() [][2]int {
	var out [][2]int
	for si, s := range h.sites {
		for mi, m := range h.msgs {
			if m.origin == s.id || s.got[m.origin] != m.seq-1 {
				continue
			}
			ready := true
			for o, n := range m.deps {
				ready = ready && s.got[o] >= n
			}
			if ready {
				out = append(out, [2]int{si, mi})
			}
		}
	}
	return out
}

// edit changes one to three fields of what s shows: a spec field (a user)
// or the status (a controller, always writing a whole status).
func (h *kubeHistory) edit(s *kubeSite) [consistency.MaxFields]int32 {
	v := h.shown(s)
	for range 1 + h.rng.IntN(3) {
		switch h.rng.IntN(4) {
		case 0:
			v[kReplicas] = int32(h.rng.IntN(4))
			v[kGen]++
		case 1:
			v[kSurge+h.rng.IntN(2)] = int32(h.rng.IntN(2))
			v[kGen]++
		default:
			v[kStatusReplicas] = int32(h.rng.IntN(4))
			v[kReady] = int32(h.rng.IntN(4))
			v[kObserved] = v[kGen]
		}
	}
	return v
}

func runKubeHistory(t *testing.T, seed uint64, nm naming) {
	rng := rand.New(rand.NewPCG(seed, 0xdeb1))
	n := 2 + rng.IntN(2)
	h := &kubeHistory{t: t, kube: deployKube(t), seed: seed, names: nm.names[:n], ranks: actorRanks(nm.names[:n]), rng: rng}
	for i := range n {
		s := &kubeSite{id: uint8(i), got: make([]int, n)}
		s.doc.SetValidator(deployValidator)
		h.sites = append(h.sites, s)
	}
	var init [consistency.MaxFields]int32
	init[kGen], init[kReplicas], init[kSurge], init[kUnavail] = 1, 2, 1, 1
	h.put(h.sites[0], init)
	for i := 1; i < n; i++ {
		h.deliver(h.sites[i], h.msgs[0])
	}
	for range 10 + rng.IntN(20) {
		if d := h.pending(); rng.IntN(2) == 0 && len(d) > 0 {
			pick := d[rng.IntN(len(d))]
			h.deliver(h.sites[pick[0]], h.msgs[pick[1]])
			h.compare(h.sites[pick[0]])
			continue
		}
		s := h.sites[rng.IntN(n)]
		if v := h.edit(s); h.kube.Valid(&v) { // kube-apiserver rejects an invalid write
			h.put(s, v)
			h.compare(s)
		}
	}
	for d := h.pending(); len(d) > 0; d = h.pending() {
		pick := d[rng.IntN(len(d))]
		h.deliver(h.sites[pick[0]], h.msgs[pick[1]])
		h.compare(h.sites[pick[0]])
	}
	for _, s := range h.sites[1:] {
		if s.model != h.sites[0].model {
			h.fail("model replicas differ")
		}
	}
}

// TestDifferentialKubeRules ties Write, MergeKube and Shown to crdt's merge of
// built-in kinds.
func TestDifferentialKubeRules(t *testing.T) {
	seeds := uint64(200)
	if testing.Short() {
		seeds = 40
	}
	for _, nm := range namings {
		t.Run(nm.desc, func(t *testing.T) {
			for seed := uint64(1); seed <= seeds; seed++ {
				runKubeHistory(t, seed, nm)
			}
		})
	}
}
