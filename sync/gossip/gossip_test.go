package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// syncBuffer is a log sink safe for memberlist's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, join []string, log *syncBuffer, reg prometheus.Registerer) *Gossip {
	t.Helper()
	return startWith(t, name, "test", []byte("0123456789abcdef"), join, log, reg)
}

func startWith(t *testing.T, name, cluster string, key []byte, join []string, log *syncBuffer, reg prometheus.Registerer) *Gossip {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Meta = Meta{Site: name, Cluster: cluster, PeerAddr: "127.0.0.1:1"}
	cfg.BindAddr, cfg.Join, cfg.LAN = testbin.Addr(t), join, true
	cfg.Key = key
	cfg.Poll = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	cfg.Registerer = reg
	g, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stateOf(g *Gossip, site string) State {
	for _, m := range g.Sites() {
		if m.Site == site {
			return m.State
		}
	}
	return ""
}

// TestSiteStates: a site that shuts down cleanly is recorded as left, one that
// vanishes as dead; both stay listed, with a log line each, and the members gauge
// follows. The gossip key never appears in the log.
func TestSiteStates(t *testing.T) {
	var log syncBuffer
	reg := prometheus.NewRegistry()
	a := start(t, "a", nil, &log, reg)
	defer a.Close()
	b := start(t, "b", []string{a.cfg.BindAddr}, &syncBuffer{}, nil)
	c := start(t, "c", []string{a.cfg.BindAddr}, &syncBuffer{}, nil)
	waitFor(t, "a sees three alive sites", func() bool { return a.count(StateAlive) == 3 })
	if got := members(t, reg, "alive"); got != 3 {
		t.Fatalf("rhizome_gossip_members{state=alive} = %v, want 3", got)
	}

	b.Close()
	waitFor(t, "b is left", func() bool { return stateOf(a, "b") == StateLeft })
	c.list.Shutdown() // vanishes without a word, as a killed process
	close(c.stop)
	<-c.done
	waitFor(t, "c is dead", func() bool { return stateOf(a, "c") == StateDead })
	if len(a.Members()) != 1 {
		t.Fatalf("memberlist still lists %d members", len(a.Members()))
	}
	for state, want := range map[string]float64{"alive": 1, "dead": 1, "left": 1, "suspect": 0} {
		if got := members(t, reg, state); got != want {
			t.Errorf("rhizome_gossip_members{state=%s} = %v, want %v", state, got, want)
		}
	}
	out := log.String()
	for _, line := range []string{"site=b", "site=c", "gossip: site joined", "gossip: site left", "gossip: site dead"} {
		if !strings.Contains(out, line) {
			t.Errorf("log lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, "0123456789abcdef") || strings.Contains(out, fmt.Sprintf("%x", "0123456789abcdef")) {
		t.Error("the log holds the gossip key")
	}
}

// members reads rhizome_gossip_members{state} from a registry.
func members(t *testing.T, reg *prometheus.Registry, state string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "rhizome_gossip_members" && m.GetLabel()[0].GetValue() == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no rhizome_gossip_members{state=%q}", state)
	return 0
}

// TestOutsidersCannotJoin: processes that know a member's gossip address but
// lack the cluster's gossip key (another key, or none) are not members, and
// neither is a site of another cluster with the key; each sees none of the
// members. The cluster token travels only as its digest.
func TestOutsidersCannotJoin(t *testing.T) {
	var log syncBuffer
	key := []byte("0123456789abcdef")
	a := startWith(t, "a", "token-1", key, nil, &log, nil)
	defer a.Close()
	b := startWith(t, "b", "token-1", key, []string{a.cfg.BindAddr}, &syncBuffer{}, nil)
	defer b.Close()
	waitFor(t, "a sees b", func() bool { return a.count(StateAlive) == 2 })
	outsiders := map[string]*Gossip{
		"another key":     startWith(t, "x", "token-1", []byte("fedcba9876543210"), []string{a.cfg.BindAddr}, &syncBuffer{}, nil),
		"no key":          startWith(t, "y", "token-1", nil, []string{a.cfg.BindAddr}, &syncBuffer{}, nil),
		"another cluster": startWith(t, "z", "token-2", key, []string{a.cfg.BindAddr}, &syncBuffer{}, nil),
	}
	time.Sleep(2 * time.Second) // several gossip rounds
	for why, o := range outsiders {
		defer o.Close()
		if n := len(o.Sites()); n != 1 {
			t.Errorf("%s: the outsider knows %d sites: %+v", why, n, o.Sites())
		}
	}
	for _, g := range []*Gossip{a, b} {
		if sites := g.Sites(); len(sites) != 2 || len(g.Members()) != 2 {
			t.Errorf("%s lists %+v, want a and b only", g.cfg.Meta.Site, sites)
		}
		for _, m := range g.Sites() {
			if m.Cluster != ClusterID("token-1") {
				t.Errorf("%s shows %s's cluster as %q, want its digest", g.cfg.Meta.Site, m.Site, m.Cluster)
			}
		}
	}
	if strings.Contains(log.String(), "token-1") {
		t.Error("the log holds the cluster token")
	}
}
