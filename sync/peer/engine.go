package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/rhizome-kv/rhizome/store"
)

// Store is the seam between sync and a site's store.
type Store interface {
	Site() string
	// Origin is the origin of this site's own changes: its name and the data
	// directory's incarnation (store.Store.Origin).
	Origin() string
	VersionVector() map[string]uint64
	// DurableVersionVector is the part of the version vector a crash cannot
	// take back: what this site reports holding.
	DurableVersionVector() map[string]uint64
	Changes(origin string, after uint64, limit int) ([]store.Change, error)
	ApplyRemote(ctx context.Context, changes []store.Change) (int, error)
	SetHorizon(store.Horizon)
	Snapshot(ctx context.Context) (store.Snapshot, error)
	// InstallSnapshotWith installs a snapshot, giving up what the options say
	// (changes of replaced origins; or, a forgotten site rejoining anew, all it
	// holds beyond the snapshot).
	InstallSnapshotWith(ctx context.Context, snap store.Snapshot, opts store.InstallOptions) error
	Collected() map[string]uint64
	// Forgettings and AddForgettings keep the forgetting decisions durably
	// (store.Forgetting).
	Forgettings() []store.Forgetting
	AddForgettings(ctx context.Context, fs []store.Forgetting) (int, error)
}

// Kind is what a Message is.
type Kind uint8

const (
	KindPull     Kind = iota + 1 // "here is what I hold; send what I lack"
	KindBatch                    // changes; More says a Pull would get more
	KindSnapshot                 // one part of the sender's whole state, for a site that lacks collected changes
)

// pullBatches bounds the batches that answer one Pull.
const pullBatches = 8

// snapshotPartBytes bounds the documents in one snapshot part.
const snapshotPartBytes = 1 << 20

// Message is the unit sent between sites.
type Message struct {
	Kind Kind
	From string // the sender's site name
	// Origin is the sender's origin (its name and incarnation): the key of its
	// own changes and of its row in version vectors. A new origin under a known
	// name is a site that lost its data and started again.
	Origin string
	// VV is the sender's version vector: always in a Pull, now and then in a
	// Batch, so that peers learn what is stable soon after it is.
	VV      map[string]uint64
	Rows    map[string]map[string]uint64 // Pull: the newest vectors the sender knows of other sites, by origin
	Skip    []string                     // Pull: origins the sender hears from directly: not to forward
	Changes []store.Change               // Batch
	More    bool                         // Batch: the sender held back changes over the size limit
	// Continued (Batch) says more batches answering the same Pull follow:
	// only the last acknowledges it (Acked). Acknowledged at its first
	// batch, a Pull sent meanwhile (an anti-entropy round amid a catch-up's
	// eight batches) found the answer's later changes missing and had them
	// all sent again, as lost. A sender that never sets it (wire v6 before
	// it) has every batch acknowledge.
	Continued bool
	// Resend (Pull) says the sender lost messages from the receiver (a gap) or
	// holds less than it reported (a forced snapshot install gave changes up):
	// answer from its vector, not from what was sent.
	Resend bool
	// Forgotten (Pull) is every forgetting decision the sender holds: the
	// decisions travel from site to site until every site holds them all.
	Forgotten []store.Forgetting
	// PullID numbers a Pull (per receiver, from a random start); the Batches
	// answering it carry it back (pushes carry 0). Acked (Pull) is the PullID
	// of the receiver's last answer here whose batches all arrived and whose
	// changes the Pull's vector holds (durable: Engine.arrive): when it is not
	// the one the receiver last answered, what that answer sent may still be
	// on its way or being made durable, not lost (answerFrom).
	PullID, Acked uint64
	// Snapshot: part Part of Parts of snapshot SnapID. Part 0 carries the
	// snapshot's version vector and leases; every part carries documents.
	SnapID      uint64
	Part, Parts uint32
	Snap        *store.Snapshot
}

// Envelope is a message addressed to a site.
type Envelope struct {
	To  string
	Msg Message
}

// Engine is one site's side of the protocol. It is not safe for concurrent use.
type Engine struct {
	st       Store
	maxBatch int
	// sent is, per peer, how far (per origin) this site has already pushed, so a
	// push sends only what is new. A Pull from the peer resets it to the truth
	// when something sent was lost (answerFrom).
	sent map[string]map[string]uint64
	// answered is, per peer, sent as it was after answering the peer's last
	// Pull, and answeredPull that Pull's PullID.
	answered     map[string]map[string]uint64
	answeredPull map[string]uint64
	// pulls is, per peer, the PullID of the last Pull to it, and acked the
	// PullID of its last answer here that the next Pull acknowledges.
	pulls, acked map[string]uint64
	// arriving is, per peer, the answer to this site's Pull whose batches are
	// arriving, and arrived the last answer whose batches all arrived; an
	// answer is acked once what it brought is durable here (Pull).
	arriving, arrived map[string]answer
	// rows is, per other origin, the newest version vector it is known to have
	// reported, directly or through a third site. Vectors only grow.
	rows map[string]map[string]uint64
	// current is, per other site name, its newest origin known (the
	// incarnation that counts; older ones of the name are superseded).
	current map[string]string
	// counted lists the sites this site's clock still counts (SetCounted): a
	// proposal only, nil until told. Which sites count is decided by the
	// forgetting decisions (gone).
	counted []string
	// ahead is the newer incarnation of this site's own name last logged
	// (learn): none should exist.
	ahead string
	// decisions are the forgetting decisions held, in order, and gone the
	// incarnations they forget (fold).
	decisions []store.Forgetting
	gone      map[string]bool
	// resend lists the peers whose next Pull asks to be answered from its
	// vector: this site's vector went back (a forced snapshot install).
	resend map[string]bool
	now    func() time.Time
	// heard is, per peer, the origins that sent their own changes here since
	// the last Pull to it.
	heard map[string]map[string]bool
	// forgotten lists sites whose incarnation was forgotten that have not been
	// sent a snapshot since.
	forgotten map[string]bool
	// snapshots sent so far (their ids), and parts received, by sender.
	snapshots uint64 // the id of the last snapshot sent
	incoming  map[string]*incoming

	log      *slog.Logger
	stats    Stats
	catching map[string]catchUp // peers this site is catching up from
	// unlock is called around the store's slow calls (SetUnlocker).
	unlock func() (relock func())
	// room tells how many messages a peer's mailbox can take now (SetRoom).
	room func(peer string) int
}

// Stats counts what an Engine has done since it was made.
type Stats struct {
	Merged uint64 // changes of other sites applied
	// Duplicates counts changes received that this site already held: each
	// is bytes sent for nothing.
	Duplicates         uint64
	SnapshotsSent      uint64
	SnapshotsInstalled uint64
	// CaughtUp is set once this site has held everything some peer reported
	// holding: a joining site is then bootstrapped.
	CaughtUp bool
}

// answer is what an answer to a Pull of this site brought so far: the Pull's
// id and, per origin, the newest change in it.
type answer struct {
	pull uint64
	upTo map[string]uint64
}

// catchUp is a catch-up under way: when it started, this site lacked Lacked
// changes the peer held, and had merged Merged changes so far.
type catchUp struct{ Lacked, Merged uint64 }

// incoming is a snapshot being received.
type incoming struct {
	id    uint64
	parts []*store.Snapshot
	got   int
}

// NewEngine returns the engine of st's site. maxBatch bounds the changes per message.
// The forgetting decisions st holds are in force at once.
func NewEngine(st Store, maxBatch int) *Engine {
	e := &Engine{st: st, maxBatch: maxBatch, sent: make(map[string]map[string]uint64), answered: make(map[string]map[string]uint64), rows: make(map[string]map[string]uint64), current: make(map[string]string),
		answeredPull: make(map[string]uint64), pulls: make(map[string]uint64), acked: make(map[string]uint64),
		arriving: make(map[string]answer), arrived: make(map[string]answer),
		incoming: make(map[string]*incoming), heard: make(map[string]map[string]bool), forgotten: make(map[string]bool), snapshots: rand.Uint64(), // ids never repeat across restarts
		log: slog.New(slog.DiscardHandler), catching: make(map[string]catchUp), unlock: func() func() { return func() {} },
		resend: make(map[string]bool), now: time.Now}
	e.decisions = st.Forgettings()
	e.gone = fold(e.decisions)
	return e
}

// SetRoom sets what tells the engine how many messages the way to a peer can
// take now: an answer to a Pull is at most that many batches (at least one;
// pullBatches without it), the last asking for another Pull if more is held.
// A batch built and then dropped for want of room was read for nothing, and
// left a gap that made the peer ask for everything again: answers to a
// catch-up's Pulls, queued on top of one another, overflowed the mailbox
// (internal/cluster TestCatchUpAfterCut at 10,000 changes per site: 43-48
// batches of 500 dropped before, 3-6 since).
func (e *Engine) SetRoom(room func(peer string) int) { e.room = room }

// SetClock sets the clock that dates this site's forgetting decisions
// (time.Now by default).
func (e *Engine) SetClock(now func() time.Time) { e.now = now }

// SetUnlocker sets what the engine calls before each store call that writes
// (and fsyncs) or reads the whole store — ApplyRemote, InstallSnapshot,
// Snapshot — and, through the function it returns, after it: a caller that
// serialises the engine under a lock releases the lock there, so that the lock
// is never held across an fsync. The engine touches none of its own state in
// between; the store orders concurrent writes itself.
func (e *Engine) SetUnlocker(unlock func() (relock func())) { e.unlock = unlock }

// outside runs a slow store call outside the caller's lock (SetUnlocker).
func outside[T any](e *Engine, call func() (T, error)) (T, error) {
	relock := e.unlock()
	defer relock()
	return call()
}

// SetLogger sets where the engine logs catch-ups and snapshots (nowhere by default).
func (e *Engine) SetLogger(l *slog.Logger) { e.log = l }

// Stats returns what the engine has done so far.
func (e *Engine) Stats() Stats { return e.stats }

// Sites lists the other sites whose holdings are known, directly or through others.
func (e *Engine) Sites() []string {
	var out []string
	for site, origin := range e.current {
		if e.rows[origin] != nil {
			out = append(out, site)
		}
	}
	slices.Sort(out)
	return out
}

// Missing tells, as far as known, how many changes this site holds that site lacks
// (theyLack) and how many site holds that this one lacks (weLack). Known tells
// whether site has reported what it holds at all.
func (e *Engine) Missing(site string) (theyLack, weLack uint64, known bool) {
	origin := e.current[site]
	row, ok := e.rows[origin]
	own := e.st.VersionVector()
	return lacking(row, own, origin), lacking(own, row, e.st.Origin()), ok
}

// Row returns the newest vector site is known to have reported (nil if none).
func (e *Engine) Row(site string) map[string]uint64 { return maps.Clone(e.rows[e.current[site]]) }

// lacking counts the changes in want that have does not hold, except those of
// origin self (which the holder of have made: it lacks none of its own).
func lacking(have, want map[string]uint64, self string) uint64 {
	var n uint64
	for o, seq := range want {
		if o != self && seq > have[o] {
			n += seq - have[o]
		}
	}
	return n
}

// startCatchUp notes, on a message carrying a peer's whole vector, before it is
// handled, whether this site is more than a batch behind the peer: a catch-up
// from it starts (and is logged).
func (e *Engine) startCatchUp(peer string) {
	_, lack, _ := e.Missing(peer)
	if _, catching := e.catching[peer]; !catching && lack > uint64(e.maxBatch) {
		e.catching[peer] = catchUp{Lacked: lack, Merged: e.stats.Merged}
		e.log.Info("peer: catch-up started", "peer", peer, "lacking", lack)
	}
}

// endCatchUp notes, once that message is handled, whether this site now holds all
// the peer holds: a catch-up from it ends (and is logged), and the site is caught
// up (once is enough for Stats.CaughtUp).
func (e *Engine) endCatchUp(peer string) {
	if _, lack, _ := e.Missing(peer); lack > 0 {
		return
	}
	if c, catching := e.catching[peer]; catching {
		delete(e.catching, peer)
		e.log.Info("peer: catch-up finished", "peer", peer, "lacked", c.Lacked, "merged", e.stats.Merged-c.Merged)
	}
	if !e.stats.CaughtUp {
		e.stats.CaughtUp = true
		e.log.Info("peer: caught up with a peer for the first time", "peer", peer)
	}
}

// SetCounted sets the sites (this one need not be named) this site's clock
// still counts (site's --forget-site-after). It only proposes: for each site
// known here and left out, whose newest incarnation no decision has forgotten
// yet, it records a decision to forget that incarnation, which then travels to
// every site (see the package doc, Forgetting). A site named again is not
// counted again by it: a forgotten incarnation stays forgotten, and its site
// counts again once it returns as a new incarnation. Which sites count is what
// the decisions say (Horizon).
func (e *Engine) SetCounted(sites []string) {
	e.counted = append([]string{}, sites...)
	e.learnHeld()
	var fs []store.Forgetting
	for _, site := range slices.Sorted(maps.Keys(e.current)) {
		origin := e.current[site]
		if !slices.Contains(sites, site) && !e.gone[origin] {
			fs = append(fs, store.Forgetting{Origin: origin, By: e.st.Origin(), At: e.now().UnixNano()})
		}
	}
	if err := e.decide(context.Background(), fs); err != nil {
		e.log.Error("peer: recording a forgetting decision", "err", err)
	}
	e.st.SetHorizon(e.Horizon())
}

// fold returns the incarnations that decisions, taken in their order
// (store.CompareForgettings), forget: a decision forgets its incarnation unless
// an earlier one forgot it already, or forgot the decider, whose decisions then
// no longer count. So every site holding the same decisions forgets the same
// incarnations, and some site is always left unforgotten: the decider of the
// last decision that counts.
func fold(fs []store.Forgetting) map[string]bool {
	gone := map[string]bool{}
	for _, f := range slices.SortedFunc(slices.Values(fs), store.CompareForgettings) {
		if !gone[f.By] && !gone[f.Origin] && store.OriginSite(f.By) != store.OriginSite(f.Origin) {
			gone[f.Origin] = true
		}
	}
	return gone
}

// decide records forgetting decisions not held yet (this site's own, or a
// peer's) and folds them all again. A site whose newest incarnation is now
// forgotten is sent a snapshot when it next asks (see SetCounted's history).
func (e *Engine) decide(ctx context.Context, fs []store.Forgetting) error {
	fs = slices.DeleteFunc(slices.Clone(fs), func(f store.Forgetting) bool {
		return slices.ContainsFunc(e.decisions, func(g store.Forgetting) bool { return g.Origin == f.Origin && g.By == f.By })
	})
	if len(fs) == 0 {
		return nil
	}
	if _, err := outside(e, func() (int, error) { return e.st.AddForgettings(ctx, fs) }); err != nil {
		return err
	}
	e.decisions = e.st.Forgettings()
	gone := fold(e.decisions)
	for origin := range gone {
		if !e.gone[origin] {
			site := store.OriginSite(origin)
			if e.current[site] == origin {
				e.forgotten[site] = true
			}
			e.log.Info("peer: an incarnation is forgotten", "origin", origin)
		}
	}
	e.gone = gone
	return nil
}

// replaced reports whether a newer incarnation of an origin's site is known:
// the origin makes no more changes, and no site sends what it lacks of them any
// more. (A forgotten incarnation may still make changes, and sends them.)
func (e *Engine) replaced(origin string) bool {
	site := store.OriginSite(origin)
	cur, known := e.current[site]
	return known && store.NewerOrigin(cur, origin) || site == e.st.Site() && origin != e.st.Origin()
}

// Forgotten returns the incarnations the forgetting decisions held here forget.
func (e *Engine) Forgotten() []string { return slices.Sorted(maps.Keys(e.gone)) }

// forgottenSite reports whether the forgetting decisions held here forget the
// newest incarnation known of another site: it counts again only once it has
// taken a snapshot, or returned as a new incarnation.
func (e *Engine) forgottenSite(site string) bool {
	origin, known := e.current[site]
	return known && e.gone[origin]
}

// Horizon computes how far every counted site holds the change log. A counted
// site counts by its newest incarnation known (Counted holds origins); one not
// heard of at all yet holds nothing, and the horizon is not Complete.
func (e *Engine) Horizon() store.Horizon {
	own := e.learnHeld()
	self := e.st.Origin()
	h := store.Horizon{Stable: maps.Clone(own), Rows: e.rows, Counted: []string{self}, Complete: true}
	for _, site := range e.countedSites() {
		origin, known := e.current[site]
		if !known {
			h.Complete = false
			for o := range h.Stable {
				h.Stable[o] = 0
			}
			continue
		}
		row := e.rows[origin]
		h.Counted = append(h.Counted, origin)
		for o, seq := range h.Stable {
			h.Stable[o] = min(seq, row[o])
		}
	}
	// This site's own changes stay until the newest incarnation of every site
	// known holds them, counted or not, and some site does: a forgotten site
	// that returns gets them from nowhere else, nor does a new incarnation
	// known only by its changes, not yet by its vector (it lost its data: what
	// its old incarnation reported holding says nothing of it). An incarnation
	// replaced by a newer one holds nothing any more; the newer one is waited
	// for. A forgotten one never heard from is not; but some site heard from
	// must hold them.
	somewhere := false
	for _, origin := range e.current {
		row, heard := e.rows[origin]
		if heard || !e.gone[origin] {
			h.Stable[self] = min(h.Stable[self], row[self])
			somewhere = somewhere || heard
		}
	}
	if !somewhere {
		// No site is known to hold any: every other is forgotten and not
		// heard from yet (this site just started, say), or none is known.
		h.Stable[self] = 0
	}
	return h
}

// learnHeld learns the origins whose changes are here (a site whose changes are
// here is known, heard from or not) and returns this site's vector.
func (e *Engine) learnHeld() map[string]uint64 {
	own := e.st.VersionVector()
	for origin := range own {
		e.learn(origin)
	}
	return own
}

// countedSites lists the other sites that count: every site this site's clock
// counts or whose incarnation is known, unless the forgetting decisions forgot
// its newest incarnation known. A site named by the clock but not heard of yet
// counts (the horizon is then not Complete).
func (e *Engine) countedSites() []string {
	var out []string
	for _, site := range slices.Concat(e.counted, slices.Collect(maps.Keys(e.current))) {
		origin, known := e.current[site]
		if site != e.st.Site() && !slices.Contains(out, site) && !(known && e.gone[origin]) {
			out = append(out, site)
		}
	}
	return out
}

// learn notes an origin heard of: the newest incarnation of its site is the one
// that counts. A site seen under a newer incarnation lost its data: pushes to it
// wait for its Pull, which says what the new incarnation holds.
func (e *Engine) learn(origin string) {
	site := store.OriginSite(origin)
	if site == e.st.Site() {
		// This site's own older incarnations: replaced by this one. A newer
		// one means two data directories claim the name, or the clock went
		// back across a wipe: the peers count that one, not this one.
		if store.NewerOrigin(origin, e.st.Origin()) && origin != e.ahead {
			e.ahead = origin
			e.log.Error("peer: a newer incarnation of this site is known: peers will not count this one", "origin", e.st.Origin(), "newer", origin)
		}
		return
	}
	cur, known := e.current[site]
	if known && !store.NewerOrigin(origin, cur) {
		return
	}
	e.current[site] = origin
	if known {
		delete(e.sent, site)
		delete(e.answered, site)
		e.log.Info("peer: a site started again with new data", "site", site, "origin", origin, "replaces", cur)
	}
}

// observe merges a vector an origin reported into what is known of it.
func (e *Engine) observe(origin string, vv map[string]uint64) {
	if origin == e.st.Origin() || len(vv) == 0 {
		return
	}
	e.learn(origin)
	row := e.rows[origin]
	if row == nil {
		row = map[string]uint64{}
		e.rows[origin] = row
	}
	for o, seq := range vv {
		row[o] = max(row[o], seq)
	}
}

// ExpectDirect records that every other site known here will deliver its own
// changes itself, so the next Pull to peer to asks it not to forward them
// (Message.Skip): after a heal each site sends its own at once, and were the
// peer to forward them as well each would arrive twice. A site that does not
// deliver them after all (one cut off still, or gone) leaves them to the Pull
// after that, one anti-entropy round later.
func (e *Engine) ExpectDirect(to string) {
	if e.heard[to] == nil {
		e.heard[to] = map[string]bool{}
	}
	for site, origin := range e.current {
		if site != to && !e.gone[origin] {
			e.heard[to][origin] = true
		}
	}
}

// Pull returns the anti-entropy request to send to a peer.
func (e *Engine) Pull(to string) Envelope {
	// Only vectors of incarnations not forgotten travel on (replaced ones too:
	// they tell what their last edits were), so that a site gone for good is
	// no longer heard of once the processes that heard from it restart.
	rows := make(map[string]map[string]uint64, len(e.rows))
	for origin, row := range e.rows {
		if origin != e.current[to] && !e.gone[origin] {
			rows[origin] = maps.Clone(row)
		}
	}
	// Sites that sent their own changes here since the last Pull to this peer
	// are delivering them: the peer need not forward them too.
	skip := slices.Sorted(maps.Keys(e.heard[to]))
	e.heard[to] = map[string]bool{}
	resend := e.resend[to]
	delete(e.resend, to)
	id, ok := e.pulls[to]
	if !ok {
		id = rand.Uint64() // ids mean nothing across restarts
	}
	id = max(id+1, 1) // 0 is a push's
	e.pulls[to] = id
	vv := e.st.DurableVersionVector()
	if a, ok := e.arrived[to]; ok && covers(vv, a.upTo) {
		e.acked[to] = a.pull
		delete(e.arrived, to)
	}
	return Envelope{To: to, Msg: Message{Kind: KindPull, From: e.st.Site(), Origin: e.st.Origin(), VV: vv, Rows: rows, Skip: skip,
		Resend: resend, Forgotten: slices.Clone(e.decisions), PullID: id, Acked: e.acked[to]}}
}

// arrive notes a message answering a Pull of this site (m.PullID): the
// changes it brings, and, once the answer's last batch is in, that the answer
// arrived whole. It is not acked until those changes are durable here: a Pull
// says what is durable, and one that acked an answer whose changes it did not
// yet show would look to the peer as if they were lost, and be sent them all
// again (after a heal, every pending change several times over).
func (e *Engine) arrive(m Message) {
	a, ok := e.arriving[m.From]
	if !ok || a.pull != m.PullID {
		a = answer{pull: m.PullID, upTo: map[string]uint64{}}
	}
	for _, c := range m.Changes {
		a.upTo[c.Origin] = max(a.upTo[c.Origin], c.Seq)
	}
	if m.Continued {
		e.arriving[m.From] = a
		return
	}
	delete(e.arriving, m.From)
	e.arrived[m.From] = a
}

// covers reports whether vv holds every change up to upTo.
func covers(vv, upTo map[string]uint64) bool {
	for o, seq := range upTo {
		if vv[o] < seq {
			return false
		}
	}
	return true
}

// Push returns the changes made here that a peer has not been sent yet, if any.
// Only this site's own changes are pushed: in a full mesh every site gets them from
// their origin, and pushing what was received would send each change n-1 times.
// Changes of other origins travel in answers to Pulls, so a chain still converges,
// one anti-entropy round per hop.
func (e *Engine) Push(to string) ([]Envelope, error) {
	sent := e.sent[to]
	if sent == nil {
		return nil, nil // nothing known of the peer yet: its first Pull says what it has
	}
	b, err := e.batch(sent, e.current[to], e.st.Origin(), nil)
	if errors.Is(err, store.ErrCollected) {
		return nil, nil // the peer needs a snapshot: its next Pull gets one
	}
	if err != nil || len(b.Changes) == 0 {
		return nil, err
	}
	return []Envelope{{To: to, Msg: b}}, nil
}

// Rewind makes the next Push to a peer start from what the peer is known to
// hold rather than from what was sent to it: pushes to it were lost (a stream
// broke, or its mailbox overflowed), and the peer would otherwise notice the gap
// only with the next push or anti-entropy round. A peer not heard from yet is
// left alone: its first Pull says what it holds.
func (e *Engine) Rewind(to string) {
	if e.sent[to] == nil {
		return
	}
	have := maps.Clone(e.rows[e.current[to]])
	if have == nil {
		have = map[string]uint64{}
	}
	e.sent[to] = have
}

// Handle processes a received message and returns the replies to send.
func (e *Engine) Handle(ctx context.Context, m Message) ([]Envelope, error) {
	if m.Origin == "" || store.OriginSite(m.Origin) != m.From {
		return nil, fmt.Errorf("peer: message from %q names origin %q: %w", m.From, m.Origin, errWire)
	}
	if m.From == e.st.Site() {
		return nil, nil
	}
	e.learn(m.Origin)
	if slices.ContainsFunc(m.Changes, func(c store.Change) bool { return c.Origin == m.Origin }) {
		// m.From delivers its own changes here: others need not forward them.
		for to, heard := range e.heard {
			if to != m.From {
				heard[m.Origin] = true
			}
		}
	}
	if e.heard[m.From] == nil {
		e.heard[m.From] = map[string]bool{}
	}
	if m.Kind != KindPull && m.PullID != 0 {
		e.arrive(m)
	}
	e.observe(m.Origin, m.VV)
	for origin, row := range m.Rows {
		e.observe(origin, row)
	}
	if m.Kind == KindPull && e.rows[m.Origin] == nil {
		e.rows[m.Origin] = map[string]uint64{} // a Pull's vector is whole: it may hold nothing yet
	}
	if m.Kind == KindPull && m.Resend {
		// One that asks to be answered from its vector may hold less of a
		// replaced origin than it said before: a forced snapshot install gave
		// those changes up. Of any other origin a site never holds less, and
		// a Pull delivered late says less than is known (answered from it, it
		// was sent again what it held, or a snapshot where the log was
		// collected since: sync/peer TestMissingAndStats, 3 runs in 30).
		for o := range e.rows[m.Origin] {
			if e.replaced(o) {
				e.rows[m.Origin][o] = m.VV[o]
			}
		}
	}
	if err := e.decide(ctx, m.Forgotten); err != nil {
		return nil, err
	}
	if m.VV != nil || m.Kind == KindPull {
		e.startCatchUp(m.From)
		defer e.endCatchUp(m.From)
	}
	defer func() {
		// Until told which sites count, nothing is known to be stable: a
		// horizon of this site alone would let it collect what others lack.
		if e.counted != nil {
			e.st.SetHorizon(e.Horizon())
		}
	}()
	switch m.Kind {
	case KindPull:
		if e.forgotten[m.From] {
			delete(e.forgotten, m.From)
			return e.snapshot(ctx, m.From)
		}
		have := e.answerFrom(m)
		e.sent[m.From] = have
		defer func() { e.answered[m.From], e.answeredPull[m.From] = maps.Clone(have), m.PullID }()
		// A peer far behind gets several batches per Pull, so catching up is not
		// one round trip per batch.
		var out []Envelope
		batches := pullBatches
		if e.room != nil {
			batches = max(1, min(batches, e.room(m.From)))
		}
		for range batches {
			b, err := e.batch(have, m.Origin, "", m.Skip)
			if errors.Is(err, store.ErrCollected) {
				return e.snapshot(ctx, m.From)
			}
			if err != nil {
				return nil, err
			}
			if len(out) > 0 && len(b.Changes) == 0 {
				break
			}
			out = append(out, Envelope{To: m.From, Msg: b})
			if !b.More {
				break
			}
		}
		for i := range out {
			last := i == len(out)-1
			out[i].Msg.More = out[i].Msg.More && last // only the last asks for a Pull
			out[i].Msg.PullID, out[i].Msg.Continued = m.PullID, !last
		}
		return out, nil
	case KindSnapshot:
		return e.receiveSnapshot(ctx, m)
	case KindBatch:
		gap, err := e.apply(ctx, m.Changes)
		if err != nil {
			return nil, err
		}
		// The sender holds what it sent: it may not have said so in a vector.
		for _, c := range m.Changes {
			e.observe(m.Origin, map[string]uint64{c.Origin: c.Seq})
		}
		// More waiting, or a gap (an earlier push was lost): ask now rather
		// than at the next anti-entropy round.
		if m.More || gap {
			pull := e.Pull(m.From)
			pull.Msg.Resend = gap
			return []Envelope{pull}, nil
		}
	}
	return nil, nil
}

// answerFrom returns where the answer to a Pull starts, per origin. It is what
// the peer holds, as newly as known (a Pull may arrive late); a site that lost its
// data comes back as a new origin, with a row of its own, and is sent
// everything, its old incarnation's changes too (or a snapshot). But while the
// stream to the peer delivers, what was sent is on its way and is not sent
// twice: unless the Pull asks to Resend, or it left after the answer to the
// previous one arrived (it acks that answer) yet the peer lacks part of what
// that answer brought (lost). A Pull that left before that answer arrived says
// nothing of it: Pulls queued behind a cut, all with the vector the peer had
// when it was cut off, would otherwise each be answered with the same changes
// again. Whatever was lost is sent again by the second Pull after it, at the
// latest (the first is answered, and its answer acked, meanwhile).
func (e *Engine) answerFrom(m Message) map[string]uint64 {
	have := maps.Clone(e.rows[m.Origin])
	if have == nil {
		have = map[string]uint64{}
	}
	// Of a replaced origin, a site may hold less than it once reported: a
	// forced snapshot install gave up the rest, which comes again only from
	// the sites that hold it. Its Pull says what it holds now (a late Pull may
	// say less: what is sent again is merged once).
	for o, seq := range m.VV {
		if seq < have[o] && e.replaced(o) {
			have[o] = seq
		}
	}
	sent, before := e.sent[m.From], e.answered[m.From]
	if sent == nil || m.Resend {
		return have
	}
	if m.Acked == e.answeredPull[m.From] {
		for o, seq := range before {
			if have[o] < seq {
				return have // lost: send again
			}
		}
	}
	for o, seq := range sent {
		have[o] = max(have[o], seq)
	}
	return have
}

// batch collects changes beyond have (per origin; of one origin if only is set;
// not of the peer's own origin to, nor of the origins in skip but this site's) and
// advances have past them.
func (e *Engine) batch(have map[string]uint64, to, only string, skip []string) (Message, error) {
	m := Message{Kind: KindBatch, From: e.st.Site(), Origin: e.st.Origin()}
	vv := e.st.DurableVersionVector() // the log hands out durable changes only
	if only == "" {
		m.VV = vv // an answer to a Pull: say what this site holds
	}
	// This site's own changes first: a peer catching up from several sites
	// then gets each site's from that site, not the same ones from all.
	origins := slices.Sorted(maps.Keys(vv))
	if i := slices.Index(origins, e.st.Origin()); i > 0 {
		origins = slices.Insert(slices.Delete(origins, i, i+1), 0, e.st.Origin())
	}
	for _, o := range origins {
		if o == to || vv[o] <= have[o] || (only != "" && o != only) || (o != e.st.Origin() && slices.Contains(skip, o)) {
			continue // the peer made those itself, has them, or gets them from their origin
		}
		room := e.maxBatch - len(m.Changes)
		if room <= 0 {
			m.More = true
			break
		}
		cs, err := e.st.Changes(o, have[o], room)
		if err != nil {
			return Message{}, err
		}
		m.Changes = append(m.Changes, cs...)
		if len(cs) > 0 {
			have[o] = cs[len(cs)-1].Seq
		}
		// Fewer than asked for means the log has no more now.
		if len(cs) == room && have[o] < vv[o] {
			m.More = true
		}
	}
	return m, nil
}

// snapshot sends a peer this site's whole state, in parts.
func (e *Engine) snapshot(ctx context.Context, to string) ([]Envelope, error) {
	snap, err := outside(e, func() (store.Snapshot, error) { return e.st.Snapshot(ctx) })
	if err != nil {
		return nil, err
	}
	e.snapshots++
	e.stats.SnapshotsSent++
	parts := []*store.Snapshot{{VV: snap.VV, Leases: snap.Leases}}
	size := 0
	for _, d := range snap.Docs {
		if size > 0 && size+len(d.Doc) > snapshotPartBytes {
			parts, size = append(parts, &store.Snapshot{}), 0
		}
		last := parts[len(parts)-1]
		last.Docs = append(last.Docs, d)
		size += len(d.Key) + len(d.Doc)
	}
	e.log.Info("peer: sending snapshot", "peer", to, "id", e.snapshots, "parts", len(parts), "keys", len(snap.Docs), "leases", len(snap.Leases))
	envs := make([]Envelope, len(parts))
	for i, p := range parts {
		envs[i] = Envelope{To: to, Msg: Message{Kind: KindSnapshot, From: e.st.Site(), Origin: e.st.Origin(), SnapID: e.snapshots, Part: uint32(i), Parts: uint32(len(parts)), Snap: p}}
	}
	return envs, nil
}

// receiveSnapshot collects a snapshot's parts and installs it once whole, unless
// this site holds more than it of some other origin (a late or stale snapshot
// would take changes away). Then it asks for what came after.
func (e *Engine) receiveSnapshot(ctx context.Context, m Message) ([]Envelope, error) {
	in := e.incoming[m.From]
	if in == nil || in.id != m.SnapID || len(in.parts) != int(m.Parts) {
		if m.Parts == 0 || m.Parts > 1<<20 {
			return nil, nil
		}
		in = &incoming{id: m.SnapID, parts: make([]*store.Snapshot, m.Parts)}
		e.incoming[m.From] = in
		e.log.Info("peer: receiving snapshot", "peer", m.From, "id", m.SnapID, "parts", m.Parts)
	}
	if int(m.Part) >= len(in.parts) || in.parts[m.Part] != nil || m.Snap == nil {
		return nil, nil
	}
	in.parts[m.Part], in.got = m.Snap, in.got+1
	if in.got < len(in.parts) {
		return nil, nil
	}
	delete(e.incoming, m.From)
	snap := store.Snapshot{VV: in.parts[0].VV, Leases: in.parts[0].Leases}
	for _, p := range in.parts {
		snap.Docs = append(snap.Docs, p.Docs...)
	}
	held := e.st.VersionVector()
	why, stuck, forced := e.refusal(snap, held)
	// A forgotten incarnation that can never take a snapshot of a site not
	// forgotten goes on as a new incarnation (see the package doc, Forgetting)
	// — never on a stale one: a later snapshot of the sender holds more.
	rejoin := e.gone[e.st.Origin()] && !e.gone[m.Origin] && !e.stale(m.Origin, snap.VV)
	// Held: another install or merge while this one is under way (the engine
	// is unlocked around the store's calls) may make going on anew wrong.
	opts := store.InstallOptions{GiveUp: e.goneHeld(), Anew: stuck && rejoin, Held: held}
	if why != "" && !opts.Anew {
		return e.skipSnapshot(m, why)
	}
	// The store checks again, in the install's transaction: changes merged
	// meanwhile from another peer may make the snapshot older than what this
	// site holds (store.ErrSnapshotOlder).
	install := func() (struct{}, error) { return struct{}{}, e.st.InstallSnapshotWith(ctx, snap, opts) }
	_, err := outside(e, install)
	if rejoin && !opts.Anew && (errors.Is(err, store.ErrCollected) || errors.Is(err, store.ErrSnapshotBehind) && e.unsendable(snap.VV, held)) {
		opts.Anew = true
		_, err = outside(e, install)
	}
	if errors.Is(err, store.ErrCollected) || errors.Is(err, store.ErrSnapshotBehind) || errors.Is(err, store.ErrSnapshotOlder) {
		return e.skipSnapshot(m, err.Error())
	} else if err != nil {
		return nil, err
	}
	e.stats.SnapshotsInstalled++
	e.log.Info("peer: snapshot installed", "peer", m.From, "id", m.SnapID, "keys", len(snap.Docs), "leases", len(snap.Leases), "forced", forced, "anew", opts.Anew, "origin", e.st.Origin())
	if forced || opts.Anew { // this site's vector went back: every peer answers from it again
		for site := range e.current {
			e.resend[site] = true
		}
	}
	return []Envelope{e.Pull(m.From)}, nil
}

// stale reports whether a snapshot of origin at vv is older than what origin
// has since reported holding (of origins not replaced): it was taken before,
// and delivered late (a stalled link, a reordering). What this site holds
// beyond it says nothing of what the sender can send now, so it does not make
// this site stuck (seed 169 of internal/cluster TestChaosForgetting: a
// forgotten site, converged with the others, took a snapshot delivered 200 ms
// late for a sign it could never catch up, went on anew, and gave up writes of
// a third site it held and the sender held too).
func (e *Engine) stale(origin string, vv map[string]uint64) bool {
	for o, seq := range e.rows[origin] {
		if seq > vv[o] && !e.replaced(o) {
			return true
		}
	}
	return false
}

// unsendable reports whether this site holds changes of a replaced origin
// beyond vv that it can no longer send (it took them by a snapshot, or
// collected them from its log). A snapshot at vv that lacks what this site's
// own changes build on is then never followed by one that holds it: the sender
// gets them from no site's log, and this site's snapshot is refused where the
// sender holds more of another origin (internal/cluster TestChaosForgetting
// seed 177). Where this site can send them, the sender's next snapshot will
// hold them.
func (e *Engine) unsendable(vv, held map[string]uint64) bool {
	collected := e.st.Collected()
	for o, seq := range held {
		if seq > vv[o] && e.replaced(o) && collected[o] > vv[o] {
			return true
		}
	}
	return false
}

// goneHeld lists the replaced origins whose changes this site holds.
func (e *Engine) goneHeld() []string {
	var out []string
	for o := range e.st.VersionVector() {
		if e.replaced(o) {
			out = append(out, o)
		}
	}
	return out
}

// skipSnapshot drops a snapshot this site cannot install.
func (e *Engine) skipSnapshot(m Message, why string) ([]Envelope, error) {
	e.log.Info("peer: snapshot not installed: a later one will do", "peer", m.From, "id", m.SnapID, "reason", why)
	return nil, nil
}

// refusal says why this site cannot install a snapshot ("" if it can), whether
// no later snapshot of the sender can do better (stuck: this site collected
// its own changes the sender lacks, so it cannot send them), and whether
// installing it gives up changes of replaced origins this site holds.
// Where this site holds more of another origin than the snapshot, a later
// snapshot will bring it, as the origin sends it on — unless a newer
// incarnation replaced the origin: it sends nothing any more, and this site
// gives up the rest (see the package doc, Forgetting). Holding more of an
// origin not replaced never makes it stuck, even where it collected them: they
// may be held nowhere else (their origin collected them once every site held
// them, and a wipe elsewhere may have lost them since), so it waits, and the
// sender takes this site's snapshot or gets them from their origin, rather
// than this site going on anew and giving them up (internal/cluster
// TestChaosForgetting seed 41: a forgotten site went on anew on the snapshot
// of a site just wiped, and gave up a third site's writes it alone held).
// This site's own changes it has collected are held by every site it waits
// for, so a snapshot without them is older than those sites' state.
func (e *Engine) refusal(snap store.Snapshot, held map[string]uint64) (why string, stuck, forced bool) {
	self, collected := e.st.Origin(), e.st.Collected()
	for o, seq := range held {
		if o != self && seq > snap.VV[o] {
			if !e.replaced(o) {
				return "this site holds more of " + o, false, false
			}
			forced = true
		}
	}
	if collected[self] > snap.VV[self] {
		return "older than what every site holds of this one", true, false
	}
	return "", false, forced
}

// apply merges changes, retrying those that waited on others in the same batch
// until no more can be applied; what is left comes again with a later batch.
// It reports whether a change was left behind a gap in its origin's sequence.
func (e *Engine) apply(ctx context.Context, changes []store.Change) (gap bool, err error) {
	received, merged := len(changes), 0
	for len(changes) > 0 {
		n, err := outside(e, func() (int, error) { return e.st.ApplyRemote(ctx, changes) })
		if err != nil {
			return false, err
		}
		merged += n
		vv := e.st.VersionVector()
		changes = slices.DeleteFunc(changes, func(c store.Change) bool { return c.Seq <= vv[c.Origin] })
		if n == 0 {
			break
		}
	}
	// Neither merged here nor left behind a gap: held already.
	e.stats.Merged += uint64(merged)
	e.stats.Duplicates += uint64(received - merged - len(changes))
	vv := e.st.VersionVector()
	for _, c := range changes {
		gap = gap || c.Seq > vv[c.Origin]+1 && !slices.ContainsFunc(changes, func(d store.Change) bool {
			return d.Origin == c.Origin && d.Seq == vv[c.Origin]+1
		})
	}
	return gap, nil
}
