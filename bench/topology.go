package bench

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/rhizome-kv/rhizome/internal/netdelay"
)

// topology is N sites, each in its own network namespace, joined by the
// delay layer: for every directed pair (from, to) and every inter-site port
// of to, a netdelay.Proxy listens inside from's namespace at to's address
// and dials to's real listener inside to's namespace; for UDP, one
// netdelay.Relay per pair of sites. Every site thus reaches every other at
// the address that one advertises, through a link of its own, so a cut is
// per site. Clients in the root namespace reach a site's client port
// through an undelayed proxy (expose). Needs Linux and root.
type topology struct {
	ns     []*netdelay.Namespace
	shape  netdelay.Shape
	seed   uint64
	links  map[[2]int][]*netdelay.Proxy // by (from, to)
	relays map[[2]int]*netdelay.Relay   // by (lower, higher) site
	access []*netdelay.Proxy            // root namespace to a site, undelayed
}

// newTopology creates n namespaces named <prefix>-<pid>-<i>.
func newTopology(n int, prefix string, shape netdelay.Shape, seed uint64) (*topology, error) {
	t := &topology{shape: shape, seed: seed, links: map[[2]int][]*netdelay.Proxy{}, relays: map[[2]int]*netdelay.Relay{}}
	for i := range n {
		ns, err := netdelay.NewNamespace(fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), i))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("bench: %w", err), t.close())
		}
		t.ns = append(t.ns, ns)
	}
	return t, nil
}

func (t *topology) linkConfig(name string) netdelay.Config {
	c := netdelay.DefaultConfig()
	c.Name, c.Forward, c.Back, c.Seed = name, t.shape, t.shape, t.seed
	return c
}

// linkTCP makes site to's listener at addr (in its namespace) reachable at
// the same address from every other site, through delayed links.
func (t *topology) linkTCP(to int, addr string) error {
	for from := range t.ns {
		if from == to {
			continue
		}
		ln, err := t.ns[from].ListenTCP(addr)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		p, err := netdelay.StartProxy(t.linkConfig(fmt.Sprintf("%d->%d %s", from, to, addr)), ln, t.ns[to].DialTCP(addr))
		if err != nil {
			ln.Close()
			return fmt.Errorf("bench: %w", err)
		}
		k := [2]int{from, to}
		t.links[k] = append(t.links[k], p)
	}
	return nil
}

// linkUDP joins every pair of sites' UDP sockets at addrs[i] (in site i's
// namespace) through a delayed relay.
func (t *topology) linkUDP(addrs []string) error {
	for a := range t.ns {
		for b := a + 1; b < len(t.ns); b++ {
			front, err := t.ns[a].ListenUDP(addrs[b])
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			rear, err := t.ns[b].ListenUDP(addrs[a])
			if err != nil {
				front.Close()
				return fmt.Errorf("bench: %w", err)
			}
			src, err1 := net.ResolveUDPAddr("udp", addrs[a])
			dst, err2 := net.ResolveUDPAddr("udp", addrs[b])
			if err := errors.Join(err1, err2); err != nil {
				front.Close()
				rear.Close()
				return fmt.Errorf("bench: %w", err)
			}
			r, err := netdelay.StartRelay(t.linkConfig(fmt.Sprintf("%d<->%d udp", a, b)), front, src, rear, dst)
			if err != nil {
				front.Close()
				rear.Close()
				return fmt.Errorf("bench: %w", err)
			}
			t.relays[[2]int{a, b}] = r
		}
	}
	return nil
}

// expose returns a root-namespace address that reaches site i's addr
// without delay.
func (t *topology) expose(i int, addr string) (string, error) {
	c := netdelay.DefaultConfig()
	c.Name = fmt.Sprintf("root->%d %s", i, addr)
	p, err := netdelay.ListenTCP(c, "127.0.0.1:0", t.ns[i].DialTCP(addr))
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	t.access = append(t.access, p)
	return p.Addr().String(), nil
}

// command returns the path and arguments that run bin in site i.
func (t *topology) command(i int, bin string, args []string) (string, []string) {
	return t.ns[i].Command(bin, args...)
}

// cuttable is what a proxy and a relay have in common.
type cuttable interface {
	Cut(netdelay.CutMode)
	Heal()
}

// cut cuts every link to and from site (netdelay.CutStall).
func (t *topology) cut(site int) { t.each(site, func(l cuttable) { l.Cut(netdelay.CutStall) }) }

// heal heals every link to and from site.
func (t *topology) heal(site int) { t.each(site, cuttable.Heal) }

// each calls f with every proxy and relay to or from site.
func (t *topology) each(site int, f func(cuttable)) {
	for k, ps := range t.links {
		if k[0] == site || k[1] == site {
			for _, p := range ps {
				f(p)
			}
		}
	}
	for k, r := range t.relays {
		if k[0] == site || k[1] == site {
			f(r)
		}
	}
}

// setShape gives every inter-site link (not the clients' way in) shape in
// both directions, for data read from now on.
func (t *topology) setShape(shape netdelay.Shape) error {
	var errs []error
	for _, ps := range t.links {
		for _, p := range ps {
			errs = append(errs, p.SetShape(shape, shape))
		}
	}
	for _, r := range t.relays {
		errs = append(errs, r.SetShape(shape, shape))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	t.shape = shape
	return nil
}

// bytes is what crossed the inter-site links so far, both ways.
func (t *topology) bytes() int64 {
	var n int64
	add := func(s netdelay.Stats) { n += s.BytesForward + s.BytesBack }
	for _, ps := range t.links {
		for _, p := range ps {
			add(p.Stats())
		}
	}
	for _, r := range t.relays {
		add(r.Stats())
	}
	return n
}

// close stops every link and deletes the namespaces.
func (t *topology) close() error {
	var errs []error
	for _, p := range t.access {
		errs = append(errs, p.Close())
	}
	for _, ps := range t.links {
		for _, p := range ps {
			errs = append(errs, p.Close())
		}
	}
	for _, r := range t.relays {
		errs = append(errs, r.Close())
	}
	for _, ns := range t.ns {
		errs = append(errs, ns.Close())
	}
	return errors.Join(errs...)
}
