package checker

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// grid is a toy model: two counters that each step may increase up to n.
type grid struct{ n int }

type pt struct {
	X, Y int
	H    bool
}

func (g grid) InitStates() []pt { return []pt{{}} }
func (g grid) Actions(s pt, buf []int) []int {
	return append(buf, 0, 1, 2)
}
func (g grid) Next(s pt, a int) (pt, bool) {
	switch {
	case s.H:
		return s, false
	case a == 2 && (s.X == 0 || s.Y == 0) && s.X+s.Y >= 2:
		s.H = true
	case a == 0 && s.X < g.n:
		s.X++
	case a == 1 && s.Y < g.n:
		s.Y++
	default:
		return s, false
	}
	return s, true
}
func (g grid) Fingerprint(s pt) uint64 {
	h := uint64(s.X)*1000003 + uint64(s.Y) + 7
	if s.H {
		h ^= 1 << 40
	}
	return h
}
func (g grid) CanonicalFingerprint(s pt) uint64 {
	if s.X > s.Y {
		s.X, s.Y = s.Y, s.X
	}
	return g.Fingerprint(s)
}
func (g grid) Properties() []Property {
	return []Property{
		{Name: "sum-below-7", Expect: Always},
		{Name: "both-moved", Expect: Eventually},
		{Name: "at-2-3", Expect: Sometimes}, // or 3-2, symmetric
		{Name: "beyond-n", Expect: Sometimes},
	}
}
func (g grid) Evaluate(s pt, mask uint64) uint64 {
	var h uint64
	if s.X+s.Y < 7 {
		h |= 1
	}
	if s.X > 0 && s.Y > 0 {
		h |= 2
	}
	if s.X*s.Y == 6 && s.X+s.Y == 5 {
		h |= 4
	}
	if s.X > g.n {
		h |= 8
	}
	return h
}
func (g grid) FormatAction(s pt, a int) string { return [...]string{"inc x", "inc y", "halt"}[a] }
func (g grid) FormatState(s pt) string         { return fmt.Sprintf("x=%d y=%d", s.X, s.Y) }
func (g grid) Gauges() []string                { return []string{"sum"} }
func (g grid) Measure(s pt, out []int64)       { out[0] = int64(s.X + s.Y) }

func findTrace(r *Report, name string) *Trace {
	for i := range r.Violations {
		if r.Violations[i].Property == name {
			return &r.Violations[i]
		}
	}
	return nil
}

func TestSearchModes(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantUnique uint64
		shortest   bool
	}{
		{"bfs-1", Config{Mode: BFS, Threads: 1, KeepGoing: true}, 44, true},
		{"bfs-4", Config{Mode: BFS, Threads: 4, KeepGoing: true}, 44, true},
		{"dfs-1", Config{Mode: DFS, Threads: 1, KeepGoing: true}, 44, false},
		{"dfs-4", Config{Mode: DFS, Threads: 4, KeepGoing: true}, 44, false},
		{"bfs-symmetry", Config{Mode: BFS, Threads: 2, KeepGoing: true, Symmetry: true}, 25, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Run[pt, int](grid{n: 5}, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.UniqueStates != tc.wantUnique {
				t.Errorf("unique = %d, want %d", r.UniqueStates, tc.wantUnique)
			}
			if !r.Complete {
				t.Error("search not complete")
			}
			if r.MaxDepth != 10 {
				t.Errorf("max depth = %d, want 10", r.MaxDepth)
			}
			if r.Gauges["sum"] != 10 {
				t.Errorf("gauge sum = %d, want 10", r.Gauges["sum"])
			}
			want := map[string]string{"sum-below-7": StatusViolated, "both-moved": StatusViolated,
				"at-2-3": StatusWitnessed, "beyond-n": StatusViolated}
			for n, st := range want {
				if got := r.Status(n); got != st {
					t.Errorf("%s: status %q, want %q", n, got, st)
				}
			}
			tr := findTrace(r, "sum-below-7")
			if tr == nil {
				t.Fatal("no trace for sum-below-7")
			}
			if tc.shortest && len(tr.Steps) != 8 {
				t.Errorf("bfs trace has %d steps, want 8 (shortest)", len(tr.Steps))
			}
			if !strings.Contains(tr.Steps[len(tr.Steps)-1].State, "") {
				t.Error("missing state")
			}
			// The last state of the always counterexample must really violate it.
			_, holds, err := Replay[pt, int](grid{n: 5}, *tr, tc.cfg.Symmetry)
			if err != nil {
				t.Fatal(err)
			}
			if holds&1 != 0 {
				t.Error("replayed trace does not violate sum-below-7")
			}
			ev := findTrace(r, "both-moved")
			if ev == nil {
				t.Fatal("no trace for both-moved")
			}
			_, holds, err = Replay[pt, int](grid{n: 5}, *ev, tc.cfg.Symmetry)
			if err != nil {
				t.Fatal(err)
			}
			if holds&2 != 0 {
				t.Error("eventually counterexample ends where both-moved holds")
			}
		})
	}
}

func TestDepthBound(t *testing.T) {
	r, err := Run[pt, int](grid{n: 5}, Config{Mode: BFS, Threads: 2, MaxDepth: 6})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status("sum-below-7") != StatusHolds {
		t.Errorf("sum-below-7 = %s within depth 6, want holds", r.Status("sum-below-7"))
	}
	if r.MaxDepth != 6 {
		t.Errorf("max depth %d, want 6", r.MaxDepth)
	}
	if r.Complete {
		// Complete means the bounded space was exhausted, which it was.
		t.Log("bounded search reports complete")
	}
	if got := r.Status("beyond-n"); got != StatusViolated {
		t.Errorf("beyond-n = %q", got)
	}
}

func TestStopsWhenDecided(t *testing.T) {
	// Without KeepGoing the run stops once every property is decided; with
	// a huge grid that is far before the space is exhausted.
	r, err := Run[pt, int](decidable{grid{n: 2000}}, Config{Mode: BFS, Threads: 2, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status("sum-below-7") != StatusViolated || r.Status("both-moved") != StatusViolated {
		t.Fatalf("expected violations, got %+v", r.Properties)
	}
	if r.UniqueStates > 100000 || r.Complete {
		t.Errorf("run went on after every property was decided: %d unique, complete=%v", r.UniqueStates, r.Complete)
	}
}

// decidable drops the sometimes property that can never be witnessed, so
// that every property gets decided.
type decidable struct{ grid }

func (d decidable) Properties() []Property { return d.grid.Properties()[:3] }

func TestSimulationSeeded(t *testing.T) {
	run := func() *Report {
		r, err := Run[pt, int](grid{n: 5}, Config{Mode: Simulation, Threads: 1, Walks: 50, Seed: 42, KeepGoing: true})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := run(), run()
	if a.States != b.States || a.UniqueStates != b.UniqueStates {
		t.Errorf("same seed, different runs: %d/%d vs %d/%d", a.States, a.UniqueStates, b.States, b.UniqueStates)
	}
	if a.Status("sum-below-7") != StatusViolated {
		t.Error("simulation missed an easy violation")
	}
	tr := findTrace(a, "sum-below-7")
	if _, holds, err := Replay[pt, int](grid{n: 5}, *tr, false); err != nil || holds&1 != 0 {
		t.Errorf("replay: %v holds=%b", err, holds)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"bad-mode", Config{Mode: "bogus"}, false},
		{"neg-depth", Config{Mode: BFS, MaxDepth: -1}, false},
		{"sim-unbounded", Config{Mode: Simulation}, false},
		{"sim-walks", Config{Mode: Simulation, Walks: 3}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTraceOutputAndReplayTamper(t *testing.T) {
	r, err := Run[pt, int](grid{n: 5}, Config{Mode: BFS, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	r.WriteTraces(&buf)
	if !strings.Contains(buf.String(), `"sum-below-7" violated after 7 steps`) || !strings.Contains(buf.String(), "step 7: inc") {
		t.Errorf("trace output:\n%s", buf.String())
	}
	tr := *findTrace(r, "sum-below-7")
	tr.Steps = append([]Step(nil), tr.Steps...)
	tr.Steps[3].Fingerprint = "0000000000000bad"
	if _, _, err := Replay[pt, int](grid{n: 5}, tr, false); err == nil {
		t.Error("tampered trace replayed without error")
	}
}
