package gossip

import (
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
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a site tells the others about itself.
type Meta struct {
	Site       string   `json:"site"`
	Cluster    string   `json:"cluster"`
	PeerAddr   string   `json:"peer"`
	ClientURLs []string `json:"clients,omitempty"`
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
	Logger    *slog.Logger
}

// DefaultConfig returns a configuration with WAN timing and no encryption; the
// site's metadata and addresses are the caller's to fill in.
func DefaultConfig() Config {
	return Config{Meta: Meta{Cluster: "rhizome-cluster"}, BindAddr: "0.0.0.0:7946", Reconnect: 10 * time.Second, Logger: slog.Default()}
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
	case c.Reconnect <= 0:
		return errors.New("gossip: config: Reconnect must be positive")
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return err
	}
	return nil
}

// Member is a site as gossip knows it.
type Member struct {
	Meta
	Addr  string // gossip address
	Alive bool
}

// Gossip is a running membership.
type Gossip struct {
	cfg  Config
	list *memberlist.Memberlist
	meta []byte

	mu    sync.Mutex
	seen  map[string]time.Time // when each site was last seen alive
	known map[string]string    // gossip address of every site ever seen

	stop chan struct{}
	done chan struct{}
}

// Start joins (or founds) the cluster.
func Start(cfg Config) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
	g := &Gossip{cfg: cfg, meta: meta, seen: map[string]time.Time{}, known: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	mc.Delegate = delegate{g}
	mc.Events = events{g}
	if g.list, err = memberlist.Create(mc); err != nil {
		return nil, fmt.Errorf("gossip: start on %s: %w", cfg.BindAddr, err)
	}
	if len(cfg.Join) > 0 {
		if _, err := g.list.Join(cfg.Join); err != nil {
			// Not fatal: a site cut off at start joins when a peer reaches it.
			cfg.Logger.Warn("gossip: could not join yet", "join", cfg.Join, "err", err)
		}
	}
	go g.reconnect()
	return g, nil
}

// reconnect periodically contacts the sites that are known but not alive.
func (g *Gossip) reconnect() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.Reconnect)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		alive := map[string]bool{}
		for _, n := range g.list.Members() {
			if n.State == memberlist.StateAlive {
				alive[n.Name] = true
			}
		}
		var addrs []string
		g.mu.Lock()
		for site, addr := range g.known {
			if !alive[site] && site != g.cfg.Meta.Site {
				addrs = append(addrs, addr)
			}
		}
		g.mu.Unlock()
		if len(alive) <= 1 {
			addrs = append(addrs, g.cfg.Join...)
		}
		if len(addrs) > 0 {
			if _, err := g.list.Join(addrs); err == nil {
				g.cfg.Logger.Debug("gossip: reconnected", "addrs", addrs)
			}
		}
	}
}

// Join contacts more sites.
func (g *Gossip) Join(addrs []string) error {
	_, err := g.list.Join(addrs)
	return err
}

// Members lists the sites of this cluster that memberlist knows, this one included.
func (g *Gossip) Members() []Member {
	var out []Member
	for _, n := range g.list.Members() {
		var m Meta
		if json.Unmarshal(n.Meta, &m) != nil || m.Cluster != g.cfg.Meta.Cluster {
			continue
		}
		out = append(out, Member{Meta: m, Addr: n.Address(), Alive: n.State == memberlist.StateAlive})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Site, b.Site) })
	return out
}

// Known lists every site seen since this process started, alive or not.
func (g *Gossip) Known() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.known))
}

// LastSeen returns when a site was last known alive (zero if never).
func (g *Gossip) LastSeen(site string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[site]
}

// Close leaves the cluster and stops.
func (g *Gossip) Close() error {
	close(g.stop)
	<-g.done
	g.list.Leave(time.Second)
	return g.list.Shutdown()
}

type delegate struct{ g *Gossip }

func (d delegate) NodeMeta(limit int) []byte                  { return d.g.meta }
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ g *Gossip }

func (e events) NotifyJoin(n *memberlist.Node)   { e.touch(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.touch(n) }
func (e events) NotifyLeave(n *memberlist.Node) {
	e.touch(n)
}

func (e events) touch(n *memberlist.Node) {
	e.g.mu.Lock()
	e.g.seen[n.Name] = time.Now()
	e.g.known[n.Name] = n.Address()
	e.g.mu.Unlock()
	if e.g.cfg.OnChange != nil {
		e.g.cfg.OnChange()
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
