package site

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/rhizome-kv/rhizome/etcdshim"
	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/sync/gossip"
	"github.com/rhizome-kv/rhizome/sync/peer"
)

// startSync starts the peer service and gossip, and keeps the set of peers the
// sync runner talks to equal to the live sites gossip reports.
func (s *Site) startSync(clientURLs []string) error {
	cfg := s.cfg
	_, addr, _ := parseURL(cfg.ListenPeerURLs[0])
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("site: listen %s: %w", cfg.ListenPeerURLs[0], err)
	}
	s.peerLn = ln
	advertise := ln.Addr().String()
	if len(cfg.AdvertisePeerURLs) > 0 {
		if _, advertise, err = parseURL(cfg.AdvertisePeerURLs[0]); err != nil {
			return err
		}
	}
	pcfg := peer.DefaultConfig()
	pcfg.AntiEntropyInterval = cfg.AntiEntropyInterval
	pcfg.Logger, pcfg.Registerer, pcfg.GRPC.ServerOptions = cfg.Logger, cfg.Registerer, s.grpcOpts
	pcfg.GRPC.ClusterToken = cfg.ClusterToken // peer streams prove it both ways
	if pcfg.GRPC.ServerTLS, pcfg.GRPC.ClientTLS, err = cfg.peerTLS(); err != nil {
		return err
	}
	if s.Sync, err = peer.NewRunner(pcfg, s.Store); err != nil {
		return err
	}
	go s.Sync.Serve(ln)

	s.membership = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	gcfg := gossip.DefaultConfig()
	gcfg.Meta = gossip.Meta{Site: cfg.Name, Cluster: cfg.ClusterToken, PeerAddr: advertise, ClientURLs: clientURLs}
	gcfg.BindAddr, gcfg.Join, gcfg.Key, gcfg.LAN, gcfg.Logger = cfg.GossipAddr, cfg.Join, cfg.GossipKey, cfg.GossipLAN, cfg.Logger
	gcfg.Registerer = cfg.Registerer
	gcfg.OnChange = func() {
		select {
		case s.membership <- struct{}{}:
		default:
		}
	}
	if s.Gossip, err = gossip.Start(gcfg); err != nil {
		return err
	}
	s.Store.SetSiteAlive(func(site string) bool {
		for _, m := range s.Gossip.Members() {
			if m.Site == site {
				return m.Alive
			}
		}
		return false
	})
	s.following = make(chan struct{})
	s.started = time.Now()
	go s.followMembership(s.stop)
	return nil
}

// followMembership keeps the sync runner's peers equal to the live sites and
// the dead ones still counted (peers), and proposes to forget the sites not
// heard of within ForgetSiteAfter (counted).
func (s *Site) followMembership(stop <-chan struct{}) {
	defer close(s.following)
	tick := time.NewTicker(min(time.Minute, s.cfg.ForgetSiteAfter/2))
	defer tick.Stop()
	for {
		counted := s.counted()
		s.Sync.SetPeers(s.peers(counted))
		s.Sync.SetCounted(counted)
		select {
		case <-stop:
			return
		case <-s.membership:
		case <-tick.C:
		}
	}
}

// peers lists the sites the sync runner keeps a stream to, by name, with their
// peer addresses: the live ones, and the dead ones still counted. A stream to a
// site behind a cut is then redialled within peer.Config.Redial once the cut
// heals, not only once gossip finds the site alive again (memberlist hears of a
// dead member only when one side reaches the other: up to gossip's Reconnect).
// A site that left, or that this one forgot, is not dialled.
func (s *Site) peers(counted []string) map[string]string {
	peers := map[string]string{}
	for _, m := range s.Gossip.Sites() {
		dialled := m.Alive || m.State == gossip.StateDead && slices.Contains(counted, m.Site)
		if dialled && m.Site != s.cfg.Name && m.PeerAddr != "" {
			peers[m.Site] = m.PeerAddr
		}
	}
	return peers
}

// counted lists the sites this site's clock still counts: every site gossip
// knows or whose changes are here, unless dead and unheard of for
// ForgetSiteAfter (since it was last seen, or since this site started if never).
// The clock only proposes: for a site left out, the sync runner records a
// decision to forget its incarnation, which every site receives and applies
// alike; the decisions, not this list, say which sites count (see sync/peer's
// doc, Forgetting). Sites are named without their incarnations.
func (s *Site) counted() []string {
	sites, alive := map[string]bool{}, map[string]bool{}
	for _, m := range s.Gossip.Members() {
		alive[m.Site] = m.Alive
	}
	for _, site := range s.Gossip.Known() {
		sites[site] = true
	}
	for o := range s.Store.VersionVector() {
		sites[store.OriginSite(o)] = true
	}
	var out []string
	for site := range sites {
		seen := s.Gossip.LastSeen(site)
		if seen.Before(s.started) {
			seen = s.started
		}
		if site == s.cfg.Name || alive[site] || time.Since(seen) < s.cfg.ForgetSiteAfter {
			out = append(out, site)
		}
	}
	return out
}

// members reports the live sites for etcd's MemberList.
func (s *Site) members() []etcdshim.Member {
	scheme := "http://"
	if s.cfg.PeerCertFile != "" {
		scheme = "https://"
	}
	var out []etcdshim.Member
	for _, m := range s.Gossip.Members() {
		if m.Alive {
			out = append(out, etcdshim.Member{Name: m.Site, PeerURLs: []string{scheme + m.PeerAddr}, ClientURLs: m.ClientURLs})
		}
	}
	return out
}

func (s *Site) stopSync() {
	if s.stop != nil {
		close(s.stop)
		if s.following != nil {
			<-s.following
		}
	}
	if s.Gossip != nil {
		s.Gossip.Close()
	}
	if s.Sync != nil {
		s.Sync.Close()
	}
	if s.peerLn != nil {
		s.peerLn.Close()
	}
}

// peerTLS builds the TLS configurations of the peer service and of its clients.
func (c Config) peerTLS() (server, client *tls.Config, err error) {
	if c.PeerCertFile == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.PeerCertFile, c.PeerKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("site: peer TLS: %w", err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.PeerTrustedCAFile != "" {
		pem, err := os.ReadFile(c.PeerTrustedCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("site: peer trusted CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("site: peer trusted CA %s: no certificates", c.PeerTrustedCAFile)
		}
		server.ClientCAs, client.RootCAs = pool, pool
		if c.PeerClientCertAuth {
			server.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return server, client, nil
}
