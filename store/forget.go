package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Forgetting is one site's decision that the cluster stop waiting for an
// incarnation of another site (its --forget-site-after clock ran out). The sync
// layer replicates the decisions (every site ends up holding every one) and
// folds them, in their order, into the set of forgotten incarnations
// (sync/peer's doc, Forgetting); the store keeps them durably, so they survive
// restarts, and hands them out in order.
type Forgetting struct {
	Origin string // the incarnation forgotten (an origin, Store.Origin)
	By     string // the origin of the site that decided
	At     int64  // when, on the deciding site's clock (Unix nanoseconds)
}

// CompareForgettings orders decisions: by At, then By, then Origin — the same
// total order at every site.
func CompareForgettings(a, b Forgetting) int {
	return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.By, b.By), cmp.Compare(a.Origin, b.Origin))
}

// Forgettings returns the decisions this store holds, in order.
func (s *Store) Forgettings() []Forgetting {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.forgettings)
}

// AddForgettings records decisions not held yet, durably, through the commit
// path (they take no revision), and returns how many were new. A decision is
// known by its Origin and By: one site decides once about an incarnation.
func (s *Store) AddForgettings(ctx context.Context, fs []Forgetting) (int, error) {
	added := 0
	_, err := s.Update(ctx, func(tx *WriteTxn) error {
		for _, f := range fs {
			if f.Origin == "" || f.By == "" {
				return fmt.Errorf("store: forgetting %+v: origin and decider required", f)
			}
			if slices.ContainsFunc(tx.s.forgettings, func(g Forgetting) bool { return g.Origin == f.Origin && g.By == f.By }) {
				continue
			}
			tx.s.forgettings = append(tx.s.forgettings, f)
			tx.writes = append(tx.writes, write{key: forgettingKey(f), value: int64Bytes(f.At)})
			added++
		}
		slices.SortFunc(tx.s.forgettings, CompareForgettings)
		return nil
	})
	return added, err
}

// forgettingKey is f | len(origin) | origin | by.
func forgettingKey(f Forgetting) []byte {
	k := binary.AppendUvarint([]byte{prefixForgetting}, uint64(len(f.Origin)))
	return append(append(k, f.Origin...), f.By...)
}

func parseForgetting(k, v []byte) (Forgetting, error) {
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || uint64(len(k)-1-w) < n {
		return Forgetting{}, errCorrupt
	}
	at, err := bytesInt64(v)
	rest := k[1+w:]
	return Forgetting{Origin: string(rest[:n]), By: string(rest[n:]), At: at}, err
}

// loadForgettings reads the decisions at Open.
func (s *Store) loadForgettings(txn *badger.Txn) error {
	err := eachUnder(txn, prefixForgetting, func(k, v []byte) error {
		f, err := parseForgetting(k, v)
		if err != nil {
			return fmt.Errorf("store: forgetting: %w", err)
		}
		s.forgettings = append(s.forgettings, f)
		return nil
	})
	slices.SortFunc(s.forgettings, CompareForgettings)
	return err
}
