package alloc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/store"
)

// Store is what a Repairer needs of a site's store. Update runs fn as one
// atomic local write (its changes are logged, replicated and published to
// watchers like any client's).
type Store interface {
	Range(key []byte, opts store.RangeOptions) (store.RangeResult, error)
	Update(ctx context.Context, fn func(tx *store.WriteTxn) error) (int64, error)
	GrantLease(ctx context.Context, id, ttl int64) (int64, int64, error)
}

// Config configures a Repairer.
type Config struct {
	// Prefix is kube-apiserver's --etcd-prefix, with a trailing slash.
	Prefix string
	// Site names this site in the repairer's log lines. The Events a repair
	// writes name no site: every site that applies the repair writes the same
	// Event (see event).
	Site string
	// Settle is how long a pass waits after a change for more changes.
	Settle time.Duration
	// Interval is the longest time between passes.
	Interval time.Duration
	// EventTTL is how long the Events stay (kube-apiserver's --event-ttl).
	EventTTL time.Duration
	// Now stamps the Events (the plan never reads it).
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics
}

// DefaultConfig is what a site runs.
func DefaultConfig() Config {
	return Config{
		Prefix:   "/registry/",
		Settle:   500 * time.Millisecond,
		Interval: time.Minute,
		EventTTL: time.Hour,
		Now:      time.Now,
		Logger:   slog.Default(),
	}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("alloc: config: prefix %q must end in /", c.Prefix)
	case c.Site == "":
		return errors.New("alloc: config: site is empty")
	case c.Settle < 0 || c.Interval <= 0 || c.EventTTL < time.Second:
		return errors.New("alloc: config: Settle must be >= 0, Interval > 0 and EventTTL >= 1s")
	case c.Now == nil || c.Logger == nil:
		return errors.New("alloc: config: Now and Logger are required")
	}
	return nil
}

// Repairer repairs duplicated allocations in a site's store (see the package
// doc). Its methods are safe for concurrent use; passes run one at a time.
type Repairer struct {
	cfg     Config
	st      Store
	kick    chan struct{}
	pass    sync.Mutex      // held by RepairOnce
	flagged map[string]bool // flags already reported; guarded by pass
	repairs *prometheus.CounterVec
	stale   prometheus.Counter
}

// errStale says a key the plan read changed before it was applied.
var errStale = errors.New("alloc: state changed since it was read")

// maxAttempts bounds how often one pass plans again after errStale.
const maxAttempts = 5

// New returns a Repairer of st; Run starts it.
func New(cfg Config, st Store) (*Repairer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Repairer{
		cfg: cfg, st: st, kick: make(chan struct{}, 1), flagged: map[string]bool{},
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rhizome_alloc_repairs_total",
			Help: "Services found holding a ClusterIP or NodePort another Service keeps, by kind and outcome (reallocated, flagged).",
		}, []string{"kind", "outcome"}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rhizome_alloc_stale_plans_total",
			Help: "Repair plans not applied because what they read changed meanwhile (planned again).",
		}),
	}
	if reg := cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{r.repairs, r.stale} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("alloc: metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Relevant reports whether a change of key can make or undo a duplicate.
func (r *Repairer) Relevant(key []byte) bool {
	rest, ok := strings.CutPrefix(string(key), r.cfg.Prefix)
	if !ok {
		return false
	}
	for _, p := range []string{"services/specs/", "ipaddresses/", "servicecidrs/", "ranges/servicenodeports"} {
		if strings.HasPrefix(rest, p) {
			return true
		}
	}
	return false
}

// Watch returns the range of keys whose changes a pass may follow (etcd's
// convention: every key from key up to end); Relevant filters them.
func (r *Repairer) Watch() (key, end []byte) {
	key = []byte(r.cfg.Prefix)
	return key, prefixEnd(key)
}

// Notify asks for a pass soon; it never blocks.
func (r *Repairer) Notify() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run makes passes until ctx ends: one at once, then Settle after a Notify,
// and at least every Interval. It blocks.
func (r *Repairer) Run(ctx context.Context) {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	r.Notify()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.kick:
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.cfg.Settle):
			}
		}
		if _, err := r.RepairOnce(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("allocation repair failed; retrying at the next change", "err", err)
		}
	}
}

// RepairOnce reads the store, plans and applies the repair, and returns the
// repairs it applied or flagged (a flag only the first time it is seen).
func (r *Repairer) RepairOnce(ctx context.Context) ([]Repair, error) {
	r.pass.Lock()
	defer r.pass.Unlock()
	for range maxAttempts {
		st, err := r.read()
		if err != nil {
			return nil, err
		}
		plan := Compute(r.cfg.Prefix, st)
		report := r.news(plan.Repairs)
		if len(plan.Writes) == 0 && len(report) == 0 {
			return nil, nil
		}
		err = r.apply(ctx, plan, report)
		if errors.Is(err, errStale) {
			r.stale.Inc()
			continue
		}
		if err != nil {
			return nil, err
		}
		r.record(report)
		return report, nil
	}
	return nil, fmt.Errorf("alloc: %w %d times in a row", errStale, maxAttempts)
}

// news returns the repairs to report: every re-allocation, and flags not
// reported before.
func (r *Repairer) news(reps []Repair) []Repair {
	var out []Repair
	for _, rep := range reps {
		if !rep.Flagged() || !r.flagged[flagID(rep)] {
			out = append(out, rep)
		}
	}
	return out
}

func flagID(rep Repair) string { return string(rep.Kind) + "/" + rep.UID + "/" + rep.Held }

// record counts and logs the repairs applied.
func (r *Repairer) record(reps []Repair) {
	for _, rep := range reps {
		outcome := "reallocated"
		if rep.Flagged() {
			outcome = "flagged"
			r.flagged[flagID(rep)] = true
		}
		r.repairs.WithLabelValues(string(rep.Kind), outcome).Inc()
		r.cfg.Logger.Warn("allocation held by two Services", "site", r.cfg.Site, "kind", rep.Kind, "service", rep.Service,
			"held", rep.Held, "kept-by", rep.Winner, "outcome", outcome, "new", rep.New, "reason", rep.Reason)
	}
}

// read lists what Compute needs, all at one revision.
func (r *Repairer) read() (State, error) {
	var st State
	var rev int64
	for _, l := range []struct {
		resource string
		into     *[]Object
	}{{"services/specs/", &st.Services}, {"ipaddresses/", &st.IPAddresses}, {"servicecidrs/", &st.ServiceCIDRs}} {
		key := []byte(r.cfg.Prefix + l.resource)
		res, err := r.st.Range(key, store.RangeOptions{End: prefixEnd(key), Rev: rev})
		if err != nil {
			return State{}, fmt.Errorf("alloc: list %s: %w", key, err)
		}
		rev = res.Rev
		*l.into = objects(res.KVs)
	}
	res, err := r.st.Range([]byte(r.cfg.Prefix+"ranges/servicenodeports"), store.RangeOptions{Rev: rev})
	if err != nil {
		return State{}, fmt.Errorf("alloc: read the NodePort range: %w", err)
	}
	if objs := objects(res.KVs); len(objs) == 1 {
		st.NodePorts = &objs[0]
	}
	return st, nil
}

func objects(kvs []store.KeyValue) []Object {
	out := make([]Object, len(kvs))
	for i, kv := range kvs {
		out[i] = Object{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return out
}

// apply writes the plan and the Events reporting it in one local write, if no
// key the plan read has changed (errStale otherwise).
func (r *Repairer) apply(ctx context.Context, plan Plan, report []Repair) error {
	events, err := r.events(ctx, report)
	if err != nil {
		return err
	}
	read := make([]string, 0, len(plan.Read))
	for k := range plan.Read {
		read = append(read, k)
	}
	slices.Sort(read)
	_, err = r.st.Update(ctx, func(tx *store.WriteTxn) error {
		// Everything that can refuse the write is checked before the first Put.
		if events.lease != 0 && !tx.LeaseExists(events.lease) {
			events = eventWrites{}
		}
		if err := tx.Reserve(cost(plan.Writes) + cost(events.writes)); err != nil {
			return err
		}
		for _, k := range read {
			res, err := tx.Range([]byte(k), store.RangeOptions{})
			if err != nil {
				return err
			}
			var rev int64
			if len(res.KVs) == 1 {
				rev = res.KVs[0].ModRevision
			}
			if rev != plan.Read[k] {
				return errStale
			}
		}
		if err := r.recordConflicts(tx, report); err != nil {
			return err
		}
		for _, w := range plan.Writes {
			if err := tx.Put([]byte(w.Key), w.Value, 0); err != nil {
				return err
			}
		}
		for _, e := range events.writes {
			if err := tx.Put([]byte(e.Key), e.Value, events.lease); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStale) {
		return fmt.Errorf("alloc: apply repair: %w", err)
	}
	return err
}

// recordConflicts lists each repair among the store's conflicts (kind
// allocation): the Service that gave the value up is the loser, the one that
// keeps it the winner. It writes no key, so it goes before the plan's writes.
func (r *Repairer) recordConflicts(tx *store.WriteTxn, reps []Repair) error {
	specs := r.cfg.Prefix + "services/specs/"
	for _, rep := range reps {
		detail := fmt.Sprintf("%s %s held twice; given %s", rep.Kind, rep.Held, rep.New)
		if rep.Flagged() {
			detail = fmt.Sprintf("%s %s held twice; kept (%s)", rep.Kind, rep.Held, rep.Reason)
		}
		if err := tx.RecordConflict(crdt.Allocation, []byte(specs+rep.Service), []byte(specs+rep.Winner), detail); err != nil {
			return fmt.Errorf("alloc: record conflict: %w", err)
		}
	}
	return nil
}

// cost is etcd's estimate of what writes add to the store (as for a Put: key
// and value plus 256 each).
func cost(ws []Write) int64 {
	var n int64
	for _, w := range ws {
		n += int64(len(w.Key) + len(w.Value) + 256)
	}
	return n
}

// prefixEnd returns the end of the range of keys starting with prefix.
func prefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
