package k8s

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalidConfig is wrapped by every Config.Validate error.
var ErrInvalidConfig = errors.New("k8s: invalid config")

// Consistency names what a controller may read and how its writes land.
type Consistency string

const (
	// Synchronous: one linearizable store; every read sees the latest
	// revision and a write is a compare-and-swap against it.
	Synchronous Consistency = "synchronous"
	// MonotonicSession: reads may be stale but never older than the
	// controller's session (its last read or write); writes are CAS against
	// the latest revision; the session survives a restart.
	MonotonicSession Consistency = "monotonic-session"
	// ResettableSession: as MonotonicSession, but a restarted controller
	// starts a new session and may read any earlier revision.
	ResettableSession Consistency = "resettable-session"
	// OptimisticLinear: a leader applies writes before they commit; any
	// uncommitted revision may be read, and a write based on an older one
	// models a leader change that rolls the newer ones back. Every
	// CommitEvery writes the latest revision commits.
	OptimisticLinear Consistency = "optimistic-linear"
	// Causal: every write applies to the version its writer read (CAS
	// against that version), so concurrent writers fork the history; a
	// controller reads any version that causally follows its own last read
	// or write, and after a restart any version at all.
	Causal Consistency = "causal"
	// Rhizome: several sites, each controller attached to one; reads and CAS
	// are local to the site; sites exchange state when connected and merge
	// it with package consistency's rules.
	Rhizome Consistency = "rhizome"
	// RhizomeJSONPath is rhizome before Kubernetes' merge rules (issue 9):
	// every field of every kind merges on its own by JSON path, status
	// included, with no generation move and no validation fallback.
	RhizomeJSONPath Consistency = "rhizome-json-path"
)

// replicated reports whether c keeps one replica per site.
func (c Consistency) replicated() bool { return c == Rhizome || c == RhizomeJSONPath }

// Consistencies lists every model, in the order tables use.
var Consistencies = []Consistency{Synchronous, MonotonicSession, ResettableSession, OptimisticLinear, Causal, Rhizome, RhizomeJSONPath}

// Config selects and sizes a Kubernetes model.
type Config struct {
	Scenario    string
	Consistency Consistency
	// Sites is the number of sites of a rhizome model (2..MaxSites).
	Sites int
	// Replicas overrides the scenario's workload size when > 0.
	Replicas int
	// Controllers overrides how many instances of a controller kind run
	// (per site under rhizome), keyed by CtrlKind.String().
	Controllers map[string]int
	// CommitEvery is the optimistic-linear commit interval.
	CommitEvery int
	// Properties restricts the checked properties by name; empty means all.
	Properties []string
}

// DefaultConfig is the stale-reads scenario under synchronous consistency.
func DefaultConfig() Config {
	return Config{Scenario: "stale-reads", Consistency: Synchronous, Sites: 2, CommitEvery: 2}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if ScenarioByName(c.Scenario) == nil {
		return fmt.Errorf("%w: unknown scenario %q", ErrInvalidConfig, c.Scenario)
	}
	if !slices.Contains(Consistencies, c.Consistency) {
		return fmt.Errorf("%w: unknown consistency %q", ErrInvalidConfig, c.Consistency)
	}
	if c.Consistency.replicated() && (c.Sites < 1 || c.Sites > MaxSites) {
		return fmt.Errorf("%w: sites %d outside 1..%d", ErrInvalidConfig, c.Sites, MaxSites)
	}
	if c.Replicas < 0 || c.Replicas > 8 {
		return fmt.Errorf("%w: replicas %d outside 0..8", ErrInvalidConfig, c.Replicas)
	}
	if c.Consistency == OptimisticLinear && c.CommitEvery < 1 {
		return fmt.Errorf("%w: commit interval %d < 1", ErrInvalidConfig, c.CommitEvery)
	}
	for k, n := range c.Controllers {
		if !slices.Contains(ctrlNames[:], k) {
			return fmt.Errorf("%w: unknown controller %q", ErrInvalidConfig, k)
		}
		if n < 0 || n > 4 {
			return fmt.Errorf("%w: %d %s controllers outside 0..4", ErrInvalidConfig, n, k)
		}
	}
	for _, p := range c.Properties {
		if propertyIndex(p) < 0 {
			return fmt.Errorf("%w: unknown property %q", ErrInvalidConfig, p)
		}
	}
	return nil
}
