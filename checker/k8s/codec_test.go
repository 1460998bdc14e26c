package k8s

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rhizome-kv/rhizome/checker"
)

// allConfigs is every scenario under every consistency model (rhizome with
// 2 and 3 sites).
func allConfigs() []Config {
	var out []Config
	for _, sc := range Scenarios() {
		for _, c := range Consistencies {
			cfg := DefaultConfig()
			cfg.Scenario, cfg.Consistency = sc.Name, c
			if c != Rhizome {
				out = append(out, cfg)
				continue
			}
			for _, sites := range []int{2, 3} {
				cfg.Sites = sites
				out = append(out, cfg)
			}
		}
	}
	return out
}

func configName(c Config) string {
	if c.Consistency == Rhizome {
		return fmt.Sprintf("%s/%s-%d", c.Scenario, c.Consistency, c.Sites)
	}
	return fmt.Sprintf("%s/%s", c.Scenario, c.Consistency)
}

// TestCodecRoundTrip walks every model at random and checks that every
// state survives encoding: same fingerprints, same rendering, and the same
// successors.
func TestCodecRoundTrip(t *testing.T) {
	for _, cfg := range allConfigs() {
		t.Run(configName(cfg), func(t *testing.T) {
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := m.newCoder(2) // tiny caches: evictions all the time
			rng := rand.New(rand.NewPCG(1, 2))
			var buf []Action
			for walk := range 40 {
				s := m.init
				for depth := 0; depth < 40; depth++ {
					if err := c.checkRoundTrip(s); err != nil {
						t.Fatalf("walk %d depth %d: %v", walk, depth, err)
					}
					d, _ := c.Decode(c.Append(nil, s))
					buf = m.Actions(s, buf[:0])
					var succ []*State
					for _, a := range buf {
						ns, ok := m.Next(s, a)
						dn, dok := m.Next(d, a)
						if ok != dok || ok && (ns.fp != dn.fp || ns.cfp != dn.cfp) {
							t.Fatalf("walk %d depth %d: %s differs after decoding", walk, depth, m.FormatAction(s, a))
						}
						if ok {
							succ = append(succ, ns)
						}
					}
					var got []string
					c.Expand(d, nil, func(a Action, ns *State) {
						got = append(got, fmt.Sprintf("%+v %x %x", a, ns.fp, ns.cfp))
					})
					var want []string
					for _, a := range buf {
						if ns, ok := m.Next(s, a); ok {
							want = append(want, fmt.Sprintf("%+v %x %x", a, ns.fp, ns.cfp))
						}
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("walk %d depth %d: Expand gives\n%v\nActions and Next give\n%v", walk, depth, got, want)
					}
					if m.Evaluate(s, ^uint64(0)) != m.Evaluate(d, ^uint64(0)) {
						t.Fatalf("walk %d depth %d: properties differ after decoding", walk, depth)
					}
					if len(succ) == 0 {
						break
					}
					s = succ[rng.IntN(len(succ))]
				}
			}
		})
	}
}

// TestCompactBFSMatches runs bounded BFS with and without the compact
// frontier (with tiny coder caches) and requires identical outcomes.
func TestCompactBFSMatches(t *testing.T) {
	for _, cfg := range allConfigs() {
		t.Run(configName(cfg), func(t *testing.T) {
			bfs := func(ccfg checker.Config) *checker.Report {
				m, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				m.coderBits = 3
				rep, err := checker.Run[*State, Action](m, ccfg)
				if err != nil {
					t.Fatal(err)
				}
				return rep
			}
			ccfg := checker.Config{Mode: checker.BFS, MaxDepth: 5, KeepGoing: true}
			a := bfs(ccfg)
			ccfg.NoCompact = true
			b := bfs(ccfg)
			if a.States != b.States || a.UniqueStates != b.UniqueStates || a.MaxDepth != b.MaxDepth {
				t.Fatalf("compact: %d states (%d unique, depth %d); live: %d (%d, %d)",
					a.States, a.UniqueStates, a.MaxDepth, b.States, b.UniqueStates, b.MaxDepth)
			}
			for i := range a.Properties {
				if a.Properties[i] != b.Properties[i] {
					t.Errorf("%s: compact %s, live %s", a.Properties[i].Name, a.Properties[i].Status, b.Properties[i].Status)
				}
			}
			for k, v := range b.Gauges {
				if a.Gauges[k] != v {
					t.Errorf("gauge %s: compact %d, live %d", k, a.Gauges[k], v)
				}
			}
		})
	}
}
