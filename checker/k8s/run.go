package k8s

import (
	"fmt"

	"github.com/rhizome-kv/rhizome/checker"
)

// Check builds the model cfg describes and runs the checker on it. The
// report is labelled with the scenario, consistency model and sizes.
func Check(cfg Config, ccfg checker.Config) (*checker.Report, error) {
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	rep, err := checker.Run[*State, Action](m, ccfg)
	if err != nil {
		return rep, fmt.Errorf("k8s: check %s/%s: %w", cfg.Scenario, cfg.Consistency, err)
	}
	rep.Labels = map[string]string{
		"scenario":    cfg.Scenario,
		"consistency": string(cfg.Consistency),
		"controllers": fmt.Sprint(len(m.ctrls)),
	}
	if cfg.Consistency.replicated() {
		rep.Labels["sites"] = fmt.Sprint(cfg.Sites)
	}
	if cfg.Consistency == OptimisticLinear {
		rep.Labels["commit_every"] = fmt.Sprint(cfg.CommitEvery)
	}
	if cfg.Replicas > 0 {
		rep.Labels["replicas"] = fmt.Sprint(cfg.Replicas)
	}
	if m.bound > 0 {
		rep.Labels["derived_running_bound"] = fmt.Sprint(m.bound)
		rep.Labels["derived_active_bound"] = fmt.Sprint(m.actBound)
		rep.Labels["target"] = fmt.Sprint(m.target)
	}
	return rep, nil
}

// Replay re-executes a trace of a report produced for cfg and returns it as
// replayed, plus whether its property is violated in the final state.
func Replay(cfg Config, t checker.Trace, symmetry bool) (checker.Trace, bool, error) {
	m, err := New(cfg)
	if err != nil {
		return t, false, err
	}
	out, holds, err := checker.Replay[*State, Action](m, t, symmetry)
	if err != nil {
		return out, false, err
	}
	for i, p := range m.Properties() {
		if p.Name == t.Property {
			return out, holds&(1<<i) == 0, nil
		}
	}
	return out, false, fmt.Errorf("k8s: replay: property %q not in this model", t.Property)
}
