package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const vvEvery = 50 * time.Millisecond

// pushRoom is the room a peer's mailbox must have for a push: one message is
// left for a Pull or an answer.
const pushRoom = 2

// mailboxSize bounds the messages waiting for a peer's stream: two Pulls' worth.
const mailboxSize = 2 * pullBatches

// LiveStore is a Store that also says when new changes are logged.
type LiveStore interface {
	Store
	ChangesLogged() <-chan struct{}
}

// Config configures a Runner.
type Config struct {
	// AntiEntropyInterval is how often every peer is asked for what this site lacks.
	AntiEntropyInterval time.Duration
	// MaxBatch bounds the changes in one message.
	MaxBatch int
	// PushDelay is how long a push of new local changes waits for more to
	// join it: changes logged meanwhile go in the same message, which costs
	// fewer bytes (one header and vector for many, and compression finds their
	// likeness), and adds PushDelay to how soon peers get them. 0: at once.
	PushDelay time.Duration
	// Transport carries the messages; nil is a gRPC transport (NewGRPC) made
	// from GRPC, served by Runner.Serve. The Runner closes it.
	Transport Transport
	// GRPC configures the gRPC transport (TLS, keepalives, dial timeout) when
	// Transport is nil.
	GRPC GRPCConfig
	// Redial bounds the wait before a broken stream to a peer is opened again
	// (it starts at a tenth of it and doubles): after a cut heals, the stream
	// is open again within Redial and a dial.
	Redial time.Duration
	// StallTimeout bounds how long one message may wait to be written to a
	// peer's stream (a full window: the peer or the path to it stalled): the
	// stream is then dropped and dialled afresh, without waiting for the
	// transport's keepalive to find it dead.
	StallTimeout time.Duration
	// Registerer, when set, receives the sync metrics (see the package doc).
	Registerer prometheus.Registerer
	Now        func() time.Time // the clock of lags and contact times
	Logger     *slog.Logger
}

// DefaultConfig returns WAN-suitable defaults.
func DefaultConfig() Config {
	return Config{AntiEntropyInterval: 2 * time.Second, MaxBatch: 500, PushDelay: 5 * time.Millisecond, GRPC: DefaultGRPCConfig(), Redial: 100 * time.Millisecond, StallTimeout: 3 * time.Second,
		Now: time.Now, Logger: slog.Default()}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.AntiEntropyInterval <= 0:
		return errors.New("peer: config: AntiEntropyInterval must be positive")
	case c.MaxBatch < 1:
		return errors.New("peer: config: MaxBatch must be at least 1")
	case c.PushDelay < 0:
		return errors.New("peer: config: PushDelay must not be negative")
	case c.Redial <= 0 || c.StallTimeout <= 0:
		return errors.New("peer: config: Redial and StallTimeout must be positive")
	case c.Logger == nil || c.Now == nil:
		return errors.New("peer: config: Logger and Now are required")
	case c.Transport == nil:
		if err := c.GRPC.Validate(); err != nil {
			return fmt.Errorf("peer: config: %w", err)
		}
	}
	return nil
}

// Runner runs the protocol for a real site over a Transport: it handles the
// messages of every stream peers open to it, and keeps one outgoing stream to
// every peer it is told about, redialling when one breaks.
type Runner struct {
	cfg Config
	st  LiveStore
	tr  Transport

	// mu guards engine, vvSent and history. It is not held across the store's
	// writes: the engine releases it around them (Engine.SetUnlocker).
	mu     sync.Mutex
	engine *Engine
	// vvSent is when each peer was last told this site's version vector: pushes
	// carry it at most every vvEvery, so peers learn soon what is stable without
	// a vector in every small message.
	vvSent map[string]time.Time
	// history is when this site's vector reached which values: a peer's lag.
	history vvLog

	sentBytes, receivedBytes *prometheus.CounterVec

	peersMu sync.Mutex
	peers   map[string]*link // by site name

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// link is the outgoing side towards one peer: a small mailbox drained by one
// goroutine, so a slow peer delays only itself. A full mailbox drops the message:
// the protocol is idempotent and the next anti-entropy round repairs the loss.
type link struct {
	addr   string
	out    chan Message
	cancel context.CancelFunc
	// lastContact is when a message last arrived from the peer.
	lastContact time.Time
	connected   bool
	// dropped is set when the mailbox overflowed: once it has room again, pushes
	// start over from what the peer is known to hold (resync).
	dropped atomic.Bool
	// pushHeld is set when a push waited for room in the mailbox (push).
	pushHeld atomic.Bool
	// heard is signalled when a message arrives from the peer: it is
	// reachable, so a redial waiting out its backoff goes at once.
	heard chan struct{}
}

// NewRunner returns a runner for st; call Serve and SetPeers, then Close.
func NewRunner(cfg Config, st LiveStore) (_ *Runner, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, st: st, engine: NewEngine(st, cfg.MaxBatch), vvSent: map[string]time.Time{}, peers: map[string]*link{}, ctx: ctx, cancel: cancel,
		history: vvLog{max: historySamples, merge: historyMerge}}
	r.engine.SetLogger(cfg.Logger)
	r.engine.SetClock(cfg.Now)
	// The engine is used under r.mu, but not across the store's fsyncs.
	r.engine.SetUnlocker(func() func() { r.mu.Unlock(); return r.mu.Lock })
	r.engine.SetRoom(r.room)
	if err = r.registerMetrics(); err != nil {
		cancel()
		return nil, err
	}
	r.tr = cfg.Transport
	if r.tr == nil {
		if cfg.GRPC.Logger == nil {
			cfg.GRPC.Logger = cfg.Logger
		}
		if r.tr, err = NewGRPC(cfg.GRPC); err != nil {
			cancel()
			return nil, err
		}
	}
	r.tr.Listen(r.deliver)
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

// Serve answers peers on l until Close, when the transport is gRPC's.
func (r *Runner) Serve(l net.Listener) error {
	g, ok := r.tr.(*GRPC)
	if !ok {
		return fmt.Errorf("peer: serve: transport %T does not use listeners", r.tr)
	}
	return g.Serve(l)
}

// SetPeers replaces the set of peers (site name to peer address).
func (r *Runner) SetPeers(peers map[string]string) {
	r.peersMu.Lock()
	defer r.peersMu.Unlock()
	for name, l := range r.peers {
		if addr, ok := peers[name]; !ok || addr != l.addr {
			l.cancel()
			delete(r.peers, name)
		}
	}
	for name, addr := range peers {
		if name == r.st.Site() || r.peers[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(r.ctx)
		l := &link{addr: addr, out: make(chan Message, mailboxSize), cancel: cancel, heard: make(chan struct{}, 1)}
		r.peers[name] = l
		r.wg.Add(1)
		go r.send(ctx, name, l) // its first stream asks at once for what we lack
	}
}

// SetCounted sets the sites whose holdings decide what is stable (Engine.SetCounted).
func (r *Runner) SetCounted(sites []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.engine.SetCounted(sites)
}

// Forgotten lists the incarnations the forgetting decisions held here forget
// (Engine.Forgotten).
func (r *Runner) Forgotten() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.engine.Forgotten()
}

// SiteSync is what this site knows of another site's sync.
type SiteSync struct {
	Site        string
	Addr        string    // its peer address, if it is a peer now
	Connected   bool      // an outgoing stream to it is open
	LastContact time.Time // a message last arrived from it (zero: not since start)
	// Reported says whether the site has told (directly or through another)
	// what it holds; the counts below are as of its newest report.
	Reported bool
	TheyLack uint64 // changes held here that it does not hold
	WeLack   uint64 // changes it holds that are not here
	// Lag is how long this site has held the oldest change the site lacks
	// (0 when it lacks none).
	Lag time.Duration
	// Forgotten says the forgetting decisions held here (replicated, the same
	// at every site that holds them) forget the site's newest incarnation
	// known: it counts again only by snapshot, or as a new incarnation.
	Forgotten bool
}

// Sites reports every other site that is a peer now or has reported what it
// holds, in site order.
func (r *Runner) Sites() []SiteSync {
	now := r.cfg.Now()
	byName := map[string]*SiteSync{}
	r.mu.Lock()
	r.history.add(now, r.st.VersionVector())
	for _, site := range r.engine.Sites() {
		ss := &SiteSync{Site: site}
		ss.TheyLack, ss.WeLack, ss.Reported = r.engine.Missing(site)
		if at, ok := r.history.since(site, r.engine.Row(site)); ok && ss.TheyLack > 0 {
			ss.Lag = now.Sub(at)
		}
		byName[site] = ss
	}
	for site := range r.engine.current {
		if r.engine.forgottenSite(site) {
			if byName[site] == nil {
				byName[site] = &SiteSync{Site: site}
			}
			byName[site].Forgotten = true
		}
	}
	r.mu.Unlock()
	r.peersMu.Lock()
	for name, l := range r.peers {
		ss := byName[name]
		if ss == nil {
			ss = &SiteSync{Site: name}
			byName[name] = ss
		}
		ss.Addr, ss.Connected, ss.LastContact = l.addr, l.connected, l.lastContact
	}
	r.peersMu.Unlock()
	out := make([]SiteSync, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		if name != r.st.Site() {
			out = append(out, *byName[name])
		}
	}
	return out
}

// Stats returns what the protocol has done since start (Engine.Stats).
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.engine.Stats()
}

// Close stops serving and sending.
func (r *Runner) Close() {
	r.cancel()
	r.tr.Close()
	r.wg.Wait()
}

func (r *Runner) pull(to string) Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.engine.Pull(to).Msg
}

// loop pushes new changes as they are logged and pulls from every peer on a timer.
func (r *Runner) loop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.AntiEntropyInterval)
	defer tick.Stop()
	for {
		logged := r.st.ChangesLogged()
		select {
		case <-r.ctx.Done():
			return
		case <-logged:
			if r.cfg.PushDelay > 0 { // let more changes join this push
				select {
				case <-r.ctx.Done():
					return
				case <-time.After(r.cfg.PushDelay):
				}
			}
			r.mu.Lock()
			r.history.add(r.cfg.Now(), r.st.VersionVector())
			r.mu.Unlock()
			r.pushAll()
		case <-tick.C:
			for _, name := range r.peerNames() {
				r.enqueue(name, r.pull(name))
			}
		}
	}
}

// peerNames returns the sites this site has links to.
func (r *Runner) peerNames() []string {
	r.peersMu.Lock()
	defer r.peersMu.Unlock()
	return slices.Collect(maps.Keys(r.peers))
}

func (r *Runner) pushAll() {
	for _, name := range r.peerNames() {
		r.push(name)
	}
}

// push sends a peer this site's changes it has not been sent. It holds them
// back while the peer's mailbox is nearly full (a slow or unreachable peer):
// a push dropped there would leave a gap, and the resync that follows would
// send everything since the peer's last report again. The stream pushes once
// the mailbox has drained (stream).
func (r *Runner) push(name string) {
	l := r.link(name)
	if l == nil {
		return
	}
	if l.room() < pushRoom {
		l.pushHeld.Store(true)
		return
	}
	r.mu.Lock()
	envs, err := r.engine.Push(name)
	if len(envs) > 0 && time.Since(r.vvSent[name]) >= vvEvery {
		envs[0].Msg.VV = r.st.VersionVector()
		r.vvSent[name] = time.Now()
	}
	r.mu.Unlock()
	if err != nil {
		r.cfg.Logger.Error("preparing push", "peer", name, "err", err)
		return
	}
	for _, e := range envs {
		r.enqueue(e.To, e.Msg)
	}
}

// enqueue queues a message for a peer, or drops it if the peer's mailbox is full:
// the peer is behind, and anti-entropy will catch it up.
func (r *Runner) enqueue(to string, m Message) {
	if l := r.link(to); l != nil {
		select {
		case l.out <- m:
		default:
			l.dropped.Store(true)
		}
	}
}

// room returns how many messages a peer's mailbox can take now (0 if it is
// not a peer).
func (r *Runner) room(to string) int {
	if l := r.link(to); l != nil {
		return l.room()
	}
	return 0
}

// room returns how many messages the mailbox can take now.
func (l *link) room() int { return cap(l.out) - len(l.out) }

// enqueueWait queues a message for a peer, waiting for room.
func (r *Runner) enqueueWait(ctx context.Context, to string, m Message) {
	if l := r.link(to); l != nil {
		select {
		case l.out <- m:
		case <-ctx.Done():
		case <-r.ctx.Done():
		}
	}
}

// link returns the outgoing side towards a peer (nil if it is not a peer).
func (r *Runner) link(to string) *link {
	r.peersMu.Lock()
	defer r.peersMu.Unlock()
	return r.peers[to]
}

// send keeps a stream open to one peer and writes its mailbox to it.
func (r *Runner) send(ctx context.Context, name string, l *link) {
	defer r.wg.Done()
	backoff := r.cfg.Redial / 10
	refused := false // the last dial found the peer not of this cluster (logged once)
	for ctx.Err() == nil {
		err := r.stream(ctx, name, l)
		r.setConnected(l, false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrUnauthenticated) && !refused {
			r.cfg.Logger.Warn("peer: not sending to a peer that does not prove this cluster's token", "peer", name, "addr", l.addr, "err", err)
		}
		refused = errors.Is(err, ErrUnauthenticated)
		r.cfg.Logger.Debug("peer stream ended", "peer", name, "addr", l.addr, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		case <-l.heard: // the peer reached this site: the way back is likely open too
		}
		backoff = min(2*backoff, r.cfg.Redial) // a healed link is used again soon
	}
}

// stream opens one stream to a peer and writes the mailbox to it until it
// breaks, or a message waits longer than StallTimeout to be written. A fresh
// stream starts with a resync: whatever the last one lost is sent again. What
// the mailbox held is dropped first: the resync supersedes it (pushes and
// answers from the peer's vector, a fresh Pull), and sent after the peer was
// unreachable, it would arrive with gaps (the messages in between lost with
// broken streams or dropped) that make the peer ask for everything again.
func (r *Runner) stream(ctx context.Context, name string, l *link) error {
	sent := r.sentBytes.WithLabelValues(name)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	out, err := r.tr.Dial(ctx, l.addr)
	if err != nil {
		return err
	}
	defer out.Close()
	r.setConnected(l, true)
	discard(l)
	r.resync(name)
	errStalled := fmt.Errorf("peer: stream to %s stalled for %v", name, r.cfg.StallTimeout)
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case m := <-l.out:
			stall := time.AfterFunc(r.cfg.StallTimeout, func() { cancel(errStalled) })
			n, err := out.Send(&m)
			stall.Stop()
			if err != nil {
				return errors.Join(err, context.Cause(ctx))
			}
			sent.Add(float64(n))
			if m.Kind == KindSnapshot && m.Part+1 == m.Parts {
				r.cfg.Logger.Info("peer: snapshot sent", "peer", name, "id", m.SnapID, "parts", m.Parts)
			}
			if len(l.out) == 0 {
				switch {
				case l.dropped.Swap(false):
					r.resync(name)
				case l.pushHeld.Swap(false):
					r.push(name)
				}
			}
		}
	}
}

// discard empties a link's mailbox, and forgets what overflowed or waited
// for room in it: a resync is to follow.
func discard(l *link) {
	l.dropped.Store(false)
	l.pushHeld.Store(false)
	for {
		select {
		case <-l.out:
		default:
			return
		}
	}
}

// resync asks a peer for what this site lacks and pushes to it again from what
// it is known to hold (Engine.Rewind): on a fresh stream, and once a mailbox
// that overflowed has drained, so that what was lost (a broken stream's
// messages, dropped pushes and answers) is sent again now, not at the next
// push or anti-entropy round. The peer, which may have lost messages to this
// site too, does the same on its side when its stream here breaks; the Pull
// does not ask it to Resend, which would send again what its answers already
// carry (after a cut, every change pending several times over). Whatever it
// lost without knowing is sent again by its answer to the Pull after next
// (Message.Acked). Nor does the Pull ask for the other sites' changes
// (Engine.ExpectDirect): after a heal each sends its own here.
func (r *Runner) resync(name string) {
	r.mu.Lock()
	r.engine.Rewind(name)
	envs, err := r.engine.Push(name)
	r.engine.ExpectDirect(name)
	pull := r.engine.Pull(name)
	r.mu.Unlock()
	if err != nil {
		r.cfg.Logger.Error("preparing push", "peer", name, "err", err)
	}
	r.enqueue(name, pull.Msg)
	for _, e := range envs {
		r.enqueue(e.To, e.Msg)
	}
}

func (r *Runner) setConnected(l *link, ok bool) {
	r.peersMu.Lock()
	defer r.peersMu.Unlock()
	l.connected = ok
}

// deliver serves one peer's incoming stream. A message that does not decode, or
// that the engine refuses, ends the stream (the store is left as it was) and is
// logged with the peer that sent it, if known.
func (r *Runner) deliver(stream Inbound) error {
	from, err := r.receive(stream)
	if err != nil && r.ctx.Err() == nil && stream.Context().Err() == nil {
		r.cfg.Logger.Warn("peer: refusing a peer's stream", "peer", from, "err", err)
	}
	return err
}

// receive handles a stream's messages until it ends; it returns the sender.
func (r *Runner) receive(stream Inbound) (from string, _ error) {
	for {
		m, n, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return from, nil
		}
		if err != nil {
			return from, err
		}
		from = m.From
		r.receivedBytes.WithLabelValues(m.From).Add(float64(n))
		r.peersMu.Lock()
		if l := r.peers[m.From]; l != nil {
			l.lastContact = r.cfg.Now()
			if !l.connected {
				notify(l.heard)
			}
		}
		r.peersMu.Unlock()
		r.mu.Lock()
		replies, err := r.engine.Handle(stream.Context(), m)
		r.mu.Unlock()
		if err != nil {
			return from, fmt.Errorf("peer: handling message from %s: %w", m.From, err)
		}
		for _, e := range replies {
			if e.Msg.Kind == KindSnapshot {
				// Parts are useless unless all arrive: wait for room rather
				// than drop, holding up only this peer's stream.
				r.enqueueWait(stream.Context(), e.To, e.Msg)
				continue
			}
			r.enqueue(e.To, e.Msg)
		}
	}
}
