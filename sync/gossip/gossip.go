package gossip

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// Meta is what a site tells the others about itself.
type Meta struct {
	Site string `json:"site"`
	// Cluster is the cluster token in a Config; it travels, and a Member
	// shows it, only as a digest (ClusterID), so that a process that gossips
	// with the site, or reads its gossip, does not learn the token the sites'
	// peer streams prove (sync/peer).
	Cluster    string   `json:"cluster"`
	PeerAddr   string   `json:"peer"`
	ClientURLs []string `json:"clients,omitempty"`
	// Leaving is set by a site shutting down, just before it leaves, so the
	// others record it as left rather than dead.
	Leaving bool `json:"leaving,omitempty"`
}

// Config configures gossip.
type Config struct {
	Meta Meta
	// BindAddr is the HOST:PORT memberlist listens on (TCP and UDP) and
	// advertises.
	BindAddr string
	// Join lists HOST:PORT gossip addresses of existing sites (any one suffices).
	Join []string
	// Key, when set, encrypts and authenticates gossip (16, 24 or 32 bytes).
	Key []byte
	// LAN selects memberlist's LAN timing (faster failure detection) instead of
	// the WAN default; tests use it.
	LAN bool
	// OnChange is called (from memberlist's goroutines) when membership changes.
	OnChange func()
	// Reconnect is how often sites known but not alive (and the Join addresses,
	// while alone) are contacted again: memberlist gives up on dead members, so
	// without this a partition long enough to be detected would never heal.
	Reconnect time.Duration
	// Poll is how often member states are read from memberlist, which reports
	// no event when a site becomes suspect.
	Poll   time.Duration
	Now    func() time.Time // the clock of last-seen times
	Logger *slog.Logger     // one line per site joined, suspected, dead, back or left
	// Registerer, when set, receives rhizome_gossip_members{state}.
	Registerer prometheus.Registerer
}

// DefaultConfig returns a configuration with WAN timing and no encryption; the
// site's metadata and addresses are the caller's to fill in.
func DefaultConfig() Config {
	return Config{Meta: Meta{Cluster: "rhizome-cluster"}, BindAddr: "0.0.0.0:7946", Reconnect: 10 * time.Second, Poll: time.Second,
		Now: time.Now, Logger: slog.Default()}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Meta.Site == "" || c.Meta.Cluster == "":
		return errors.New("gossip: config: site and cluster names are required")
	case c.Meta.PeerAddr == "":
		return errors.New("gossip: config: peer address is required")
	case len(c.Key) != 0 && len(c.Key) != 16 && len(c.Key) != 24 && len(c.Key) != 32:
		return fmt.Errorf("gossip: config: key must be 16, 24 or 32 bytes, not %d", len(c.Key))
	case c.Logger == nil:
		return errors.New("gossip: config: Logger is required")
	case c.Reconnect <= 0 || c.Poll <= 0:
		return errors.New("gossip: config: Reconnect and Poll must be positive")
	case c.Now == nil:
		return errors.New("gossip: config: Now is required")
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return err
	}
	return nil
}

// State is what failure detection says of a site.
type State string

// The states of a site. A site memberlist has forgotten (it reaps dead members
// after a while) keeps the last state it had.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect" // alive for memberlist, but this site's probes of it go unanswered
	StateDead    State = "dead"
	StateLeft    State = "left" // left the cluster on purpose (shut down)
)

// States lists every State, in a fixed order.
var States = []State{StateAlive, StateSuspect, StateDead, StateLeft}

// Member is a site as gossip knows it.
type Member struct {
	Meta
	Addr     string // gossip address
	Alive    bool
	State    State
	LastSeen time.Time // when it was last known alive (zero if never)
}

// Gossip is a running membership.
type Gossip struct {
	cfg  Config
	list *memberlist.Memberlist
	// probeInterval and probeTimeout are memberlist's: a member whose last
	// answer to this site's direct probes is older than one probe round (every
	// member probed once) and a timeout is suspect.
	probeInterval, probeTimeout time.Duration

	mu    sync.Mutex
	meta  []byte
	sites map[string]*Member   // every site of the cluster ever heard of, by name
	acked map[string]time.Time // when each site last answered a direct probe

	stop chan struct{}
	done chan struct{}
}

// Start joins (or founds) the cluster.
func Start(cfg Config) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Meta.Cluster = ClusterID(cfg.Meta.Cluster)
	host, port, _ := splitHostPort(cfg.BindAddr)
	mc := memberlist.DefaultWANConfig()
	if cfg.LAN {
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.Meta.Site
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.SecretKey = cfg.Key
	mc.Logger = log.New(io.Discard, "", 0)
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	g := &Gossip{cfg: cfg, meta: meta, probeInterval: mc.ProbeInterval, probeTimeout: mc.ProbeTimeout, sites: map[string]*Member{}, acked: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	mc.Delegate = delegate{g}
	mc.Events = events{g}
	mc.Ping = delegate{g}
	if g.list, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("gossip: start on %s: %w", cfg.BindAddr, err)
	}
	if len(cfg.Join) > 0 {
		if _, err := g.list.Join(cfg.Join); err != nil {
			// Not fatal: a site cut off at start joins when a peer reaches it.
			cfg.Logger.Warn("gossip: could not join yet", "join", cfg.Join, "err", err)
		}
	}
	if cfg.Registerer != nil {
		if err := g.register(cfg.Registerer); err != nil {
			g.list.Shutdown()
			return nil, err
		}
	}
	go g.run()
	return g, nil
}

// ClusterID is the digest of a cluster token that gossip carries in its place.
func ClusterID(token string) string {
	sum := sha256.Sum256([]byte("rhizome gossip cluster id\x00" + token))
	return hex.EncodeToString(sum[:16])
}

// register adds rhizome_gossip_members{state}: the sites ever heard of, by state.
func (g *Gossip) register(reg prometheus.Registerer) error {
	for _, st := range States {
		gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "rhizome_gossip_members",
			Help:        "Sites of the cluster ever heard of since start (this one included), by failure-detection state.",
			ConstLabels: prometheus.Labels{"state": string(st)},
		}, func() float64 { return float64(g.count(st)) })
		if err := reg.Register(gauge); err != nil {
			return fmt.Errorf("gossip: metrics: %w", err)
		}
	}
	return nil
}

func (g *Gossip) count(st State) int {
	n := 0
	for _, m := range g.Sites() {
		if m.State == st {
			n++
		}
	}
	return n
}

// run polls member states and reconnects to sites known but not alive, until Close.
func (g *Gossip) run() {
	defer close(g.done)
	poll, reconnect := time.NewTicker(g.cfg.Poll), time.NewTicker(g.cfg.Reconnect)
	defer poll.Stop()
	defer reconnect.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-poll.C:
			g.refresh()
		case <-reconnect.C:
			g.reconnect()
		}
	}
}

// refresh re-reads, for every site memberlist counts alive, whether it answers this
// site's probes (memberlist raises no event on suspicion) and notes it seen. It
// reads gossip's own record: the nodes memberlist hands out may change under a
// reader, except inside its event callbacks.
func (g *Gossip) refresh() {
	type change struct{ m, prev Member }
	var changes []change
	now := g.cfg.Now()
	g.mu.Lock()
	for name, m := range g.sites {
		if !m.Alive || name == g.cfg.Meta.Site {
			continue
		}
		prev := *m
		m.State = StateAlive
		if now.Sub(g.acked[name]) > time.Duration(len(g.sites))*g.probeInterval+g.probeTimeout {
			m.State = StateSuspect
		} else {
			m.LastSeen = now
		}
		if m.State != prev.State {
			changes = append(changes, change{*m, prev})
		}
	}
	g.mu.Unlock()
	for _, c := range changes {
		g.logChange(c.m, c.prev)
	}
}

// reconnect contacts the sites that are known but not alive.
func (g *Gossip) reconnect() {
	alive := 0
	var addrs []string
	g.mu.Lock()
	for site, m := range g.sites {
		switch {
		case m.Alive:
			alive++
		case site != g.cfg.Meta.Site:
			addrs = append(addrs, m.Addr)
		}
	}
	g.mu.Unlock()
	alone := alive <= 1
	if alone {
		addrs = append(addrs, g.cfg.Join...)
	}
	if len(addrs) == 0 {
		return
	}
	_, err := g.list.Join(addrs)
	switch {
	case err == nil:
		g.cfg.Logger.Debug("gossip: reconnected", "addrs", addrs)
	case alone:
		// A site that stays alone is most often one started with another
		// cluster's --gossip-key or --initial-cluster-token: say so every round,
		// not only at start, so the operator sees it in the logs.
		g.cfg.Logger.Warn("gossip: alone, no other site answers (check --gossip-key and --initial-cluster-token match the other sites)", "join", addrs, "err", err)
	}
}

// Join contacts more sites.
func (g *Gossip) Join(addrs []string) error {
	_, err := g.list.Join(addrs)
	return err
}

// Members lists the sites of this cluster that memberlist counts alive (suspect
// included), this one too, in name order.
func (g *Gossip) Members() []Member {
	var out []Member
	for _, m := range g.Sites() {
		if m.Alive {
			out = append(out, m)
		}
	}
	return out
}

// member reads a memberlist node, gone if memberlist has declared it dead or left;
// false if it is not of this cluster. Call it only from memberlist's event
// callbacks, where the node does not change under the reader.
func (g *Gossip) member(n *memberlist.Node, gone bool) (Member, bool) {
	var meta Meta
	if json.Unmarshal(n.Meta, &meta) != nil || meta.Cluster != g.cfg.Meta.Cluster || meta.Site != n.Name {
		return Member{}, false
	}
	m := Member{Meta: meta, Addr: n.Address(), Alive: !gone, State: StateAlive}
	switch {
	case gone && meta.Leaving:
		m.State = StateLeft
	case gone:
		m.State = StateDead
	}
	return m, true
}

// Sites lists every site of the cluster heard of since this process started, this
// one included, in name order, each with its latest state: a site memberlist has
// reaped stays, as dead (or left).
func (g *Gossip) Sites() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.sites))
	for _, name := range slices.Sorted(maps.Keys(g.sites)) {
		out = append(out, *g.sites[name])
	}
	return out
}

// Known lists every site seen since this process started, alive or not.
func (g *Gossip) Known() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.sites))
}

// LastSeen returns when a site was last known alive (zero if never).
func (g *Gossip) LastSeen(site string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m := g.sites[site]; m != nil {
		return m.LastSeen
	}
	return time.Time{}
}

// Close tells the others this site is leaving, leaves the cluster and stops.
func (g *Gossip) Close() error {
	close(g.stop)
	<-g.done
	leaving := g.cfg.Meta
	leaving.Leaving = true
	if meta, err := json.Marshal(leaving); err == nil {
		g.mu.Lock()
		g.meta = meta
		g.mu.Unlock()
		g.list.UpdateNode(time.Second / 2)
	}
	g.list.Leave(time.Second)
	return g.list.Shutdown()
}

// delegate answers memberlist. Its methods must not block: memberlist calls them
// from its own goroutines, some with its locks held.
type delegate struct{ g *Gossip }

func (d delegate) NodeMeta(limit int) []byte {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	return d.g.meta
}
func (d delegate) AckPayload() []byte { return nil }
func (d delegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, payload []byte) {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	d.g.acked[n.Name] = d.g.cfg.Now()
}
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ g *Gossip }

// memberlist calls these with its own locks held: they must not call back into it.
func (e events) NotifyJoin(n *memberlist.Node)   { e.touch(n, false) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.touch(n, false) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.touch(n, true) }

func (e events) touch(n *memberlist.Node, gone bool) {
	e.g.record(n, gone)
	if e.g.cfg.OnChange != nil {
		e.g.cfg.OnChange()
	}
}

// record notes a node's state (a site of this cluster only) and logs a change of it.
func (g *Gossip) record(n *memberlist.Node, gone bool) {
	m, ok := g.member(n, gone)
	if !ok {
		return
	}
	now := g.cfg.Now()
	g.mu.Lock()
	prev := g.sites[m.Site]
	switch {
	case m.State == StateAlive:
		m.LastSeen = now
	case prev != nil:
		m.LastSeen = prev.LastSeen
	}
	if prev == nil || prev.Alive != m.Alive {
		g.acked[m.Site] = now // probes start anew
	}
	was := Member{}
	if prev != nil {
		was = *prev
	}
	stored := m // refresh updates the record in place, under g.mu
	g.sites[m.Site] = &stored
	g.mu.Unlock()
	if m.Site != g.cfg.Meta.Site {
		g.logChange(m, was)
	}
}

// logChange writes one line when a site's state changes (was is the zero Member
// for a site first heard of).
func (g *Gossip) logChange(m, prev Member) {
	log := g.cfg.Logger.With("site", m.Site, "gossip-addr", m.Addr, "peer-addr", m.PeerAddr)
	was := prev.State
	switch {
	case was == m.State:
	case m.State == StateAlive && was == "":
		log.Info("gossip: site joined")
	case m.State == StateAlive && was == StateSuspect:
		log.Info("gossip: site no longer suspected")
	case m.State == StateAlive:
		log.Info("gossip: site back", "was", string(was), "unseen-for", m.LastSeen.Sub(prev.LastSeen).Round(time.Second).String())
	case m.State == StateSuspect:
		log.Warn("gossip: site suspected")
	case m.State == StateDead:
		log.Warn("gossip: site dead", "last-seen", m.LastSeen)
	case m.State == StateLeft:
		log.Info("gossip: site left")
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("gossip: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("gossip: address %q: bad port", addr)
	}
	return host, port, nil
}
