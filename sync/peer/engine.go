package peer

import (
	"context"
	"maps"
	"slices"

	"github.com/rhizome-kv/rhizome/store"
)

// Store is the seam between sync and a site's store.
type Store interface {
	Site() string
	VersionVector() map[string]uint64
	Changes(origin string, after uint64, limit int) ([]store.Change, error)
	ApplyRemote(ctx context.Context, changes []store.Change) (int, error)
	SetHorizon(store.Horizon)
}

// Kind is what a Message is.
type Kind uint8

const (
	KindPull  Kind = iota + 1 // "here is what I hold; send what I lack"
	KindBatch                 // changes; More says a Pull would get more
)

// Message is the unit sent between sites.
type Message struct {
	Kind Kind
	From string
	// VV is the sender's version vector: always in a Pull, now and then in a
	// Batch, so that peers learn what is stable soon after it is.
	VV      map[string]uint64
	Rows    map[string]map[string]uint64 // Pull: the newest vectors the sender knows of other sites
	Changes []store.Change               // Batch
	More    bool                         // Batch: the sender held back changes over the size limit
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
	// push sends only what is new. A Pull from the peer resets it to the truth.
	sent map[string]map[string]uint64
	// rows is, per other site, the newest version vector it is known to have
	// reported, directly or through a third site. Vectors only grow.
	rows map[string]map[string]uint64
	// counted lists the sites whose holdings decide what is stable.
	counted []string
}

// NewEngine returns the engine of st's site. maxBatch bounds the changes per message.
func NewEngine(st Store, maxBatch int) *Engine {
	return &Engine{st: st, maxBatch: maxBatch, sent: make(map[string]map[string]uint64), rows: make(map[string]map[string]uint64)}
}

// SetCounted sets the sites (this one need not be named) whose holdings decide what
// every site holds: the change log and old histories are collected only once all
// of them hold the changes. A site left out, and later back, may need a snapshot.
func (e *Engine) SetCounted(sites []string) {
	e.counted = slices.Clone(sites)
	e.st.SetHorizon(e.Horizon())
}

// Horizon computes how far every counted site holds the change log.
func (e *Engine) Horizon() store.Horizon {
	own := e.st.VersionVector()
	h := store.Horizon{Stable: maps.Clone(own), Reported: map[string]uint64{}}
	for _, site := range e.counted {
		if site == e.st.Site() {
			continue
		}
		row := e.rows[site]
		h.Reported[site] = row[site]
		for o, seq := range h.Stable {
			h.Stable[o] = min(seq, row[o])
		}
	}
	return h
}

// observe merges a vector a site reported into what is known of it.
func (e *Engine) observe(site string, vv map[string]uint64) {
	if site == e.st.Site() || len(vv) == 0 {
		return
	}
	row := e.rows[site]
	if row == nil {
		row = map[string]uint64{}
		e.rows[site] = row
	}
	for o, seq := range vv {
		row[o] = max(row[o], seq)
	}
}

// Pull returns the anti-entropy request to send to a peer.
func (e *Engine) Pull(to string) Envelope {
	rows := make(map[string]map[string]uint64, len(e.rows))
	for site, row := range e.rows {
		if site != to {
			rows[site] = maps.Clone(row)
		}
	}
	return Envelope{To: to, Msg: Message{Kind: KindPull, From: e.st.Site(), VV: e.st.VersionVector(), Rows: rows}}
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
	b, err := e.batch(sent, to, e.st.Site())
	if err != nil || len(b.Changes) == 0 {
		return nil, err
	}
	return []Envelope{{To: to, Msg: b}}, nil
}

// Handle processes a received message and returns the replies to send.
func (e *Engine) Handle(ctx context.Context, m Message) ([]Envelope, error) {
	e.observe(m.From, m.VV)
	for site, row := range m.Rows {
		e.observe(site, row)
	}
	defer func() { e.st.SetHorizon(e.Horizon()) }()
	switch m.Kind {
	case KindPull:
		// What the peer holds, as newly as known (a Pull may arrive late): push
		// from there.
		have := maps.Clone(e.rows[m.From])
		if have == nil {
			have = map[string]uint64{}
		}
		e.sent[m.From] = have
		b, err := e.batch(e.sent[m.From], m.From, "")
		if err != nil {
			return nil, err
		}
		return []Envelope{{To: m.From, Msg: b}}, nil
	case KindBatch:
		if err := e.apply(ctx, m.Changes); err != nil {
			return nil, err
		}
		// The sender holds what it sent: it may not have said so in a vector.
		for _, c := range m.Changes {
			e.observe(m.From, map[string]uint64{c.Origin: c.Seq})
		}
		if m.More {
			return []Envelope{e.Pull(m.From)}, nil
		}
	}
	return nil, nil
}

// batch collects changes beyond have (per origin; of one origin if only is set) and
// advances have past them.
func (e *Engine) batch(have map[string]uint64, to, only string) (Message, error) {
	m := Message{Kind: KindBatch, From: e.st.Site()}
	vv := e.st.VersionVector()
	if only == "" {
		m.VV = vv // an answer to a Pull: say what this site holds
	}
	origins := slices.Sorted(maps.Keys(vv))
	for _, o := range origins {
		if o == to || vv[o] <= have[o] || (only != "" && o != only) {
			continue // the peer made those itself, or has them
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
		if have[o] < vv[o] {
			m.More = true
		}
	}
	return m, nil
}

// apply merges changes, retrying those that waited on others in the same batch
// until no more can be applied; what is left comes again with a later batch.
func (e *Engine) apply(ctx context.Context, changes []store.Change) error {
	for len(changes) > 0 {
		n, err := e.st.ApplyRemote(ctx, changes)
		if err != nil || n == 0 {
			return err
		}
		vv := e.st.VersionVector()
		changes = slices.DeleteFunc(changes, func(c store.Change) bool { return c.Seq <= vv[c.Origin] })
	}
	return nil
}
