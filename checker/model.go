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

// Compact is implemented by models whose states can wait in a BFS frontier
// as compact, pointer-free bytes instead of as live objects. A BFS level can
// hold tens of millions of states; stored this way they cost tens of bytes
// each instead of kilobytes, and the garbage collector never scans them. The
// checker uses it for BFS when the model offers it and Config.NoCompact is
// not set.
type Compact[S any] interface {
	// NewCoder returns a coder for one worker goroutine; a coder may cache
	// what it has decoded and is never used by two goroutines at once.
	NewCoder() Coder[S]
}

// Coder encodes and decodes states. A decoded state must be equivalent to
// the encoded one: the same fingerprints, actions, successors, property
// values and gauges. Any coder of a model decodes what any other coder of
// the same model encoded.
type Coder[S any] interface {
	// Append appends the encoding of s to dst.
	Append(dst []byte, s S) []byte
	// Decode returns the state that one Append wrote into src. The state,
	// and the states Expand builds from it, need only stay valid until the
	// next Decode on this coder, so a coder may reuse their memory.
	Decode(src []byte) (S, error)
}

// Expander may be implemented by a Coder to generate every successor of a
// state in one call, sharing work between actions (for example between
// interchangeable controllers that compute the same step). Expand must put
// Actions(s, buf) into the returned buffer and call yield, in that order,
// for each action a whose Next(s, a) reports true, with a state equal to the
// one Next returns. The state passed to yield is only valid during the call.
type Expander[S, A any] interface {
	Expand(s S, buf []A, yield func(a A, next S)) []A
}
