package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/rhizome-kv/rhizome/crdt"
)

// Bounded history: document histories restart (crdt rebase) and the change log is
// collected once every site the cluster knows holds what is dropped. The sync layer
// says how far that is with a Horizon; a store without peers holds everything
// there is, so everything it holds is stable.

// ErrCollected is returned by Changes for changes collected from the log: the peer
// asking for them needs a snapshot.
var ErrCollected = errors.New("store: changes collected from the change log")

// Horizon is what the sync layer knows of how far every site holds the change log.
type Horizon struct {
	// Stable is, per origin, the sequence number up to which every site the
	// cluster counts holds that origin's changes.
	Stable map[string]uint64
	// Rows is, per other origin heard from (incarnations replaced since
	// included), the newest version vector it is known to have reported.
	Rows map[string]map[string]uint64
	// Counted lists the sites all of this is about, this one included, by
	// their origins (Store.Origin): the newest incarnation known of each.
	Counted []string
	// Complete says the origin of every counted site is known. Until it is,
	// no document is rebased (a rebase names the origins whose concurrent edits
	// it keeps) and no prior that keeps every counted site's edits is dropped.
	Complete bool
}

// SetHorizon publishes the sync layer's newest horizon. A replicated store
// (Config.Replicated) collects nothing until the first one.
func (s *Store) SetHorizon(h Horizon) {
	rows := make(map[string]map[string]uint64, len(h.Rows))
	for site, row := range h.Rows {
		rows[site] = maps.Clone(row)
	}
	h.Stable, h.Rows, h.Counted = maps.Clone(h.Stable), rows, slices.Clone(h.Counted)
	s.horizon.Store(&h)
}

// priorDone reports whether no edit of a document's prior epoch that the rebase
// keeps can arrive any more: each site whose edits it keeps (sites, fixed by the
// rebase; none: every site heard from) holds the rebase (the rebaser's log up to
// mark), and this site holds every change that site had made when it last
// reported, which was after it took the rebase. A kept origin that a newer
// incarnation of its site has replaced (incarnation.go) makes no edits any more:
// it is done once this site holds all it last reported holding of its own.
//
// Whether this site still counts a kept site does not matter: which sites count
// is each site's own decision, on its own clock (--forget-site-after), and a
// prior dropped here while another site keeps it would let a late edit of it be
// translated there and ignored here. Forgetting acts only through what is
// replicated and ordered: a rebase names the sites whose concurrent edits it
// keeps, the same at every site. Called by the committer.
func (s *Store) priorDone(rebaser string, mark uint64, sites []string) bool {
	if !s.cfg.Replicated {
		return true
	}
	h := s.horizon.Load()
	if h == nil {
		return false
	}
	if len(sites) == 0 {
		if !h.Complete {
			return false
		}
		sites = slices.Concat(h.Counted, slices.Collect(maps.Keys(h.Rows)))
	}
	for _, site := range sites {
		if site == s.origin {
			continue
		}
		row, heard := h.Rows[site]
		switch {
		case !heard:
			return false
		case s.superseded(site, h.Counted):
			if s.vv[site] < row[site] {
				return false
			}
		case row[rebaser] < mark || s.vv[site] < row[site]:
			return false // counted here or not: see above
		}
	}
	return true
}

// superseded reports whether a newer incarnation of origin's site is counted (or
// is this store).
func (s *Store) superseded(origin string, counted []string) bool {
	return NewerOrigin(s.origin, origin) || slices.ContainsFunc(counted, func(c string) bool { return NewerOrigin(c, origin) })
}

// tidy bounds a document's history after a write to it: it drops the prior epoch
// once no edit of it can arrive, and restarts the history when this site is its
// rebaser and it has grown past RebaseEdits.
//
// It does nothing while a snapshot's install merges this site's own changes
// again (redo): the rebases this site made are among them, and one made anew
// would name the same epoch as the one the other sites hold, with another body;
// and priorDone counts this site's own edits as merged, which those still to be
// merged again are not, so a prior dropped then would ignore them here while
// the other sites translate them.
func (tx *WriteTxn) tidy(key []byte, doc *crdt.Doc, lease int64) error {
	if tx.redo {
		return nil
	}
	if rebaser, mark, sites, ok := doc.Prior(); ok && tx.s.priorDone(rebaser, mark, sites) {
		doc.DropPrior()
	}
	if n := tx.s.cfg.RebaseEdits; n == 0 || doc.Edits() < n {
		return nil
	}
	// Concurrent edits of the old history are kept for the sites counted now:
	// the ones whose holdings let its prior go (see priorDone).
	var counted []string
	if tx.s.cfg.Replicated {
		h := tx.s.horizon.Load()
		if h == nil || !h.Complete {
			return nil // which sites count is not known yet
		}
		counted = h.Counted
	}
	site := tx.s.origin
	rebase, ok, err := doc.Rebase(site, tx.s.vv[site]+1, counted)
	if err != nil {
		return fmt.Errorf("store: rebase %q: %w", key, err)
	}
	if ok {
		tx.logChange(key, lease, rebase)
	}
	return nil
}

// maxCollect bounds the change-log entries one collection deletes.
const maxCollect = 4096

// runCollector collects the change log every GCInterval. Only a replicated store
// runs it: alone, nothing is logged to collect.
func (s *Store) runCollector() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.GCInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-tick.C:
			if err := s.collectLog(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("collecting the change log", "err", err)
			}
		}
	}
}

// collectLog deletes change-log entries every site holds, through the commit path
// (it takes no revision).
func (s *Store) collectLog(ctx context.Context) error {
	more := true
	for more {
		more = false
		r := &request{done: make(chan struct{})}
		r.fns = []func(*WriteTxn) error{func(tx *WriteTxn) error {
			budget := maxCollect
			h := tx.s.horizon.Load()
			if h == nil {
				return nil
			}
			for origin, upto := range h.Stable {
				upto = min(upto, tx.s.vv[origin])
				from := tx.s.collected[origin]
				if upto <= from {
					continue
				}
				if upto-from > uint64(budget) {
					upto, more = from+uint64(budget), true
				}
				for seq := from + 1; seq <= upto; seq++ {
					tx.writes = append(tx.writes, write{key: changeKey(origin, seq), delete: true})
				}
				budget -= int(upto - from)
				tx.s.collected[origin] = upto
				tx.writes = append(tx.writes, write{key: collectedKey(origin), value: int64Bytes(int64(upto))})
				if budget == 0 {
					more = true
					break
				}
			}
			return nil
		}}
		if _, err := s.submit(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Collected returns, per origin, the newest sequence number collected from the
// change log.
func (s *Store) Collected() map[string]uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.collected)
}

func collectedKey(origin string) []byte { return append([]byte{prefixCollected}, origin...) }

func parseCollected(k, v []byte) (string, uint64, error) {
	if len(v) != 8 {
		return "", 0, errCorrupt
	}
	return string(k[1:]), binary.BigEndian.Uint64(v), nil
}

// DocSize returns the bytes a key's document occupies as stored: its value,
// history and bookkeeping (0 for a key never written).
func (s *Store) DocSize(key []byte) (int, error) {
	raw, err := s.getRaw(docKey(key))
	return len(raw), err
}

// LogLen returns how many changes the change log holds.
func (s *Store) LogLen() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n uint64
	for o, seq := range s.vv {
		n += seq - s.collected[o]
	}
	return n
}
