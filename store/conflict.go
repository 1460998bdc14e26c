package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/rhizome-kv/rhizome/crdt"
)

// Conflict is one conflict the store recorded while merging a change from
// another site: which write won, which lost (their stamps name the writing
// sites; Conflicts lists them without the sites' incarnations), how it was resolved, and when this site recorded it. Which site
// records a conflict depends on the order changes arrive; the merged value never
// does.
type Conflict struct {
	Key    []byte
	Kind   crdt.ConflictKind // concurrent-create, validation or allocation
	Winner crdt.Stamp        // the incarnation or write that stands
	Loser  crdt.Stamp        // the one dropped
	Time   time.Time         // this site's clock (Config.Now) when recorded; zero for records of old stores
	Detail string            // what the recorder said of it (allocation: the value held twice); "" for merges
}

// recordConflicts records the conflicts the key's document resolved since it had
// recorded before of them: each is written in the commit (the latest
// Config.MaxConflicts kept), counted and logged.
func (tx *WriteTxn) recordConflicts(key []byte, doc *crdt.Doc, before uint64) {
	n := doc.ConflictCount() - before
	if n == 0 {
		return
	}
	all := doc.ConflictLog()
	for _, c := range all[len(all)-int(min(n, uint64(len(all)))):] {
		tx.writeConflict(Conflict{Key: key, Kind: c.Kind, Winner: c.Winner, Loser: c.Loser, Time: tx.s.cfg.Now()})
	}
}

// writeConflict writes one conflict record in the commit (dropping the oldest
// beyond Config.MaxConflicts), counts and logs it.
func (tx *WriteTxn) writeConflict(rec Conflict) {
	tx.s.conflictSeq++
	seq := tx.s.conflictSeq
	tx.writes = append(tx.writes, write{key: conflictKey(seq), value: rec.encode()})
	if limit := uint64(tx.s.cfg.MaxConflicts); seq > limit {
		tx.writes = append(tx.writes, write{key: conflictKey(seq - limit), delete: true})
	}
	tx.s.metrics.conflict(rec.Kind)
	tx.s.log.Warn("conflict resolved", "key", string(rec.Key), "kind", rec.Kind.String(),
		"winner", rec.Winner.String(), "loser", rec.Loser.String(), "detail", rec.Detail)
}

// RecordConflict records, in this write's commit, a conflict its caller
// resolved between the live objects at key (the loser) and winnerKey (the
// winner), such as a crdt.Allocation repair; detail says what was at stake.
// The record names the two keys' incarnations (and so the sites that created
// them) and is listed by Conflicts like a merge's. It is an event of this
// site: a caller at every site resolving the same conflict records it at each.
func (tx *WriteTxn) RecordConflict(kind crdt.ConflictKind, key, winnerKey []byte, detail string) error {
	if tx.s.docless {
		return ErrDocless
	}
	var inc [2]crdt.Stamp
	for i, k := range [][]byte{winnerKey, key} {
		d, err := tx.peekDoc(k)
		if err != nil {
			return err
		}
		if _, live := d.Value(); !live {
			return fmt.Errorf("store: record conflict: %q does not exist", k)
		}
		inc[i] = d.Incarnation()
	}
	tx.writeConflict(Conflict{Key: bytes.Clone(key), Kind: kind, Winner: inc[0], Loser: inc[1],
		Time: tx.s.cfg.Now(), Detail: detail})
	return nil
}

// Conflicts lists the conflicts recorded, oldest first: records of stores from
// before kinds were kept (one per key, a concurrent create), then the latest
// Config.MaxConflicts in the order they were recorded.
func (s *Store) Conflicts() ([]Conflict, error) {
	var out []Conflict
	err := s.db.View(func(txn *badger.Txn) error {
		err := eachUnder(txn, prefixConflict, func(k, v []byte) error {
			c, err := crdt.DecodeChange(v) // two stamps in the change codec
			if err != nil {
				return err
			}
			out = append(out, Conflict{Key: k[1:], Kind: crdt.ConcurrentCreate, Winner: c.Inc, Loser: c.Epoch})
			return nil
		})
		if err != nil {
			return err
		}
		return eachUnder(txn, prefixConflicts, func(_, v []byte) error {
			c, err := decodeConflict(v)
			if err == nil {
				out = append(out, c)
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list conflicts: %w", err)
	}
	// The stamps name the writing sites, not their incarnations.
	for i := range out {
		out[i].Winner.Site, out[i].Loser.Site = OriginSite(out[i].Winner.Site), OriginSite(out[i].Loser.Site)
	}
	return out, nil
}

// loadConflicts finds the last conflict record's sequence number at Open and
// drops records beyond Config.MaxConflicts (after it was lowered).
func (s *Store) loadConflicts() error {
	var seqs []uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflicts}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seqs = append(seqs, binary.BigEndian.Uint64(it.Item().Key()[1:]))
		}
		return nil
	})
	if err != nil || len(seqs) == 0 {
		return err
	}
	s.conflictSeq = seqs[len(seqs)-1]
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, seq := range seqs[:max(0, len(seqs)-s.cfg.MaxConflicts)] {
		if err := wb.Delete(conflictKey(seq)); err != nil {
			return err
		}
	}
	return wb.Flush()
}

func conflictKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixConflicts}, seq)
}

// A conflict record: version 2, kind, winner and loser stamps (counter, site),
// the time in Unix nanoseconds, the detail (length, bytes) and the key.
// Version 1 had no detail.
func (c Conflict) encode() []byte {
	b := []byte{2, byte(c.Kind)}
	for _, st := range []crdt.Stamp{c.Winner, c.Loser} {
		b = binary.AppendUvarint(b, st.Counter)
		b = binary.AppendUvarint(b, uint64(len(st.Site)))
		b = append(b, st.Site...)
	}
	b = binary.AppendVarint(b, c.Time.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(c.Detail)))
	b = append(b, c.Detail...)
	return append(b, c.Key...)
}

func decodeConflict(b []byte) (Conflict, error) {
	var c Conflict
	if len(b) < 2 || b[0] < 1 || b[0] > 2 {
		return c, fmt.Errorf("store: conflict record: %w", errCorrupt)
	}
	version := b[0]
	c.Kind, b = crdt.ConflictKind(b[1]), b[2:]
	uv := func() uint64 {
		v, w := binary.Uvarint(b)
		if w <= 0 {
			b = nil
			return 0
		}
		b = b[w:]
		return v
	}
	for _, st := range []*crdt.Stamp{&c.Winner, &c.Loser} {
		st.Counter = uv()
		if n := uv(); b != nil && uint64(len(b)) >= n {
			st.Site, b = string(b[:n]), b[n:]
		} else {
			b = nil
		}
	}
	ns, w := binary.Varint(b)
	if b == nil || w <= 0 {
		return c, fmt.Errorf("store: conflict record: %w", errCorrupt)
	}
	c.Time, b = time.Unix(0, ns).UTC(), b[w:]
	if version >= 2 {
		if n := uv(); b != nil && uint64(len(b)) >= n {
			c.Detail, b = string(b[:n]), b[n:]
		} else {
			return c, fmt.Errorf("store: conflict record: %w", errCorrupt)
		}
	}
	c.Key = bytes.Clone(b)
	return c, nil
}
