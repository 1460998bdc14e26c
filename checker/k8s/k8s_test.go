package k8s

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/checker"
)

func run(t *testing.T, cfg Config, ccfg checker.Config) *checker.Report {
	t.Helper()
	rep, err := Check(cfg, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestStaleReads is acceptance criterion 1: kubernetes#59848 shows up under
// resettable-session and causal consistency and not under synchronous.
func TestStaleReads(t *testing.T) {
	tests := []struct {
		consistency Consistency
		violated    bool
	}{
		{Synchronous, false},
		{ResettableSession, true},
		{Causal, true},
	}
	for _, tc := range tests {
		t.Run(string(tc.consistency), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Consistency = tc.consistency
			cfg.Properties = []string{"pods-on-nodes-unique"}
			rep := run(t, cfg, checker.Config{Mode: checker.BFS, MaxDepth: 100, Timeout: time.Minute})
			got := rep.Status("pods-on-nodes-unique") == checker.StatusViolated
			if got != tc.violated {
				t.Fatalf("violated = %v, want %v", got, tc.violated)
			}
			if !tc.violated {
				if !rep.Complete {
					t.Fatal("synchronous search did not exhaust the space within depth 100")
				}
				return
			}
			tr := rep.Violations[0]
			if len(tr.Steps) < 5 {
				t.Fatalf("trace too short: %d steps", len(tr.Steps))
			}
			// The trace must show a stale read that starts a pod.
			joined := ""
			for _, s := range tr.Steps {
				joined += s.Description + "\n"
			}
			if !strings.Contains(joined, "start container web-0") || !strings.Contains(joined, "fails") {
				t.Errorf("trace lacks the #59848 story:\n%s", joined)
			}
			_, violated, err := Replay(cfg, tr, false)
			if err != nil {
				t.Fatal(err)
			}
			if !violated {
				t.Error("replayed trace does not end in a violation")
			}
		})
	}
}

// TestSynchronousScenariosHold checks that the controllers are correct under
// the strongest model: in the small scenarios every property holds over the
// whole bounded space.
func TestSynchronousScenariosHold(t *testing.T) {
	for _, name := range []string{"stale-reads", "job"} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Scenario = name
			rep := run(t, cfg, checker.Config{Mode: checker.BFS, MaxDepth: 100, Timeout: time.Minute, KeepGoing: true})
			if !rep.Complete {
				t.Fatalf("space not exhausted: %d unique states", rep.UniqueStates)
			}
			for _, p := range rep.Properties {
				if p.Status != checker.StatusHolds {
					t.Errorf("%s: %s", p.Name, p.Status)
				}
			}
		})
	}
}

// settle runs every controller on a synchronous model, in order, until none
// acts; it returns the final state.
func settle(t *testing.T, m *Model, s *State, budget int) *State {
	t.Helper()
	for i := 0; i < budget; i++ {
		moved := false
		for c := range m.ctrls {
			if n, ok := m.Next(s, Action{T: ActStep, C: int16(c)}); ok {
				s, moved = n, true
			}
		}
		if !moved {
			return s
		}
	}
	t.Fatal("controllers did not settle")
	return nil
}

func TestControllersReachSpec(t *testing.T) {
	tests := []struct {
		scenario string
		env      []Action // applied after the first settle
		check    func(t *testing.T, m *Model, v *Snapshot)
	}{
		{"deployment", []Action{{T: ActImage}}, func(t *testing.T, m *Model, v *Snapshot) {
			rss := v.Of(KindReplicaSet)
			if len(rss) != 2 {
				t.Fatalf("%d ReplicaSets, want 2", len(rss))
			}
			for _, rs := range rss {
				want := int32(0)
				if rs.F[FImage] == 2 {
					want = 2
				}
				if rs.F[RSReplicas] != want || rs.F[RSStatus] != want {
					t.Errorf("%s", m.ObjectString(&rs))
				}
			}
			d := v.Of(KindDeployment)[0]
			if !deploymentComplete(&d) {
				t.Errorf("not complete: %s", m.ObjectString(&d))
			}
		}},
		{"statefulset", []Action{{T: ActScale, V: 1}}, func(t *testing.T, m *Model, v *Snapshot) {
			if n := countPods(v, KindStatefulSet, v.Of(KindStatefulSet)[0].Name, podRunningReady); n != 3 {
				t.Errorf("%d ready pods, want 3", n)
			}
			if n := len(v.Of(KindPVC)); n != 3 {
				t.Errorf("%d PVCs, want 3", n)
			}
		}},
		{"job", nil, func(t *testing.T, m *Model, v *Snapshot) {
			j := v.Of(KindJob)[0]
			if j.F[JComplete] != 1 || j.F[JSucceeded] != 2 {
				t.Errorf("job: %s", m.ObjectString(&j))
			}
			for _, p := range v.Of(KindPod) {
				if p.F[PFinal] != 0 {
					t.Errorf("finalizer left on %s", m.ObjectString(&p))
				}
			}
		}},
		{"replicaset", []Action{{T: ActScale, V: 1}}, func(t *testing.T, m *Model, v *Snapshot) {
			rs := v.Of(KindReplicaSet)[0]
			if rs.F[RSStatus] != 3 || rs.F[RSReady] != 3 {
				t.Errorf("%s", m.ObjectString(&rs))
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Scenario = tc.scenario
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := settle(t, m, m.init, 200)
			for _, a := range tc.env {
				n, ok := m.Next(s, a)
				if !ok {
					t.Fatalf("env action %+v not enabled", a)
				}
				s = settle(t, m, n, 200)
			}
			if !m.quiescent(s) {
				t.Fatal("not quiescent")
			}
			tc.check(t, m, m.latest(s))
		})
	}
}

// TestRhizomeOverReplication checks the partition scenario under rhizome
// consistency: pods really are over-replicated during the partition, and
// the derived bounds hold within the explored bound.
func TestRhizomeOverReplication(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario = "over-replication"
	cfg.Consistency = Rhizome
	cfg.Sites = 2
	rep := run(t, cfg, checker.Config{Mode: checker.BFS, MaxDepth: 11, Timeout: 30 * time.Second, KeepGoing: true})
	if rep.Status("running-bound") != checker.StatusHolds || rep.Status("replica-active-bound") != checker.StatusHolds {
		t.Errorf("bounds violated: %+v", rep.Properties)
	}
	if rep.Gauges["running-pods"] < 2 {
		t.Errorf("no over-replication observed: running max %d", rep.Gauges["running-pods"])
	}
	if rep.Labels["derived_running_bound"] != "4" || rep.Labels["derived_active_bound"] != "2" {
		t.Errorf("labels %v", rep.Labels)
	}
}

// TestRhizomeConcurrentCreateConflict drives two sites to create the same
// StatefulSet pod while partitioned: after the merge one incarnation wins
// whole and a conflict is counted.
func TestRhizomeConcurrentCreateConflict(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Consistency = Rhizome
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := clone(m.init)
	s.Env[BPartition] = 1
	s = m.seal(s)
	do := func(a Action) {
		t.Helper()
		n, ok := m.Next(s, a)
		if !ok {
			t.Fatalf("action %s not enabled", m.FormatAction(s, a))
		}
		s = n
	}
	do(Action{T: ActPartition})
	stsAt := func(site int) int16 {
		for i, c := range m.ctrls {
			if c.Kind == CStatefulSet && c.Site == site {
				return int16(i)
			}
		}
		t.Fatal("no statefulset controller")
		return 0
	}
	for _, site := range []int{0, 1} {
		do(Action{T: ActStep, C: stsAt(site)}) // ControllerRevision
		do(Action{T: ActStep, C: stsAt(site)}) // pod web-0
	}
	do(Action{T: ActHeal})
	do(Action{T: ActSync, C: 0, V: 1})
	do(Action{T: ActSync, C: 1, V: 0})
	if !converged(s.Sites) {
		t.Fatal("sites did not converge")
	}
	for i := range s.Sites[0].Docs {
		if s.Sites[0].Docs[i] != s.Sites[1].Docs[i] {
			t.Errorf("documents differ after convergence: %+v vs %+v", s.Sites[0].Docs[i], s.Sites[1].Docs[i])
		}
	}
	if s.Sites[0].Conflicts+s.Sites[1].Conflicts < 2 {
		t.Errorf("conflicts = %d + %d, want the pod and the revision", s.Sites[0].Conflicts, s.Sites[1].Conflicts)
	}
	if got := len(s.Sites[0].Snap.Of(KindPod)); got != 1 {
		t.Errorf("%d pods after merge, want 1", got)
	}
}

func TestSymmetryReduces(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario = "themelios-baseline"
	cfg.Consistency = MonotonicSession // sessions make replicas' local states differ
	ccfg := checker.Config{Mode: checker.BFS, MaxDepth: 6, KeepGoing: true}
	plain := run(t, cfg, ccfg)
	ccfg.Symmetry = true
	sym := run(t, cfg, ccfg)
	if !plain.Complete || !sym.Complete {
		t.Fatal("bounded searches incomplete")
	}
	if sym.UniqueStates >= plain.UniqueStates {
		t.Errorf("symmetry: %d unique states, plain %d", sym.UniqueStates, plain.UniqueStates)
	}
}

func TestReportReplayRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Consistency = Causal
	cfg.Properties = []string{"pods-on-nodes-unique"}
	rep := run(t, cfg, checker.Config{Mode: checker.DFS, MaxDepth: 30, Timeout: time.Minute})
	if !rep.Violated() {
		t.Fatal("dfs found no violation")
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := checker.ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, violated, err := Replay(cfg, back.Violations[0], false); err != nil || !violated {
		t.Fatalf("replay: violated=%v err=%v", violated, err)
	}
	// Under synchronous consistency the same actions are not all enabled.
	cfg.Consistency = Synchronous
	if _, _, err := Replay(cfg, back.Violations[0], false); err == nil {
		t.Error("causal trace replayed under synchronous consistency")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"bad-scenario", func(c *Config) { c.Scenario = "nope" }, false},
		{"bad-consistency", func(c *Config) { c.Consistency = "eventual" }, false},
		{"too-many-sites", func(c *Config) { c.Consistency = Rhizome; c.Sites = 9 }, false},
		{"bad-controller", func(c *Config) { c.Controllers = map[string]int{"etcd": 1} }, false},
		{"bad-property", func(c *Config) { c.Properties = []string{"x"} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}
