package checker

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"
)

// ErrInvalidConfig is wrapped by every Config.Validate error.
var ErrInvalidConfig = errors.New("checker: invalid config")

// Mode selects the exploration strategy.
type Mode string

const (
	BFS        Mode = "bfs"
	DFS        Mode = "dfs"
	Simulation Mode = "simulation"
)

// Config bounds and shapes one checking run.
type Config struct {
	Mode Mode
	// Threads is the number of worker goroutines; 0 means every core.
	Threads int
	// MaxDepth bounds path length (number of actions); 0 means unbounded.
	MaxDepth int
	// Timeout bounds wall-clock time; 0 means none.
	Timeout time.Duration
	// Seed makes simulation reproducible: worker i walks with seed Seed+i.
	Seed uint64
	// Walks bounds the number of simulation walks; 0 means until Timeout.
	Walks int
	// Symmetry uses the model's canonical fingerprint when it has one.
	Symmetry bool
	// KeepGoing explores until the bounds even when every property has been
	// decided; benchmarks set it so that runs have a fixed length.
	KeepGoing bool
	// NoCompact keeps BFS frontiers as live states even when the model
	// implements Compact (for tests that compare the two).
	NoCompact bool
	// Progress, when not nil, receives a progress line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// DefaultConfig is a parallel BFS on every core with no bounds.
func DefaultConfig() Config {
	return Config{Mode: BFS, ProgressEvery: 2 * time.Second}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch c.Mode {
	case BFS, DFS, Simulation:
	default:
		return fmt.Errorf("%w: mode %q is not bfs, dfs or simulation", ErrInvalidConfig, c.Mode)
	}
	if c.Threads < 0 {
		return fmt.Errorf("%w: threads %d < 0", ErrInvalidConfig, c.Threads)
	}
	if c.MaxDepth < 0 {
		return fmt.Errorf("%w: max depth %d < 0", ErrInvalidConfig, c.MaxDepth)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: timeout %v < 0", ErrInvalidConfig, c.Timeout)
	}
	if c.Walks < 0 {
		return fmt.Errorf("%w: walks %d < 0", ErrInvalidConfig, c.Walks)
	}
	if c.Mode == Simulation && c.Timeout == 0 && c.Walks == 0 {
		// A simulation never exhausts the space, so it needs some bound.
		return fmt.Errorf("%w: simulation needs a timeout or a number of walks", ErrInvalidConfig)
	}
	if c.Progress != nil && c.ProgressEvery <= 0 {
		return fmt.Errorf("%w: progress interval %v must be positive", ErrInvalidConfig, c.ProgressEvery)
	}
	return nil
}

func (c Config) threads() int {
	if c.Threads > 0 {
		return c.Threads
	}
	return runtime.GOMAXPROCS(0)
}
