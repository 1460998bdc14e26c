package multisite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/netdelay"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// netPrefix starts the name of every namespace and link the tests create, so a
// run can find and remove what a crashed earlier run left behind.
const netPrefix = "rhzms"

// lockPath is the lock that serialises the test processes using the network: the
// names and addresses are fixed, so two runs at once would tear down each
// other's links.
func lockPath() string { return filepath.Join(os.TempDir(), "rhizome-multisite-netns.lock") }

// lockWait bounds how long a run waits for another run to finish with the network.
const lockWait = 10 * time.Minute

// network is the private network of one test: a hub namespace holding the peer
// bridge, and per site a namespace with two links:
//
//	root namespace 10.213.(i+1).1/30 <-veth-> 10.213.(i+1).2/30  site i  (clients)
//	site i         10.213.0.(i+1)/24 <-veth-> port of the hub bridge      (gossip, sync)
//
// Cutting a site sets its bridge port down: frames to and from it are dropped
// silently, as on a failed WAN link, while the test still reaches its clients.
// The bridge lives in a namespace of its own so that no root-namespace firewall
// (br_netfilter) filters the sites' traffic.
type network struct {
	t     testing.TB
	hub   string
	sites []netSite
}

// netSite is one site's place in the network.
type netSite struct {
	NS       string // network namespace the site runs in
	PeerIP   string // on the peer bridge: gossip and sync
	ClientIP string // on its link to the root namespace: clients
	hubPort  string // its port on the bridge (in the hub namespace)
}

// needNetns skips the test unless it can create network namespaces.
func needNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("multisite: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("multisite: needs the ip command (iproute2)")
	}
}

// newNetwork creates the network for n sites and removes it when the test ends,
// whether it passes or fails.
func newNetwork(t testing.TB, n int) *network {
	t.Helper()
	needNetns(t)
	unlock, err := lockNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	if err := removeLeftovers(); err != nil {
		t.Fatalf("multisite: removing a previous run's namespaces: %v", err)
	}
	// Addresses are only ever placed on links made here, but a route already in
	// the root namespace for the range would capture client traffic.
	if out, err := ipOut("-o", "route", "show", "root", "10.213.0.0/16"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("multisite: 10.213.0.0/16 is already routed in the root namespace (%v):\n%s", err, out)
	}
	nw := &network{t: t, hub: netPrefix + "-hub"}
	t.Cleanup(func() {
		if err := removeLeftovers(); err != nil {
			t.Errorf("multisite: removing namespaces: %v", err)
		}
	})
	steps := [][]string{
		{"netns", "add", nw.hub},
		{"-n", nw.hub, "link", "add", netPrefix + "br", "type", "bridge"},
		{"-n", nw.hub, "link", "set", netPrefix + "br", "up"},
	}
	for i := range n {
		s := netSite{
			NS:       fmt.Sprintf("%s-s%d", netPrefix, i),
			PeerIP:   fmt.Sprintf("10.213.0.%d", i+1),
			ClientIP: fmt.Sprintf("10.213.%d.2", i+1),
			hubPort:  fmt.Sprintf("%s%db", netPrefix, i),
		}
		peerIf := fmt.Sprintf("%s%dp", netPrefix, i)
		clientIf := fmt.Sprintf("%s%dc", netPrefix, i)
		rootIf := fmt.Sprintf("%s%dr", netPrefix, i)
		steps = append(steps,
			[]string{"netns", "add", s.NS},
			[]string{"-n", s.NS, "link", "set", "lo", "up"},
			// Peer link: site <-> bridge port.
			[]string{"link", "add", peerIf, "type", "veth", "peer", "name", s.hubPort},
			[]string{"link", "set", peerIf, "netns", s.NS},
			[]string{"link", "set", s.hubPort, "netns", nw.hub},
			[]string{"-n", nw.hub, "link", "set", s.hubPort, "master", netPrefix + "br", "up"},
			[]string{"-n", s.NS, "addr", "add", s.PeerIP + "/24", "dev", peerIf},
			[]string{"-n", s.NS, "link", "set", peerIf, "up"},
			// Client link: root namespace <-> site.
			[]string{"link", "add", rootIf, "type", "veth", "peer", "name", clientIf},
			[]string{"link", "set", clientIf, "netns", s.NS},
			[]string{"addr", "add", fmt.Sprintf("10.213.%d.1/30", i+1), "dev", rootIf},
			[]string{"link", "set", rootIf, "up"},
			[]string{"-n", s.NS, "addr", "add", s.ClientIP + "/30", "dev", clientIf},
			[]string{"-n", s.NS, "link", "set", clientIf, "up"},
		)
		nw.sites = append(nw.sites, s)
	}
	for _, args := range steps {
		if _, err := ipOut(args...); err != nil {
			t.Fatalf("multisite: setting up the network: %v", err)
		}
	}
	return nw
}

// Cut drops every frame to and from site i on the peer network.
func (nw *network) Cut(i int) { nw.setPort(i, "down") }

// Heal reconnects site i to the peer network.
func (nw *network) Heal(i int) { nw.setPort(i, "up") }

func (nw *network) setPort(i int, state string) {
	nw.t.Helper()
	if _, err := ipOut("-n", nw.hub, "link", "set", nw.sites[i].hubPort, state); err != nil {
		nw.t.Fatalf("multisite: setting site %d's peer link %s: %v", i, state, err)
	}
}

// PeerBytes returns, per site, the bytes its peer link has sent onto the bridge
// (Ethernet frames: everything the site sent to other sites, headers included).
func (nw *network) PeerBytes() ([]uint64, error) {
	out, err := ipOut("-n", nw.hub, "-s", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			RX struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("multisite: ip -s -j link: %w", err)
	}
	got := make([]uint64, len(nw.sites))
	found := 0
	for _, l := range links {
		for i, s := range nw.sites {
			if l.Name == s.hubPort {
				got[i] = l.Stats.RX.Bytes // what the bridge port received is what the site sent
				found++
			}
		}
	}
	if found != len(nw.sites) {
		return nil, fmt.Errorf("multisite: found %d of %d bridge ports", found, len(nw.sites))
	}
	return got, nil
}

// TCPSent returns the TCP payload bytes site i has sent on connections to or from
// port (the kernel's tcp_info bytes_sent, retransmissions included), and the
// connections counted, so a caller can tell whether they changed between readings.
func (nw *network) TCPSent(i int, port int) (uint64, []string, error) {
	filter := fmt.Sprintf("( sport = :%d or dport = :%d )", port, port)
	path, argv := (&netdelay.Namespace{Name: nw.sites[i].NS}).Command("ss", "-tinH", "state", "established", filter)
	out, err := testbin.Run(context.Background(), path, argv...)
	if err != nil {
		return 0, nil, fmt.Errorf("multisite: ss in %s: %w", nw.sites[i].NS, err)
	}
	// ss prints each connection as an address line followed by an indented
	// line of tcp_info fields.
	var total uint64
	var conns []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) >= 4 && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			conns = append(conns, fields[2]+">"+fields[3])
			continue
		}
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "bytes_sent:"); ok {
				var n uint64
				if _, err := fmt.Sscan(v, &n); err != nil {
					return 0, nil, fmt.Errorf("multisite: ss field %q: %w", f, err)
				}
				total += n
			}
		}
	}
	return total, conns, nil
}

// lockNetwork takes the machine-wide lock of the test network, waiting for
// another run to finish with it. The kernel releases it if the process dies.
func lockNetwork() (func(), error) {
	f, err := os.OpenFile(lockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("multisite: lock: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("multisite: lock %s (another run using the test network?): %w", lockPath(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// removeLeftovers deletes every namespace and root-namespace link named with
// netPrefix. Callers hold the lock, so none of them belongs to a live run.
// Deleting a namespace deletes the veths in it and, a moment later (the kernel
// does it asynchronously), their other ends; so it waits until the root
// namespace holds no such link before a new network reuses the names.
func removeLeftovers() error {
	out, err := ipOut("netns", "list")
	if err != nil {
		return err
	}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], netPrefix+"-") {
			if _, err := ipOut("netns", "delete", f[0]); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		links, err := prefixedLinks()
		if err != nil || len(links) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("multisite: links %v remain", links)
		}
		for _, name := range links {
			// It may vanish on its own meanwhile; the next listing tells.
			_, _ = ipOut("link", "delete", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// prefixedLinks lists the root namespace's links named with netPrefix.
func prefixedLinks() ([]string, error) {
	out, err := ipOut("-o", "link", "show")
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.Lines(out) {
		// "12: rhzms0r@if11: <BROADCAST,..."
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, netPrefix) {
			names = append(names, name)
		}
	}
	return names, nil
}

func ipOut(args ...string) (string, error) {
	out, err := testbin.Run(context.Background(), "ip", args...)
	if err != nil {
		return out, fmt.Errorf("multisite: %w", err)
	}
	return out, nil
}
