package checker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

// Property outcomes in a Report.
const (
	StatusHolds     = "holds"     // no violation found within the bounds
	StatusViolated  = "violated"  // a counterexample is attached
	StatusWitnessed = "witnessed" // a sometimes property held somewhere
	StatusNotFound  = "not-found" // a sometimes property never held within the bounds
)

// Report is what a run found; it marshals to the JSON written by
// `rhizome check --report`.
type Report struct {
	Mode           string            `json:"mode"`
	Threads        int               `json:"threads"`
	DepthBound     int               `json:"depth_bound"`
	Timeout        string            `json:"timeout,omitempty"`
	States         uint64            `json:"states"`
	UniqueStates   uint64            `json:"unique_states"`
	Seconds        float64           `json:"seconds"`
	MaxDepth       int               `json:"max_depth"`
	MicrosPerState float64           `json:"us_per_state"`
	Complete       bool              `json:"complete"`
	TimedOut       bool              `json:"timed_out"`
	Labels         map[string]string `json:"labels,omitempty"`
	Gauges         map[string]int64  `json:"gauges,omitempty"`
	Properties     []PropertyResult  `json:"properties"`
	Violations     []Trace           `json:"violations"`
	Witnesses      []Trace           `json:"witnesses,omitempty"`
}

// PropertyResult is one property's outcome.
type PropertyResult struct {
	Name   string `json:"name"`
	Expect string `json:"expect"`
	Status string `json:"status"`
	Doc    string `json:"doc,omitempty"`
}

// Trace is a path from an initial state. Step 0 is the initial state and has
// no action.
type Trace struct {
	Property string `json:"property"`
	Expect   string `json:"expect"`
	Steps    []Step `json:"steps"`
}

// Step is one transition of a Trace. Action is the model's action in JSON,
// which is what Replay feeds back to the model.
type Step struct {
	Action      json.RawMessage `json:"action,omitempty"`
	Description string          `json:"description,omitempty"`
	Fingerprint string          `json:"fingerprint"`
	State       string          `json:"state"`
}

// Violated reports whether any property was violated.
func (r *Report) Violated() bool {
	for _, p := range r.Properties {
		if p.Status == StatusViolated {
			return true
		}
	}
	return false
}

// Status returns the status of the named property, or "" if unknown.
func (r *Report) Status(name string) string {
	for _, p := range r.Properties {
		if p.Name == name {
			return p.Status
		}
	}
	return ""
}

// WriteJSON writes r to path, indented.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("checker: encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("checker: write report: %w", err)
	}
	return nil
}

// ReadReport loads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checker: read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("checker: decode report: %w", err)
	}
	return &r, nil
}

// WriteSummary prints the counts and each property's outcome.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "mode=%s threads=%d states=%d unique=%d max_depth=%d seconds=%.2f us/state=%.3f complete=%v\n",
		r.Mode, r.Threads, r.States, r.UniqueStates, r.MaxDepth, r.Seconds, r.MicrosPerState, r.Complete)
	names := make([]string, 0, len(r.Gauges))
	for k := range r.Gauges {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "gauge %s max=%d\n", k, r.Gauges[k])
	}
	for _, p := range r.Properties {
		fmt.Fprintf(w, "  %-10s %-34s %s\n", p.Expect, p.Name, p.Status)
	}
}

// WriteTraces prints every violation step by step.
func (r *Report) WriteTraces(w io.Writer) {
	for _, t := range r.Violations {
		WriteTrace(w, t)
	}
}

// WriteTrace prints one trace step by step.
func WriteTrace(w io.Writer, t Trace) {
	if len(t.Steps) == 0 {
		fmt.Fprintf(w, "%s property %q: no state satisfies it within the bounds\n", t.Expect, t.Property)
		return
	}
	fmt.Fprintf(w, "%s property %q violated after %d steps:\n", t.Expect, t.Property, len(t.Steps)-1)
	for i, s := range t.Steps {
		if i == 0 {
			fmt.Fprintf(w, "  initial state [%s]\n", s.Fingerprint)
		} else {
			fmt.Fprintf(w, "  step %d: %s [%s]\n", i, s.Description, s.Fingerprint)
		}
		fmt.Fprintf(w, "%s", indent(s.State, "      "))
	}
}

func indent(s, pre string) string {
	out := make([]byte, 0, len(s)+64)
	atLine := true
	for i := 0; i < len(s); i++ {
		if atLine {
			out = append(out, pre...)
			atLine = false
		}
		out = append(out, s[i])
		if s[i] == '\n' {
			atLine = true
		}
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return string(out)
}

func (r *run[S, A]) report(start time.Time, complete, timedOut bool) (*Report, error) {
	secs := time.Since(start).Seconds()
	rep := &Report{
		Mode:         string(r.cfg.Mode),
		Threads:      r.cfg.threads(),
		DepthBound:   r.cfg.MaxDepth,
		States:       r.states.Load(),
		UniqueStates: r.vis.len(),
		Seconds:      secs,
		MaxDepth:     int(r.depth.Load()),
		Complete:     complete,
		TimedOut:     timedOut,
		Violations:   []Trace{},
	}
	if r.cfg.Timeout > 0 {
		rep.Timeout = r.cfg.Timeout.String()
	}
	if rep.States > 0 {
		rep.MicrosPerState = secs * 1e6 / float64(rep.States)
	}
	if r.gauge != nil {
		rep.Gauges = map[string]int64{}
		for i, n := range r.gaugeNames {
			rep.Gauges[n] = r.gaugeMax[i].Load()
		}
	}
	var errs []error
	for i, p := range r.props {
		res := PropertyResult{Name: p.Name, Expect: p.Expect.String(), Doc: p.Doc}
		d, found := r.discoveries[i]
		switch {
		case p.Expect == Sometimes && found:
			res.Status = StatusWitnessed
		case p.Expect == Sometimes && complete:
			res.Status = StatusViolated
			rep.Violations = append(rep.Violations, Trace{Property: p.Name, Expect: p.Expect.String()})
		case p.Expect == Sometimes:
			res.Status = StatusNotFound
		case found:
			res.Status = StatusViolated
		default:
			res.Status = StatusHolds
		}
		rep.Properties = append(rep.Properties, res)
		if !found {
			continue
		}
		path := d.path
		if path == nil {
			path = r.vis.pathTo(d.fp)
		}
		steps, err := r.rebuild(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("checker: property %s: %w", p.Name, err))
			continue
		}
		t := Trace{Property: p.Name, Expect: p.Expect.String(), Steps: steps}
		if p.Expect == Sometimes {
			rep.Witnesses = append(rep.Witnesses, t)
		} else {
			rep.Violations = append(rep.Violations, t)
		}
	}
	return rep, errors.Join(errs...)
}

// rebuild turns a fingerprint path into concrete steps by replaying the
// model: at each state it looks for an action leading to the next
// fingerprint.
func (r *run[S, A]) rebuild(path []uint64) ([]Step, error) {
	if len(path) == 0 {
		return nil, errors.New("empty path")
	}
	var cur S
	found := false
	for _, s := range r.m.InitStates() {
		if r.fingerprint(s) == path[0] {
			cur, found = s, true
			break
		}
	}
	if !found {
		return nil, errors.New("no initial state matches the path")
	}
	steps := []Step{{Fingerprint: fmt.Sprintf("%016x", path[0]), State: r.m.FormatState(cur)}}
	var buf []A
	for i := 1; i < len(path); i++ {
		buf = r.m.Actions(cur, buf[:0])
		matched := false
		for _, a := range buf {
			ns, ok := r.m.Next(cur, a)
			if !ok || r.fingerprint(ns) != path[i] {
				continue
			}
			js, err := json.Marshal(a)
			if err != nil {
				return nil, fmt.Errorf("encode action: %w", err)
			}
			steps = append(steps, Step{Action: js, Description: r.m.FormatAction(cur, a),
				Fingerprint: fmt.Sprintf("%016x", path[i]), State: r.m.FormatState(ns)})
			cur, matched = ns, true
			break
		}
		if !matched {
			return nil, fmt.Errorf("no action reaches step %d (%016x)", i, path[i])
		}
	}
	return steps, nil
}
