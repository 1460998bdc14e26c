package site

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/sync/gossip"
)

// Status is a site's view of itself and of every other site it counts or has
// heard of. It is what /rhizome/status answers and `rhizome status` prints.
type Status struct {
	Site            string            `json:"site"`
	Version         string            `json:"version"`
	Ready           bool              `json:"ready"`
	Revision        int64             `json:"revision"`
	CompactRevision int64             `json:"compactRevision"` // -1: never compacted
	Keys            int               `json:"keys"`
	SizeBytes       int64             `json:"sizeBytes"`
	ChangeLog       uint64            `json:"changeLogEntries"` // not yet collected
	VersionVector   map[string]uint64 `json:"versionVector"`
	Conflicts       int               `json:"conflicts"`
	Sites           []SiteStatus      `json:"sites"`
}

// Site states as Status reports them.
const (
	StateAlive     = "alive"
	StateSuspected = "suspected" // this site's probes of it go unanswered
	StateDead      = "dead"      // declared dead, or not heard of since this site started
	StateLeft      = "left"      // shut down and said so
	// StateForgotten: the replicated forgetting decisions forgot the site's
	// newest incarnation (some site did not hear of it for
	// --forget-site-after): it counts again only by snapshot, or as a new
	// incarnation (sync/peer's doc, Forgetting). Every site holding the same
	// decisions reports the same sites forgotten.
	StateForgotten = "forgotten"
)

// SiteStatus is what a site knows of another.
type SiteStatus struct {
	Site      string `json:"site"`
	State     string `json:"state"`
	Reachable bool   `json:"reachable"` // a sync stream to it is open
	// Reported says whether the site has said what it holds since this one
	// started; the counts and lag are as of its newest report.
	Reported    bool      `json:"reported"`
	TheyLack    uint64    `json:"theyLack"` // changes held here it lacks
	WeLack      uint64    `json:"weLack"`   // changes it holds that are not here
	LagSeconds  float64   `json:"lagSeconds"`
	LastContact time.Time `json:"lastContact"` // zero: not since this site started
	Conflicts   int       `json:"conflicts"`   // recorded conflicts it took part in
}

// Status reports the site's state and its view of the others.
func (s *Site) Status() (Status, error) {
	keys, err := s.Store.Range([]byte{0}, store.RangeOptions{End: []byte{0}, CountOnly: true})
	if err != nil {
		return Status{}, fmt.Errorf("site: status: %w", err)
	}
	conflicts, err := s.Conflicts()
	if err != nil {
		return Status{}, err
	}
	st := Status{Site: s.cfg.Name, Version: version(), Ready: failed(s.readyChecks()) == nil, Revision: s.Store.Rev(),
		CompactRevision: s.Store.CompactRev(), Keys: keys.Count, SizeBytes: s.Store.Size(), ChangeLog: s.Store.LogLen(),
		VersionVector: s.Store.VersionVector(), Conflicts: len(conflicts)}
	if s.Gossip != nil {
		st.Sites = s.siteStatuses(st.VersionVector, conflicts)
	}
	return st, nil
}

// siteStatuses merges what gossip, sync and the store know of the other sites:
// every site gossip heard of since start, sync knows the holdings of, or whose
// changes are here. A site memberlist forgot stays, as dead.
func (s *Site) siteStatuses(vv map[string]uint64, conflicts []Conflict) []SiteStatus {
	byName := map[string]*SiteStatus{}
	get := func(name string) *SiteStatus {
		if byName[name] == nil {
			byName[name] = &SiteStatus{Site: name, State: StateDead}
		}
		return byName[name]
	}
	for o := range vv {
		get(store.OriginSite(o)) // a site, not its incarnation
	}
	for _, m := range s.Gossip.Sites() {
		ss := get(m.Site)
		ss.State, ss.LastContact = gossipState(m.State), m.LastSeen
	}
	forgotten := map[string]bool{}
	for _, p := range s.Sync.Sites() {
		ss := get(p.Site)
		ss.Reachable, ss.Reported, ss.TheyLack, ss.WeLack = p.Connected, p.Reported, p.TheyLack, p.WeLack
		ss.LagSeconds = p.Lag.Seconds()
		if p.LastContact.After(ss.LastContact) {
			ss.LastContact = p.LastContact
		}
		forgotten[p.Site] = p.Forgotten
	}
	for _, c := range conflicts {
		for _, site := range c.Sites {
			if site != s.cfg.Name {
				get(site).Conflicts++
			}
		}
	}
	out := make([]SiteStatus, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		ss := byName[name]
		if name == s.cfg.Name {
			continue
		}
		if forgotten[name] {
			ss.State = StateForgotten // whatever gossip says: the decision stands
		}
		out = append(out, *ss)
	}
	return out
}

func gossipState(st gossip.State) string {
	switch st {
	case gossip.StateAlive:
		return StateAlive
	case gossip.StateSuspect:
		return StateSuspected
	case gossip.StateLeft:
		return StateLeft
	}
	return StateDead
}

// failed returns the first failed check's error.
func failed(checks []check) error {
	for _, c := range checks {
		if c.err != nil {
			return fmt.Errorf("%s: %w", c.name, c.err)
		}
	}
	return nil
}

// Conflict is a recorded conflict as /rhizome/conflicts and `rhizome conflicts`
// show it: two writes of a key that could not both stand, one kept whole, the
// other dropped. Kind is "concurrent-create" (two incarnations of the key),
// "validation" (a merge Kubernetes would reject; one side's whole object kept)
// or "allocation" (two Services held one ClusterIP or NodePort; the loser's was
// re-allocated or flagged, see Detail).
type Conflict struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	Winner string `json:"winner"` // the incarnation kept (its stamp)
	Loser  string `json:"loser"`  // the incarnation dropped
	// Sites are the sites whose incarnations met: the winner's, then the loser's.
	Sites []string `json:"sites"`
	// Time is when the conflict was resolved here; zero for records written
	// before the store kept times.
	Time time.Time `json:"time,omitzero"`
	// Detail says what was at stake when the store's caller resolved it (an
	// allocation: the ClusterIP or NodePort held twice and what became of it).
	Detail string `json:"detail,omitempty"`
}

// Conflicts lists the conflicts the store has recorded (its latest
// MaxConflicts), in the order they were recorded.
func (s *Site) Conflicts() ([]Conflict, error) {
	cs, err := s.Store.Conflicts()
	if err != nil {
		return nil, fmt.Errorf("site: conflicts: %w", err)
	}
	out := make([]Conflict, len(cs))
	for i, c := range cs {
		out[i] = conflictOf(c)
	}
	return out, nil
}

// conflictOf is the one place a store conflict record becomes what operators see.
func conflictOf(c store.Conflict) Conflict {
	sites := []string{c.Winner.Site}
	if c.Loser.Site != c.Winner.Site {
		sites = append(sites, c.Loser.Site)
	}
	return Conflict{Key: string(c.Key), Kind: c.Kind.String(), Winner: c.Winner.String(), Loser: c.Loser.String(), Sites: sites, Time: c.Time, Detail: c.Detail}
}
