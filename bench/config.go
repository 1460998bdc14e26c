package bench

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The workloads, by the names Config.Workloads and the reports use.
const (
	WorkloadPut               = "put"
	WorkloadRangeSerializable = "range-serializable"
	WorkloadRangeLinearizable = "range-linearizable"
	WorkloadTxnCompareAndPut  = "txn-cas"
	SystemRhizome, SystemEtcd = "rhizome", "etcd"
)

// Workloads lists every workload in the order a run measures them.
func Workloads() []string {
	return []string{WorkloadPut, WorkloadRangeSerializable, WorkloadRangeLinearizable, WorkloadTxnCompareAndPut}
}

// Config says what a run measures and where it finds its binaries.
type Config struct {
	// Duration is how long each cell is measured, when Requests is 0.
	Duration time.Duration
	// Requests, when positive, measures a fixed number of requests per cell
	// instead of a fixed duration.
	Requests int
	// Warmup runs each cell's workload unrecorded for this long first.
	Warmup time.Duration
	// Rounds splits each cell's measurement into this many turns per
	// system, alternating between the systems, so a burst of load from
	// elsewhere on a shared machine falls on both rather than on one.
	Rounds int
	// Clients are the concurrency levels; each is one row of the report.
	Clients []int
	// Conns bounds the gRPC connections per cell; clients share them
	// round-robin (etcd benchmark's --conns).
	Conns int
	// Workloads to measure, a subset of Workloads().
	Workloads []string
	// KeySize and ValueSize are in bytes (etcd's benchmark docs use 8 and 256).
	KeySize, ValueSize int
	// KeySpace is how many distinct keys Put cycles through (sequentially).
	KeySpace int
	// RangeKeys are written before the Range cells; each Range reads one of
	// them at random.
	RangeKeys int
	// TxnKeysPerClient are the keys each client of the Txn workload updates in
	// turn. Clients never share keys, so every compare succeeds unless a
	// server loses an update.
	TxnKeysPerClient int
	// Seed makes key choice and values reproducible.
	Seed uint64

	// RhizomeBin is the rhizome binary to run; empty builds one from the
	// checkout above the working directory with `go build`.
	RhizomeBin string
	// EtcdBin is the etcd binary to run; empty takes the one scripts/bins.sh
	// builds and caches.
	EtcdBin string
	// WorkDir is where the servers' temporary data directories go; empty
	// means the system temporary directory. Put both systems on the same
	// file system, or the comparison measures disks.
	WorkDir string
	// StartTimeout bounds how long a server may take to answer.
	StartTimeout time.Duration

	// Progress receives one line per cell as it completes, and the setup
	// steps; nil discards them.
	Progress io.Writer
}

// DefaultConfig is what `rhizome bench kv` runs with no flags.
func DefaultConfig() Config {
	return Config{
		Duration:         10 * time.Second,
		Warmup:           2 * time.Second,
		Rounds:           5,
		Clients:          []int{1, 100},
		Conns:            10,
		Workloads:        Workloads(),
		KeySize:          8,
		ValueSize:        256,
		KeySpace:         100000,
		RangeKeys:        1000,
		TxnKeysPerClient: 16,
		Seed:             1,
		StartTimeout:     60 * time.Second,
	}
}

// keyDigits is how many hex digits follow a key's two tag bytes (workload,
// concurrency level); the rest of the key is padding.
func (c Config) keyDigits() int { return min(c.KeySize-2, 15) }

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Requests < 0:
		return errors.New("bench: config: Requests < 0")
	case c.Requests == 0 && c.Duration <= 0:
		return errors.New("bench: config: need a positive Duration or Requests")
	case c.Warmup < 0:
		return errors.New("bench: config: Warmup < 0")
	case c.Rounds < 1:
		return errors.New("bench: config: Rounds < 1")
	case c.Requests > 0 && c.Requests < c.Rounds:
		return errors.New("bench: config: fewer Requests than Rounds")
	case len(c.Clients) == 0:
		return errors.New("bench: config: no Clients levels")
	case len(c.Clients) > 36:
		return errors.New("bench: config: at most 36 Clients levels")
	case c.Conns < 1:
		return errors.New("bench: config: Conns < 1")
	case len(c.Workloads) == 0:
		return errors.New("bench: config: no Workloads")
	case c.KeySize < 8:
		// Two tag bytes and six hex digits: 16M distinct keys per cell.
		return fmt.Errorf("bench: config: KeySize %d < 8", c.KeySize)
	case c.ValueSize < 1:
		return errors.New("bench: config: ValueSize < 1")
	case c.KeySpace < 1 || c.RangeKeys < 1 || c.TxnKeysPerClient < 1:
		return errors.New("bench: config: KeySpace, RangeKeys and TxnKeysPerClient must be positive")
	case c.StartTimeout <= 0:
		return errors.New("bench: config: StartTimeout must be positive")
	}
	for _, n := range c.Clients {
		if n < 1 {
			return fmt.Errorf("bench: config: Clients level %d < 1", n)
		}
	}
	for _, w := range c.Workloads {
		if !slices.Contains(Workloads(), w) {
			return fmt.Errorf("bench: config: unknown workload %q (have %v)", w, Workloads())
		}
	}
	limit := 1 << (4 * c.keyDigits())
	maxTxnKeys := slices.Max(c.Clients) * c.TxnKeysPerClient
	if c.KeySpace > limit || c.RangeKeys > limit || maxTxnKeys > limit {
		return fmt.Errorf("bench: config: %d-byte keys hold at most %d distinct keys per cell", c.KeySize, limit)
	}
	return nil
}
