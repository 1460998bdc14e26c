package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Faults are what a Fabric does to the messages it carries. Chances are per
// message, from 0 to 1.
type Faults struct {
	Drop      float64 // the message is lost
	Duplicate float64 // the message arrives twice
	// Reorder is the chance that a message is held back by up to ReorderDelay
	// more, so that messages sent after it overtake it.
	Reorder      float64
	ReorderDelay time.Duration
	// Delay is how long every message takes, plus up to Jitter more.
	Delay, Jitter time.Duration
}

// Validate reports the first problem with the faults.
func (f Faults) Validate() error {
	for _, p := range []float64{f.Drop, f.Duplicate, f.Reorder} {
		if p < 0 || p > 1 {
			return fmt.Errorf("peer: faults: chance %v is not within [0, 1]", p)
		}
	}
	if f.Delay < 0 || f.Jitter < 0 || f.ReorderDelay < 0 {
		return errors.New("peer: faults: delays must not be negative")
	}
	return nil
}

// FabricStats counts what a Fabric did to the messages sent over it.
type FabricStats struct {
	Sent, Delivered, Dropped, Duplicated, Reordered uint64
	// Broken counts streams broken by a partition, a cut or a closed transport,
	// and Refused the dials to a site unreachable or not listening.
	Broken, Refused uint64
}

// ErrUnreachable is returned by a Fabric's transports for a peer that a partition
// or cut separates from the sender, or that is not listening.
var ErrUnreachable = errors.New("peer: fabric: peer unreachable")

// fabricQueue bounds the messages in flight on one stream: a sender past it
// blocks, as on a full TCP window.
const fabricQueue = 64

// Fabric is an in-memory network for Runners, in normal code so that tests of
// other packages (and the cluster harness) can run real sites over it. Each site
// gets a Transport at an address of its own (Transport). Messages go through the
// wire encoding, take a delay, and may be lost, duplicated and reordered
// (SetFaults); Partition and Cut break the streams between sites and refuse new
// ones until Heal, as a network cut with keepalives would.
//
// Every random choice comes from one source made from the seed, but the Runners'
// goroutines decide the order in which choices are asked for, so a seed fixes
// the faults' odds and not the exact run. All methods are safe for concurrent use.
type Fabric struct {
	mu      sync.Mutex
	rng     *rand.Rand
	faults  Faults
	sites   map[string]*fabricTransport // listening transports, by address
	group   map[string]int              // partition group by address; 0 for the rest
	cut     map[[2]string]bool
	stalled map[[2]string]bool
	streams map[*fabricStream]bool
	stats   FabricStats
}

// NewFabric returns a network with no faults, driven by seed.
func NewFabric(seed uint64) *Fabric {
	return &Fabric{rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)), sites: map[string]*fabricTransport{},
		group: map[string]int{}, cut: map[[2]string]bool{}, stalled: map[[2]string]bool{}, streams: map[*fabricStream]bool{}}
}

// Transport returns a transport for the site at addr. A site that restarts takes a
// new one at the same address once the old one is closed.
func (f *Fabric) Transport(addr string) Transport {
	return &fabricTransport{f: f, addr: addr}
}

// SetFaults sets the faults of every message sent from now on.
func (f *Fabric) SetFaults(faults Faults) error {
	if err := faults.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = faults
	return nil
}

// Partition splits the addresses into groups that cannot reach each other;
// addresses not named form one more group. Streams across groups break.
func (f *Fabric) Partition(groups ...[]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.group)
	for i, g := range groups {
		for _, a := range g {
			f.group[a] = i + 1
		}
	}
	f.breakUnreachable()
}

// Cut breaks the link between two addresses, both ways; other links stay.
func (f *Fabric) Cut(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[[2]string{a, b}], f.cut[[2]string{b, a}] = true, true
	f.breakUnreachable()
}

// Stall stalls the link between two addresses, both ways, as a silent network
// cut does to open TCP connections: streams stay open but deliver nothing (their
// senders block once a stream's window is full) until Heal delivers what they
// hold; new streams are refused.
func (f *Fabric) Stall(a, b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stalled[[2]string{a, b}], f.stalled[[2]string{b, a}] = true, true
	for s := range f.streams {
		if f.stalled[[2]string{s.from, s.to}] {
			s.setStalled(true)
		}
	}
}

// Heal joins every group again and restores every link; stalled streams
// deliver what they hold.
func (f *Fabric) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.group)
	clear(f.cut)
	clear(f.stalled)
	for s := range f.streams {
		s.setStalled(false)
	}
}

// Stats returns what the fabric has done so far.
func (f *Fabric) Stats() FabricStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// reachable is called with mu held.
func (f *Fabric) reachable(a, b string) bool {
	return f.group[a] == f.group[b] && !f.cut[[2]string{a, b}] && !f.stalled[[2]string{a, b}]
}

// breakUnreachable is called with mu held.
func (f *Fabric) breakUnreachable() {
	for s := range f.streams {
		if !f.reachable(s.from, s.to) && !f.stalled[[2]string{s.from, s.to}] {
			f.dropStream(s, ErrUnreachable)
		}
	}
}

// dropStream breaks s and forgets it; called with mu held.
func (f *Fabric) dropStream(s *fabricStream, err error) {
	if f.streams[s] {
		delete(f.streams, s)
		f.stats.Broken++
	}
	s.fail(err)
}

// plan decides, for one message, at which delays its copies arrive (none: lost).
func (f *Fabric) plan() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Sent++
	fl := f.faults
	if f.rng.Float64() < fl.Drop {
		f.stats.Dropped++
		return nil
	}
	copies := 1
	if f.rng.Float64() < fl.Duplicate {
		copies = 2
		f.stats.Duplicated++
	}
	delays := make([]time.Duration, copies)
	for i := range delays {
		delays[i] = fl.Delay
		if fl.Jitter > 0 {
			delays[i] += time.Duration(f.rng.Int64N(int64(fl.Jitter)))
		}
		if fl.ReorderDelay > 0 && f.rng.Float64() < fl.Reorder {
			delays[i] += time.Duration(f.rng.Int64N(int64(fl.ReorderDelay)))
			f.stats.Reordered++
		}
	}
	return delays
}

// fabricTransport is one site's Transport on a Fabric.
type fabricTransport struct {
	f      *Fabric
	addr   string
	accept func(Inbound) error
	wg     sync.WaitGroup
	closed bool // guarded by f.mu
}

func (t *fabricTransport) Listen(accept func(Inbound) error) {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.accept = accept
	t.f.sites[t.addr] = t
}

func (t *fabricTransport) Dial(ctx context.Context, addr string) (Outbound, error) {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	to := f.sites[addr]
	if t.closed || to == nil || !f.reachable(t.addr, addr) {
		f.stats.Refused++
		return nil, fmt.Errorf("peer: dial %s from %s: %w", addr, t.addr, ErrUnreachable)
	}
	s := newFabricStream(f, t.addr, addr)
	f.streams[s] = true
	stop := context.AfterFunc(ctx, func() { s.closeWith(ctx.Err()) })
	to.wg.Add(1)
	go func() {
		defer to.wg.Done()
		defer stop()
		err := to.accept(s)
		if err == nil {
			err = errors.New("peer: fabric: stream ended by the receiver")
		}
		s.closeWith(err)
	}()
	return s, nil
}

func (t *fabricTransport) Close() {
	f := t.f
	f.mu.Lock()
	t.closed = true
	if f.sites[t.addr] == t {
		delete(f.sites, t.addr)
	}
	for s := range f.streams {
		if s.from == t.addr || s.to == t.addr {
			f.dropStream(s, errors.New("peer: fabric: transport closed"))
		}
	}
	f.mu.Unlock()
	t.wg.Wait()
}

// closeWith breaks s unless it is already broken, and forgets it.
func (s *fabricStream) closeWith(err error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	delete(s.f.streams, s)
	s.fail(err)
}

// fabricStream is one stream on a Fabric: its sender's Outbound and its
// receiver's Inbound.
type fabricStream struct {
	f        *Fabric
	from, to string
	ctx      context.Context
	cancel   context.CancelFunc

	mu     sync.Mutex
	queue  []flight
	seq    uint64
	eof    bool  // the sender closed the stream
	stall  bool  // the link is stalled: nothing is delivered
	broken error // the stream broke: nothing more is delivered
	wake   chan struct{}
	room   chan struct{}
}

// flight is a message copy in flight.
type flight struct {
	due  time.Time
	seq  uint64
	wire []byte
}

func newFabricStream(f *Fabric, from, to string) *fabricStream {
	ctx, cancel := context.WithCancel(context.Background())
	return &fabricStream{f: f, from: from, to: to, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func (s *fabricStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken, s.queue = err, nil
		s.cancel()
		notify(s.wake)
		notify(s.room)
	}
}

// setStalled stalls or resumes delivery; called with the fabric's lock held.
func (s *fabricStream) setStalled(stall bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stall = stall
	notify(s.wake)
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Send implements Outbound.
func (s *fabricStream) Send(m *Message) (int, error) {
	wire := m.encode()
	for {
		s.mu.Lock()
		if s.broken != nil || s.eof {
			err := s.broken
			s.mu.Unlock()
			if err == nil {
				err = errors.New("peer: fabric: send on a closed stream")
			}
			return 0, err
		}
		if len(s.queue) < fabricQueue {
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		<-s.room
	}
	now, delays := time.Now(), s.f.plan() // before s.mu: the fabric's lock comes first
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range delays {
		if i > 0 {
			wire = slices.Clone(wire) // each copy is decoded on its own
		}
		s.seq++
		s.queue = append(s.queue, flight{due: now.Add(d), seq: s.seq, wire: wire})
	}
	notify(s.wake)
	return len(wire), nil
}

// Close implements Outbound: what is in flight still arrives, then io.EOF.
func (s *fabricStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eof = true
	notify(s.wake)
	return nil
}

// Recv implements Inbound.
func (s *fabricStream) Recv() (Message, int, error) {
	for {
		wire, wait, err := s.next()
		if err != nil {
			return Message{}, 0, err
		}
		if wire != nil {
			var m Message
			if err := m.decode(wire); err != nil {
				return Message{}, 0, err
			}
			s.f.mu.Lock()
			s.f.stats.Delivered++
			s.f.mu.Unlock()
			return m, len(wire), nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// next pops the earliest message that is due, or says how long to wait for one.
func (s *fabricStream) next() (wire []byte, wait time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil, 0, s.broken
	}
	if s.stall {
		return nil, time.Hour, nil
	}
	if len(s.queue) == 0 {
		if s.eof {
			return nil, 0, io.EOF
		}
		return nil, time.Hour, nil
	}
	first := 0
	for i, fl := range s.queue {
		if fl.due.Before(s.queue[first].due) || fl.due.Equal(s.queue[first].due) && fl.seq < s.queue[first].seq {
			first = i
		}
	}
	if wait := time.Until(s.queue[first].due); wait > 0 {
		return nil, wait, nil
	}
	wire = s.queue[first].wire
	s.queue = slices.Delete(s.queue, first, first+1)
	notify(s.room)
	return wire, 0, nil
}

// Context implements Inbound.
func (s *fabricStream) Context() context.Context { return s.ctx }
