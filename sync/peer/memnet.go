package peer

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
)

// Network is an in-memory network of sites for tests, in the style of raft's testing
// harness: it holds messages in flight and delivers them one at a time in an order
// chosen by a seeded random source, so delivery is delayed and reordered; it can
// drop and duplicate messages and partition sites. Everything runs on the caller's
// goroutine, so a run is fully determined by its seed.
type Network struct {
	rng      *rand.Rand
	engines  map[string]*Engine
	inFlight []Envelope
	group    map[string]int // partition group of each site; sites talk within a group
	cut      map[[2]string]bool
	// DropRate and DupRate are the chances that a sent message is lost or doubled.
	DropRate, DupRate  float64
	Delivered, Dropped int
}

// NewNetwork returns an empty network driven by seed.
func NewNetwork(seed uint64) *Network {
	return &Network{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), engines: map[string]*Engine{}, group: map[string]int{}, cut: map[[2]string]bool{}}
}

// Add puts a site on the network; every site counts every other for stability.
func (n *Network) Add(site string, e *Engine) {
	n.engines[site] = e
	for _, e := range n.engines {
		e.SetCounted(n.Sites())
	}
}

// Sites returns the attached sites in order.
func (n *Network) Sites() []string { return slices.Sorted(maps.Keys(n.engines)) }

// Partition splits the sites into groups that cannot reach each other; sites not
// named form one more group.
func (n *Network) Partition(groups ...[]string) {
	clear(n.group)
	for i, g := range groups {
		for _, s := range g {
			n.group[s] = i + 1
		}
	}
}

// Cut breaks the link between two sites (both ways); other links stay.
func (n *Network) Cut(a, b string) {
	n.cut[[2]string{a, b}], n.cut[[2]string{b, a}] = true, true
}

// Heal joins every site again and restores every link.
func (n *Network) Heal() {
	clear(n.group)
	clear(n.cut)
}

func (n *Network) reachable(a, b string) bool {
	return n.group[a] == n.group[b] && !n.cut[[2]string{a, b}]
}

// send puts messages in flight, losing or doubling some. Each message goes through
// the wire encoding, as it would between real sites.
func (n *Network) send(from string, envs []Envelope) {
	for _, e := range envs {
		var wire Message
		if err := wire.decode(e.Msg.encode()); err != nil {
			panic(fmt.Sprintf("peer: message does not survive the wire: %v", err))
		}
		e.Msg = wire
		if !n.reachable(from, e.To) || n.rng.Float64() < n.DropRate {
			n.Dropped++
			continue
		}
		n.inFlight = append(n.inFlight, e)
		if n.rng.Float64() < n.DupRate {
			n.inFlight = append(n.inFlight, e)
		}
	}
}

// Tick runs one anti-entropy round: every site pulls from and pushes to every
// other site it can reach.
func (n *Network) Tick() error {
	for _, from := range n.Sites() {
		e := n.engines[from]
		for _, to := range n.Sites() {
			if to == from {
				continue
			}
			n.send(from, []Envelope{e.Pull(to)})
			push, err := e.Push(to)
			if err != nil {
				return err
			}
			n.send(from, push)
		}
	}
	return nil
}

// Step delivers one message in flight, chosen at random; false when none is left.
// A message whose destination became unreachable while in flight is lost.
func (n *Network) Step(ctx context.Context) (bool, error) {
	if len(n.inFlight) == 0 {
		return false, nil
	}
	i := n.rng.IntN(len(n.inFlight))
	env := n.inFlight[i]
	n.inFlight = slices.Delete(n.inFlight, i, i+1)
	if !n.reachable(env.Msg.From, env.To) {
		n.Dropped++
		return true, nil
	}
	n.Delivered++
	replies, err := n.engines[env.To].Handle(ctx, env.Msg)
	if err != nil {
		return true, fmt.Errorf("peer: %s handling %d from %s: %w", env.To, env.Msg.Kind, env.Msg.From, err)
	}
	n.send(env.To, replies)
	return true, nil
}

// Drain delivers messages until none are in flight (at most max deliveries).
func (n *Network) Drain(ctx context.Context, max int) error {
	for range max {
		more, err := n.Step(ctx)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Converged reports whether all sites hold the same version vector.
func (n *Network) Converged() bool {
	var first map[string]uint64
	for i, s := range n.Sites() {
		vv := n.engines[s].st.VersionVector()
		if i == 0 {
			first = vv
		} else if !maps.Equal(first, vv) {
			return false
		}
	}
	return true
}

// Settle turns message faults off (partitions and cuts stay) and runs anti-entropy
// rounds until all sites hold the same changes. It returns the rounds taken, or an
// error after maxRounds.
func (n *Network) Settle(ctx context.Context, maxRounds int) (int, error) {
	n.DropRate, n.DupRate = 0, 0
	for round := 1; round <= maxRounds; round++ {
		if err := n.Tick(); err != nil {
			return round, err
		}
		if err := n.Drain(ctx, 1_000_000); err != nil {
			return round, err
		}
		if n.Converged() {
			return round, nil
		}
	}
	return maxRounds, fmt.Errorf("peer: not converged after %d rounds", maxRounds)
}
