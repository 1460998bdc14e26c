package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/automerge/automerge-go"
)

// Bounded history.
//
// An automerge document keeps every edit ever made to it, so a status field updated
// every few seconds would grow its object without end. A rebase restarts the
// history: a new body epoch whose base holds the current fields and nothing of how
// they came to be. Only the epoch's rebaser (the site that started its line of
// bodies) rebases it, so two rebases of one epoch never race.
//
// Other sites may still be editing the old epoch when the rebase is made. Those
// edits are not lost: every replica translates each edit of the old epoch that the
// rebase's cut does not hold into an edit of the new epoch — the same field
// writes, built on the translations of its dependencies — deterministically, so
// every replica derives byte-identical translations and the replicas converge
// without shipping them. To translate, a replica keeps the old epoch's history as
// its prior until no edit of it can arrive any more: once every site holds the
// rebase and this replica holds everything those sites made before taking it (the
// store decides that from the sites' version vectors, see Doc.Prior). Only then is
// the old history dropped, and only then may the new epoch be rebased again, so a
// document holds at most two epochs' worth of history.
//
// Which concurrent edits are kept must not depend on when a replica drops its
// prior, so the rebase names the sites the rebaser waits for (those the cluster
// counts); edits of the old history by any other site — one the cluster had
// forgotten after a long absence — are dropped at every replica alike.
//
// Rebase epochs are named after the epoch they restart: the same Lamport counter,
// and the site followed by a generation number. They therefore order after the
// epoch they restart but before any body a user writes after seeing it, so a user's
// replace concurrent with a rebase wins, as it would over the edits it replaced.

// prior is an old epoch kept while edits of it may still arrive.
type prior struct {
	epoch   Stamp
	mark    uint64   // the rebaser's change-log position at the rebase
	sites   []string // whose edits are translated (none: everyone's)
	am      *automerge.Doc
	amBytes []byte
	base    []automerge.ChangeHash                        // heads of the current epoch's base
	moved   map[automerge.ChangeHash]automerge.ChangeHash // old-epoch edit -> its translation
}

// Rebaser returns the site that may rebase the current body: the one that started
// its line of epochs ("" when there is no document body).
func (d *Doc) Rebaser() string {
	if _, ok := d.Value(); !ok || d.kind != Document {
		return ""
	}
	site, _, _ := strings.Cut(d.epoch.Site, "\x00")
	return site
}

// Prior reports the old epoch kept for translation: its rebaser, the rebaser's
// change-log position at the rebase, and the sites whose edits of it are kept
// (none: everyone's). The caller drops it (DropPrior) once each of those sites
// holds the rebaser's log up to mark and this replica holds everything they had
// made by then.
func (d *Doc) Prior() (rebaser string, mark uint64, sites []string, ok bool) {
	if d.prior == nil {
		return "", 0, nil, false
	}
	return d.Rebaser(), d.prior.mark, d.prior.sites, true
}

// DropPrior forgets the old epoch's history. Edits of it that arrive later are
// ignored, so call it only when none can (see Prior).
func (d *Doc) DropPrior() { d.prior = nil }

// Rebase restarts the document's history as the epoch's rebaser, at change-log
// position mark, keeping concurrent edits of the old history made by sites (none:
// by anyone). ok is false, with nothing to ship, unless site is the rebaser and
// the previous rebase's prior has been dropped.
func (d *Doc) Rebase(site string, mark uint64, sites []string) (c Change, ok bool, err error) {
	if d.Rebaser() != site || d.prior != nil {
		return Change{}, false, nil
	}
	cut, err := d.historyHeads()
	if err != nil {
		return Change{}, false, err
	}
	// The new history starts from the value shown, which merge rules may have
	// made differ from the merged fields.
	fields := d.fields
	if !bytes.Equal(materialize(fields, d.schemas), d.value) {
		fields, _ = flattenValid(d.value, d.schemas)
	}
	body, err := newDocBody(fields, site)
	if err != nil {
		return Change{}, false, err
	}
	d.churn += len(body) * nativePerSavedByte
	c = Change{Op: OpRebase, Inc: d.inc, Epoch: nextRebase(d.epoch), Kind: Document, Data: body,
		Value: d.value, From: d.epoch, Cut: cut, Mark: mark, Sites: slices.Sorted(slices.Values(sites))}
	_, err = d.Apply(c)
	return c, err == nil, err
}

// historyHeads returns the heads of the document's history: a one-branch history's
// head, else automerge's.
func (d *Doc) historyHeads() ([]automerge.ChangeHash, error) {
	if h, ok := d.history(); ok {
		return []automerge.ChangeHash{h.head}, nil
	}
	am, err := d.automerge("")
	if err != nil {
		return nil, err
	}
	return am.Heads(), nil
}

// nextRebase names the epoch that rebases e: same counter, site + generation.
func nextRebase(e Stamp) Stamp {
	site, gen, _ := strings.Cut(e.Site, "\x00")
	n, _ := strconv.Atoi(gen)
	return Stamp{Counter: e.Counter, Site: fmt.Sprintf("%s\x00%010d", site, n+1)}
}

func (d *Doc) applyRebase(c Change) (bool, error) {
	if c.From == d.epoch {
		d.promote()
	}
	switch {
	case c.Epoch.Compare(d.epoch) <= 0:
		return false, nil // old news
	case c.From != d.epoch:
		if c.From.Compare(d.epoch) > 0 {
			return false, ErrMissingDependency // the epoch it restarts has not arrived
		}
		return false, nil // the epoch it restarts was replaced meanwhile
	case d.kind != Document || c.Kind != Document:
		return false, fmt.Errorf("crdt: rebase of a %d body: %w", d.kind, errCorrupt)
	}
	if changed, ok := d.applyLinearRebase(c); ok {
		return changed, nil
	}
	old, err := d.automerge("")
	if err != nil {
		return false, err
	}
	for _, h := range c.Cut {
		if _, err := old.Change(h); err != nil {
			return false, ErrMissingDependency // the cut holds edits not here yet
		}
	}
	post, err := old.Changes(c.Cut...)
	if err != nil {
		return false, fmt.Errorf("crdt: changes since the cut: %w", err)
	}
	body, err := automerge.Load(c.Data)
	if err != nil {
		return false, fmt.Errorf("crdt: load rebased body: %w", err)
	}
	p := &prior{epoch: d.epoch, mark: c.Mark, sites: c.Sites, am: old, amBytes: old.Save(), base: body.Heads(),
		moved: map[automerge.ChangeHash]automerge.ChangeHash{}}
	// A failure part way leaves the document as it was, so that the change
	// can be tried again.
	was := *d
	d.epoch, d.edits, d.am, d.amBytes, d.savedLen, d.prior = c.Epoch, 0, body, bytes.Clone(c.Data), len(c.Data), p
	for _, ch := range causalOrder(post) {
		if err = d.translate(ch); err != nil {
			break
		}
	}
	if err == nil {
		err = d.refresh(nil)
	}
	if err != nil {
		*d = was
		return false, err
	}
	return !bytes.Equal(was.value, d.value), nil
}

// applyLinearRebase applies a rebase whose cut is the whole of a one-branch
// history held here (as the rebaser's own is), without automerge: no edit
// follows the cut, so none is translated, and the new body's fields are read
// from its change (written in Go, bodyChange). The old history is kept as the
// prior's saved form, loaded only should an edit of it arrive. ok is false,
// with nothing changed, for any other rebase, which applyRebase then takes.
func (d *Doc) applyLinearRebase(c Change) (changed, ok bool) {
	h, ok := d.history()
	if !ok || len(c.Cut) != 1 || c.Cut[0] != h.head {
		return false, false
	}
	refs, err := readChanges(c.Data)
	if err != nil || len(refs) != 1 || len(refs[0].deps) != 0 {
		return false, false
	}
	body, ok := parseChange(refs[0].contents)
	if !ok {
		return false, false
	}
	fields := make(map[string]string, len(body.ops))
	for _, op := range body.ops {
		if op.del || op.pred != 0 {
			return false, false
		}
		fields[op.key] = op.value
	}
	p := &prior{epoch: d.epoch, mark: c.Mark, sites: c.Sites, amBytes: bytes.Clone(d.amBytes),
		base: []automerge.ChangeHash{refs[0].hash}, moved: map[automerge.ChangeHash]automerge.ChangeHash{}}
	before := d.value
	d.epoch, d.edits, d.am, d.built, d.amBytes, d.savedLen, d.prior = c.Epoch, 0, nil, nil, bytes.Clone(c.Data), len(c.Data), p
	d.fields, d.value = fields, materialize(fields, d.schemas)
	flat, _ := flattenValid(d.value, d.schemas)
	d.clean = maps.Equal(flat, d.fields)
	return !bytes.Equal(before, d.value), true
}

// applyPriorEdit takes an edit of the old epoch: kept in the prior's history, and
// translated into the current epoch.
func (d *Doc) applyPriorEdit(raw []byte) (bool, error) {
	p := d.prior
	if p.am == nil {
		saved, err := unbatched(p.amBytes)
		if err != nil {
			return false, err
		}
		am, err := automerge.Load(saved)
		if err != nil {
			return false, fmt.Errorf("crdt: load prior epoch: %w", err)
		}
		p.am = am
	}
	refs, err := missingDeps(p.am, raw)
	if err != nil {
		return false, err
	}
	if _, err := d.automerge(""); err != nil {
		return false, err
	}
	var fresh []automerge.ChangeHash // not held yet (a held one may be in the cut)
	for _, ref := range refs {
		if _, err := p.am.Change(ref.hash); err != nil {
			fresh = append(fresh, ref.hash)
		}
	}
	if len(fresh) == 0 {
		return false, nil
	}
	if err := p.am.LoadIncremental(raw); err != nil {
		return false, fmt.Errorf("crdt: apply change: %w", err)
	}
	// The edit as received: SaveIncremental of a document loaded from its saved
	// form would repeat the whole history.
	p.amBytes = append(p.amBytes, raw...)
	before := d.value
	for _, h := range fresh {
		ch, err := p.am.Change(h)
		if err != nil {
			return false, fmt.Errorf("crdt: read change: %w", err)
		}
		if err := d.translate(ch); err != nil {
			return false, err
		}
	}
	if err := d.refresh(nil); err != nil {
		return false, err
	}
	return !bytes.Equal(before, d.value), nil
}

// translate re-makes an edit of the prior epoch as an edit of the current one: the
// field writes it made (its state against its dependencies' state), committed on the
// translations of its dependencies by an actor derived from its own. Everything it
// depends on is the same at every replica, so every replica makes the same bytes.
func (d *Doc) translate(ch *automerge.Change) error {
	p := d.prior
	if !p.keeps(ch.ActorID()) {
		return nil
	}
	deps := ch.Dependencies()
	before, err := fieldsAt(p.am, deps)
	if err != nil {
		return err
	}
	after, err := fieldsAt(p.am, []automerge.ChangeHash{ch.Hash()})
	if err != nil {
		return err
	}
	set, del := diffFields(before, after)
	on := append([]automerge.ChangeHash(nil), p.base...)
	for _, dep := range deps {
		if m, ok := p.moved[dep]; ok {
			on = append(on, m)
		}
	}
	fork, err := d.am.Fork(on...)
	if err != nil {
		return fmt.Errorf("crdt: fork for translation: %w", err)
	}
	if err := fork.SetActorID(translator(ch.ActorID(), d.epoch)); err != nil {
		return fmt.Errorf("crdt: set actor: %w", err)
	}
	if err := writeFields(fork, set, del); err != nil {
		return err
	}
	h, err := fork.Commit(ch.Message(), commitOptions()) // the stamp of the write it translates
	if err != nil {
		return fmt.Errorf("crdt: commit translation: %w", err)
	}
	moved, err := fork.Change(h)
	if err != nil {
		return fmt.Errorf("crdt: read translation: %w", err)
	}
	chunk := moved.Save()
	if err := d.am.LoadIncremental(chunk); err != nil {
		return fmt.Errorf("crdt: apply translation: %w", err)
	}
	p.moved[ch.Hash()] = h
	d.appendSaved(d.am, chunk)
	d.edits++
	return nil
}

// keeps reports whether edits by actor are translated: the actor of a kept site, or
// the translator of one into the prior epoch.
func (p *prior) keeps(actor string) bool {
	if len(p.sites) == 0 {
		return true
	}
	for _, s := range p.sites {
		if a := actorID(s); actor == a || actor == translator(a, p.epoch) {
			return true
		}
	}
	return false
}

// fieldsAt returns the flat fields of am as of heads (none for no heads).
func fieldsAt(am *automerge.Doc, heads []automerge.ChangeHash) (map[string]string, error) {
	if len(heads) == 0 {
		return map[string]string{}, nil
	}
	at, err := am.Fork(heads...)
	if err != nil {
		return nil, fmt.Errorf("crdt: fork: %w", err)
	}
	return readFields(at)
}

// translator is the actor that makes the translations of actor's edits into epoch.
func translator(actor string, epoch Stamp) string {
	sum := sha256.Sum256([]byte("translated\x00" + actor + "\x00" + epoch.String()))
	return hex.EncodeToString(sum[:16])
}

// missingDeps reads raw changes and fails with ErrMissingDependency when one
// depends on a change neither in am nor earlier in raw: automerge would park it
// out of sight, and the store must deliver it again later instead.
func missingDeps(am *automerge.Doc, raw []byte) ([]changeRef, error) {
	refs, err := readChanges(raw)
	if err != nil {
		return nil, err
	}
	in := map[automerge.ChangeHash]bool{}
	for _, ref := range refs {
		for _, dep := range ref.deps {
			if in[dep] {
				continue
			}
			if _, err := am.Change(dep); err != nil {
				return nil, ErrMissingDependency
			}
		}
		in[ref.hash] = true
	}
	return refs, nil
}

// causalOrder sorts changes so that each follows those of them it depends on.
func causalOrder(chs []*automerge.Change) []*automerge.Change {
	pending := map[automerge.ChangeHash]bool{}
	for _, ch := range chs {
		pending[ch.Hash()] = true
	}
	out := make([]*automerge.Change, 0, len(chs))
	for len(out) < len(chs) {
		for _, ch := range chs {
			if !pending[ch.Hash()] {
				continue
			}
			ready := true
			for _, dep := range ch.Dependencies() {
				ready = ready && !pending[dep]
			}
			if ready {
				pending[ch.Hash()] = false
				out = append(out, ch)
			}
		}
	}
	return out
}
