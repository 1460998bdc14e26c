package netdelay

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Direction is one way through a link.
type Direction int

const (
	Forward Direction = iota // from the dialing side to the target
	Back                     // from the target to the dialing side
)

func (d Direction) String() string {
	if d == Forward {
		return "forward"
	}
	return "back"
}

// Stats counts what crossed a link.
type Stats struct {
	// BytesForward and BytesBack were delivered (TCP payload or datagram
	// payload; no headers).
	BytesForward, BytesBack int64
	// Accepted counts connections forwarded (TCP) or datagrams delivered
	// (UDP); Refused counts connections refused and datagrams dropped
	// while cut.
	Accepted, Refused int64
}

// link is the state a Proxy and a Relay share: the shapes, the cut, the
// counters and the jitter source. Its methods are safe for concurrent use.
type link struct {
	cfg Config

	mu    sync.Mutex
	shape [2]Shape
	rng   *rand.Rand
	cut   bool
	mode  CutMode
	open  chan struct{} // closed while the link is not cut
	onCut []func(CutMode)

	bytes             [2]atomic.Int64
	accepted, refused atomic.Int64
}

func newLink(cfg Config) *link {
	l := &link{cfg: cfg, shape: [2]Shape{cfg.Forward, cfg.Back}, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e657464656c6179)), open: make(chan struct{})}
	close(l.open)
	return l
}

// SetShape changes the delay of data read from now on; data already queued
// keeps the release time it was given.
func (l *link) SetShape(forward, back Shape) error {
	if err := forward.Validate(); err != nil {
		return err
	}
	if err := back.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shape = [2]Shape{forward, back}
	return nil
}

// Cut cuts the link: new connections are refused, datagrams dropped, and
// open connections stall or close as mode says. Cutting a cut link changes
// nothing but the mode for later connections.
func (l *link) Cut(mode CutMode) {
	l.mu.Lock()
	if !l.cut {
		l.open = make(chan struct{})
	}
	l.cut, l.mode = true, mode
	hooks := l.onCut
	l.mu.Unlock()
	for _, f := range hooks {
		f(mode)
	}
}

// Heal undoes Cut; stalled connections deliver what they hold.
func (l *link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		l.cut = false
		close(l.open)
	}
}

// IsCut reports whether the link is cut.
func (l *link) IsCut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut
}

// gate returns a channel that is closed while the link is not cut.
func (l *link) gate() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Stats returns the counters so far.
func (l *link) Stats() Stats {
	return Stats{
		BytesForward: l.bytes[Forward].Load(), BytesBack: l.bytes[Back].Load(),
		Accepted: l.accepted.Load(), Refused: l.refused.Load(),
	}
}

// delay draws one delay for direction d.
func (l *link) delay(d Direction) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.shape[d]
	if s.Jitter == 0 {
		return s.Delay
	}
	j := time.Duration((l.rng.Float64()*2 - 1) * float64(s.Jitter))
	return max(0, s.Delay+j)
}

// releaser gives each chunk of one stream its release time: its read time
// plus a delay drawn for its direction, but never before the release of the
// chunk read before it. It is used by one reader goroutine.
type releaser struct {
	l    *link
	dir  Direction
	last time.Time
}

func (r *releaser) next(now time.Time) time.Time {
	t := now.Add(r.l.delay(r.dir))
	if t.Before(r.last) {
		t = r.last
	}
	r.last = t
	return t
}
