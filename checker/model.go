package checker

// Expectation says how a property is judged.
type Expectation uint8

const (
	// Always properties must hold in every reachable state.
	Always Expectation = iota
	// Eventually properties must hold somewhere on every path to a terminal state.
	Eventually
	// Sometimes properties must hold in at least one reachable state.
	Sometimes
)

func (e Expectation) String() string {
	switch e {
	case Always:
		return "always"
	case Eventually:
		return "eventually"
	case Sometimes:
		return "sometimes"
	}
	return "unknown"
}

// Property names a condition on states. Its condition is computed by
// Model.Evaluate so that a model can share work between properties.
type Property struct {
	Name   string
	Expect Expectation
	Doc    string
}

// MaxProperties is how many properties one model may declare; Evaluate
// answers with one bit per property.
const MaxProperties = 64

// Model is a transition system. Implementations must be pure and
// deterministic: the same state and action always give the same successor,
// and nothing may mutate a state after it has been returned, because states
// are shared between goroutines.
type Model[S, A any] interface {
	// InitStates returns the initial states.
	InitStates() []S
	// Actions appends the actions that may be enabled in s to buf. An action
	// whose Next reports false is treated as not enabled.
	Actions(s S, buf []A) []A
	// Next returns the successor of s under a, or false when a does nothing.
	Next(s S, a A) (S, bool)
	// Fingerprint hashes a state; equal states must have equal fingerprints.
	Fingerprint(s S) uint64
	// Properties lists the properties checked, at most MaxProperties.
	Properties() []Property
	// Evaluate returns a bit set whose bit i is 1 when property i's condition
	// holds in s. Only bits in mask need to be computed.
	Evaluate(s S, mask uint64) uint64
	// FormatAction describes a taken in state s for a trace.
	FormatAction(s S, a A) string
	// FormatState renders s for a trace.
	FormatState(s S) string
}

// Symmetric is implemented by models that offer symmetry reduction: states
// that are equal up to a permutation of interchangeable parts must have equal
// canonical fingerprints. The checker uses it when Config.Symmetry is set.
type Symmetric[S any] interface {
	CanonicalFingerprint(s S) uint64
}

// Gauged is implemented by models that expose numeric measurements of a
// state; the checker reports the largest value seen over explored states.
type Gauged[S any] interface {
	Gauges() []string
	Measure(s S, out []int64)
}
