package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	"github.com/rhizome-kv/rhizome/etcdshim"
	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/sync/peer"
	"github.com/rhizome-kv/rhizome/watch"
)

// Config configures a Cluster.
type Config struct {
	// Sites is how many sites run; they are named s0, s1, ...
	Sites int
	// Dir holds one data directory per site (a test's t.TempDir()).
	Dir string
	// Seed drives the fabric's faults.
	Seed uint64
	// Faults are the fabric's message faults from the start (Cluster.Fabric
	// changes them later).
	Faults peer.Faults
	// AntiEntropyInterval and Redial are the runners' (peer.Config); short, so
	// a healed cluster converges in a test's time.
	AntiEntropyInterval, Redial time.Duration
	// MaxBatch bounds the changes of one sync message; small values exercise
	// multi-batch catch-ups.
	MaxBatch int
	// RebaseEdits and GCInterval are the stores' (store.Config): small values
	// make rebases and change-log collection happen under the faults.
	RebaseEdits int
	GCInterval  time.Duration
	// SyncWrites fsyncs every commit (store.Config.SyncWrites).
	SyncWrites bool
	// ClockSkew sets each site's clock (its store's and runner's) off the real
	// one by up to this much either way, drawn from Seed; merges must not care.
	ClockSkew time.Duration
	// Failpoint, when set, is every store's failpoint hook, called with the
	// site's name (store.Config.Failpoint).
	Failpoint func(site, name string) error
	Logger    *slog.Logger
}

// DefaultConfig returns a three-site cluster that syncs and collects often.
// Dir must still be set.
func DefaultConfig() Config {
	return Config{Sites: 3, Seed: 1, AntiEntropyInterval: 20 * time.Millisecond, Redial: 20 * time.Millisecond, MaxBatch: 20,
		RebaseEdits: 3, GCInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Sites < 1:
		return errors.New("cluster: config: Sites must be at least 1")
	case c.Dir == "":
		return errors.New("cluster: config: Dir is empty")
	case c.AntiEntropyInterval <= 0 || c.Redial <= 0 || c.MaxBatch < 1 || c.GCInterval <= 0:
		return errors.New("cluster: config: AntiEntropyInterval, Redial, MaxBatch and GCInterval must be positive")
	case c.Logger == nil:
		return errors.New("cluster: config: Logger is required")
	case c.ClockSkew < 0:
		return errors.New("cluster: config: ClockSkew is negative")
	}
	return c.Faults.Validate()
}

// Cluster is N sites in one process: each a real store, watch hub, etcd API on a
// loopback port and sync runner, the runners talking over one peer.Fabric. Every
// site counts every other (nothing is forgotten). Partition, Disconnect, Heal
// and the fabric's methods may be called from any goroutine; Crash and Restart
// change a Site's fields, so call them from the goroutine that drives the test,
// not while another method (EnsureSame, Running) runs.
type Cluster struct {
	cfg    Config
	Fabric *peer.Fabric

	mu    sync.Mutex
	sites map[string]*Site
}

// Site is one site of a Cluster. Store, Hub and Runner change when it restarts:
// read them through the Cluster while it may. Its clock counts every site
// unless told otherwise (Cluster.Forget).
type Site struct {
	Name string
	Dir  string
	// Endpoint is host:port of its etcd API; it stays the same across restarts,
	// so a client keeps reconnecting to it.
	Endpoint string
	// Skew is how far its clock is off the real one (Config.ClockSkew).
	Skew   time.Duration
	Store  *store.Store
	Hub    *watch.Hub
	Runner *peer.Runner
	api    *etcdshim.Server
	ln     net.Listener
	// counted is the sites it counts (nil: every site); it survives restarts.
	counted []string
}

// Start starts every site, each already knowing all the others as peers.
func Start(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, Fabric: peer.NewFabric(cfg.Seed), sites: map[string]*Site{}}
	if err := c.Fabric.SetFaults(cfg.Faults); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 4))
	for i := range cfg.Sites {
		name := fmt.Sprintf("s%d", i)
		s := &Site{Name: name, Dir: filepath.Join(cfg.Dir, name), Endpoint: "127.0.0.1:0"}
		if cfg.ClockSkew > 0 {
			s.Skew = time.Duration(rng.Int64N(int64(2*cfg.ClockSkew))) - cfg.ClockSkew
		}
		if err := c.open(s); err != nil {
			c.Close()
			return nil, err
		}
		c.sites[name] = s
	}
	return c, nil
}

// Names returns the sites' names in order.
func (c *Cluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.sites))
}

// Site returns the named site (nil if there is none).
func (c *Cluster) Site(name string) *Site {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sites[name]
}

// open starts a site from its data directory.
func (c *Cluster) open(s *Site) error {
	scfg := store.DefaultConfig()
	scfg.Dir, scfg.Site, scfg.Replicated = s.Dir, s.Name, true
	scfg.SyncWrites, scfg.RebaseEdits, scfg.GCInterval = c.cfg.SyncWrites, c.cfg.RebaseEdits, c.cfg.GCInterval
	scfg.MemoryBudget, scfg.Validator = store.MinMemoryBudget, validate.Object
	scfg.Logger = c.cfg.Logger.With("site", s.Name)
	scfg.Now = func() time.Time { return time.Now().Add(s.Skew) }
	if fp := c.cfg.Failpoint; fp != nil {
		scfg.Failpoint = func(name string) error { return fp(s.Name, name) }
	}
	st, err := store.Open(scfg)
	if err != nil {
		return fmt.Errorf("cluster: site %s: %w", s.Name, err)
	}
	hub, err := watch.NewHub(watch.DefaultConfig(), st)
	if err != nil {
		st.Close()
		return fmt.Errorf("cluster: site %s: %w", s.Name, err)
	}
	st.SetPublisher(hub)
	ecfg := etcdshim.DefaultConfig()
	ecfg.Name, ecfg.Logger, ecfg.WatchProgressNotifyInterval = s.Name, scfg.Logger, 100*time.Millisecond
	api, err := etcdshim.New(ecfg, st, hub)
	if err != nil {
		st.Close()
		return fmt.Errorf("cluster: site %s: %w", s.Name, err)
	}
	ln, err := net.Listen("tcp", s.Endpoint)
	if err != nil {
		st.Close()
		return fmt.Errorf("cluster: site %s: %w", s.Name, err)
	}
	pcfg := peer.DefaultConfig()
	pcfg.AntiEntropyInterval, pcfg.Redial, pcfg.MaxBatch = c.cfg.AntiEntropyInterval, c.cfg.Redial, c.cfg.MaxBatch
	pcfg.Logger, pcfg.Transport, pcfg.Now = scfg.Logger, c.Fabric.Transport(s.Name), scfg.Now
	runner, err := peer.NewRunner(pcfg, st)
	if err != nil {
		ln.Close()
		st.Close()
		return fmt.Errorf("cluster: site %s: %w", s.Name, err)
	}
	go api.Serve(ln)
	s.Store, s.Hub, s.api, s.ln, s.Runner, s.Endpoint = st, hub, api, ln, runner, ln.Addr().String()
	names := make([]string, c.cfg.Sites)
	peers := map[string]string{}
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
		peers[names[i]] = names[i] // a site's fabric address is its name
	}
	runner.SetPeers(peers)
	if s.counted != nil {
		names = s.counted
	}
	runner.SetCounted(names)
	return nil
}

// Forget makes one site's clock stop counting another (or count it again, when
// forget is false), as a site's --forget-site-after clock would. The clock only
// proposes: the site records a decision to forget the other's newest
// incarnation, which every site receives and folds alike (sync/peer's doc,
// Forgetting); counting it again forgets nothing more, and does not bring back
// an incarnation forgotten. It holds across restarts.
func (c *Cluster) Forget(site, other string, forget bool) error {
	s := c.Site(site)
	if s == nil || c.Site(other) == nil || site == other {
		return fmt.Errorf("cluster: forget %s at %s: no such pair of sites", other, site)
	}
	c.mu.Lock()
	if s.counted == nil {
		s.counted = slices.Sorted(maps.Keys(c.sites))
	}
	s.counted = slices.DeleteFunc(s.counted, func(n string) bool { return n == other })
	if !forget {
		s.counted = append(s.counted, other)
	}
	counted, runner := slices.Clone(s.counted), s.Runner
	c.mu.Unlock()
	if runner != nil {
		runner.SetCounted(counted)
	}
	return nil
}

// Partition splits the sites into groups that cannot reach each other; sites not
// named form one more group. Streams across groups break (peer.Fabric.Partition).
func (c *Cluster) Partition(groups ...[]string) { c.Fabric.Partition(groups...) }

// Disconnect cuts one site off from every other; the others still talk.
func (c *Cluster) Disconnect(name string) {
	for _, other := range c.Names() {
		if other != name {
			c.Fabric.Cut(name, other)
		}
	}
}

// Heal restores every link.
func (c *Cluster) Heal() { c.Fabric.Heal() }

// Crash stops a site at once: its clients' connections and streams break, its
// messages in flight are lost, and its store is closed. (Badger cannot be
// abandoned inside a process, so what the store holds is flushed: losing writes
// that were not fsynced is the SIGKILL tests' part.) Restart brings it back.
func (c *Cluster) Crash(name string) error {
	s := c.Site(name)
	if s == nil || s.Store == nil {
		return fmt.Errorf("cluster: crash %s: not running", name)
	}
	s.api.Stop()
	s.ln.Close()
	s.Runner.Close()
	err := s.Store.Close()
	s.Store, s.Hub, s.Runner, s.api = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("cluster: crash %s: %w", name, err)
	}
	return nil
}

// Restart starts a crashed site again from its data directory, on the same
// client endpoint.
func (c *Cluster) Restart(name string) error {
	s := c.Site(name)
	if s == nil || s.Store != nil {
		return fmt.Errorf("cluster: restart %s: not crashed", name)
	}
	var err error
	for range 50 { // the port may take a moment to be free again
		if err = c.open(s); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Wipe deletes a crashed site's data directory, as a lost disk would: Restart
// then starts it empty under the same name.
func (c *Cluster) Wipe(name string) error {
	s := c.Site(name)
	if s == nil || s.Store != nil {
		return fmt.Errorf("cluster: wipe %s: not crashed", name)
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("cluster: wipe %s: %w", name, err)
	}
	return nil
}

// Running lists the sites not crashed, in order.
func (c *Cluster) Running() []*Site {
	var out []*Site
	for _, n := range c.Names() {
		if s := c.Site(n); s.Store != nil {
			out = append(out, s)
		}
	}
	return out
}

// EnsureSame waits until every running site holds the same changes (version
// vector), the same state digest and the same keys and values, and returns an
// error naming the first difference if ctx ends first.
func (c *Cluster) EnsureSame(ctx context.Context) error {
	for {
		err := c.same()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: sites differ: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (c *Cluster) same() error {
	sites := c.Running()
	if len(sites) == 0 {
		return nil
	}
	first := sites[0]
	vv := first.Store.VersionVector()
	digest, err := first.Store.Digest()
	if err != nil {
		return err
	}
	for _, s := range sites[1:] {
		if other := s.Store.VersionVector(); !maps.Equal(vv, other) {
			return fmt.Errorf("%s holds %v, %s holds %v", first.Name, vv, s.Name, other)
		}
		d, err := s.Store.Digest()
		if err != nil {
			return err
		}
		if d != digest {
			return fmt.Errorf("%s and %s hold the same changes but differ: %w", first.Name, s.Name, diff(first.Store, s.Store))
		}
	}
	return nil
}

// diff names the first key two stores disagree on.
func diff(a, b *store.Store) error {
	all := store.RangeOptions{End: []byte{0}}
	ra, err := a.Range([]byte{0}, all)
	if err != nil {
		return err
	}
	rb, err := b.Range([]byte{0}, all)
	if err != nil {
		return err
	}
	for i := range max(len(ra.KVs), len(rb.KVs)) {
		switch {
		case i >= len(ra.KVs):
			return fmt.Errorf("only %s has %q", b.Site(), rb.KVs[i].Key)
		case i >= len(rb.KVs):
			return fmt.Errorf("only %s has %q", a.Site(), ra.KVs[i].Key)
		case !bytes.Equal(ra.KVs[i].Key, rb.KVs[i].Key):
			return fmt.Errorf("%s has %q where %s has %q", a.Site(), ra.KVs[i].Key, b.Site(), rb.KVs[i].Key)
		case !bytes.Equal(ra.KVs[i].Value, rb.KVs[i].Value):
			return fmt.Errorf("%q is %q at %s and %q at %s", ra.KVs[i].Key, ra.KVs[i].Value, a.Site(), rb.KVs[i].Value, b.Site())
		}
	}
	return errors.New("digests differ, values do not")
}

// Close stops every running site.
func (c *Cluster) Close() error {
	var errs []error
	for _, s := range c.Running() {
		errs = append(errs, c.Crash(s.Name))
	}
	return errors.Join(errs...)
}
