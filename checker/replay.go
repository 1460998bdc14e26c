package checker

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrReplay is wrapped by every Replay error.
var ErrReplay = errors.New("checker: replay")

// Replay re-executes a trace from a report against m: it starts from the
// initial state whose fingerprint matches step 0, applies each recorded
// action and checks that every fingerprint matches. It returns the trace as
// re-executed (descriptions and states freshly rendered) and the bit set of
// properties that hold in the final state, so a caller can confirm the
// violation is still there.
func Replay[S, A any](m Model[S, A], t Trace, symmetry bool) (Trace, uint64, error) {
	fpOf := m.Fingerprint
	if symmetry {
		if sym, ok := m.(Symmetric[S]); ok {
			fpOf = sym.CanonicalFingerprint
		}
	}
	fp := func(s S) string { return fmt.Sprintf("%016x", normFP(fpOf(s))) }
	if len(t.Steps) == 0 {
		return t, 0, fmt.Errorf("%w: trace of %q has no steps", ErrReplay, t.Property)
	}
	var cur S
	found := false
	for _, s := range m.InitStates() {
		if fp(s) == t.Steps[0].Fingerprint {
			cur, found = s, true
			break
		}
	}
	if !found {
		return t, 0, fmt.Errorf("%w: no initial state has fingerprint %s", ErrReplay, t.Steps[0].Fingerprint)
	}
	out := Trace{Property: t.Property, Expect: t.Expect,
		Steps: []Step{{Fingerprint: t.Steps[0].Fingerprint, State: m.FormatState(cur)}}}
	for i, st := range t.Steps[1:] {
		var a A
		if err := json.Unmarshal(st.Action, &a); err != nil {
			return out, 0, fmt.Errorf("%w: step %d: decode action: %w", ErrReplay, i+1, err)
		}
		ns, ok := m.Next(cur, a)
		if !ok {
			return out, 0, fmt.Errorf("%w: step %d: action %s is not enabled", ErrReplay, i+1, st.Action)
		}
		if got := fp(ns); got != st.Fingerprint {
			return out, 0, fmt.Errorf("%w: step %d: fingerprint %s, report says %s", ErrReplay, i+1, got, st.Fingerprint)
		}
		out.Steps = append(out.Steps, Step{Action: st.Action, Description: m.FormatAction(cur, a),
			Fingerprint: st.Fingerprint, State: m.FormatState(ns)})
		cur = ns
	}
	var all uint64
	for i := range m.Properties() {
		all |= 1 << i
	}
	return out, m.Evaluate(cur, all), nil
}
