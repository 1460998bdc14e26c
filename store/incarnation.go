package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Incarnations.
//
// A site's changes are numbered in its own sequence, and peers drop a change whose
// number they already hold as a duplicate. A site that loses its data directory
// (a wiped disk, or a backup restored under its name) and starts again under the
// same name would number its new changes from 1 again, and peers would drop them.
// So every data directory has an incarnation, chosen at its first Open (Config.Rand
// and Config.Now) and kept in it, and the origin of the changes written here — the
// key of the version vector, the change log, the documents' actors and stamps — is
// the site's name and its incarnation (Origin). A new incarnation's changes are a
// new origin's: nothing it writes is mistaken for the old one's, even when it
// writes while it reaches no peer at all, and the old incarnation's changes, held
// by the peers, come back to it as any other origin's do (or in a snapshot, where
// the peers' logs no longer hold them).
//
// Incarnations order by the time they were made, to the nanosecond (then at
// random), so every site tells alike which incarnation of a name is the newest:
// the sync layer counts only that one, and stops waiting for the others (see
// OriginSite, NewerOrigin).
// A directory written before incarnations existed has none: its origin is the
// bare site name, older than any incarnation of it.

// originSep separates a site's name from its incarnation in an origin.
const originSep = "~"

// Origin returns the origin of the changes written here: the site's name and the
// data directory's incarnation ("name~incarnation"; the bare name for a directory
// older than incarnations).
// It changes only when a snapshot is installed anew (InstallOptions.Anew).
func (s *Store) Origin() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.origin
}

// OriginSite returns the site name of an origin.
func OriginSite(origin string) string {
	site, _, _ := strings.Cut(origin, originSep)
	return site
}

// NewerOrigin reports whether origin a is a newer incarnation than b of the same
// site (false for origins of different sites).
func NewerOrigin(a, b string) bool {
	return OriginSite(a) == OriginSite(b) && a > b
}

// newIncarnation makes an incarnation: the creation time in seconds, then its
// nanoseconds, then random bits, in hex, so that incarnations of one site sort
// by the time they were made. The nanoseconds matter: a disk wiped and started
// again within the second of its first Open would otherwise sort by chance, half
// the time older than the incarnation it replaces, and the peers would count the
// old one while the site writes as the new one (they would never converge).
// (Incarnations made before the nanoseconds were added sort among these by their
// seconds, then by chance within one second.)
func (s *Store) newIncarnation() (string, error) {
	now := s.cfg.Now()
	b := binary.BigEndian.AppendUint32(nil, uint32(now.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(now.Nanosecond()))
	b = append(b, make([]byte, 4)...)
	if _, err := io.ReadFull(s.cfg.Rand, b[8:]); err != nil {
		return "", fmt.Errorf("store: new incarnation: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newIncarnationAfter makes an incarnation newer than origin's (NewerOrigin),
// even if the clock has not moved on since origin's was made, or went back.
func (s *Store) newIncarnationAfter(origin string) (string, error) {
	fresh, err := s.newIncarnation()
	if err != nil || NewerOrigin(s.cfg.Site+originSep+fresh, origin) {
		return fresh, err
	}
	_, inc, _ := strings.Cut(origin, originSep)
	b, err := hex.DecodeString(inc)
	if err != nil || len(b) < 4 {
		b = make([]byte, 4) // the bare name: older than any incarnation
	}
	sec := binary.BigEndian.Uint32(b) + 1
	return hex.EncodeToString(binary.BigEndian.AppendUint32(nil, sec)) + fresh[8:], nil
}

// claimSite records which site the data belongs to and its incarnation, the first
// time, and refuses to serve it as another site: a site's sequence numbers are its
// own, and a backup restored under a new name must not be opened under the old
// one by mistake. It sets s.origin.
func (s *Store) claimSite() error {
	return s.db.Update(func(txn *badger.Txn) error {
		owner, err := metaBytes(txn, metaSite)
		if err != nil {
			return err
		}
		inc, err := metaBytes(txn, metaIncarnation)
		if err != nil {
			return err
		}
		if owner != nil && string(owner) != s.cfg.Site {
			return fmt.Errorf("%w: %s holds the data of site %q, not %q", ErrOtherSite, s.cfg.Dir, owner, s.cfg.Site)
		}
		s.origin = s.cfg.Site
		switch {
		case owner != nil && inc == nil: // older than incarnations
			return nil
		case len(inc) > 0:
			s.origin += originSep + string(inc)
			return nil
		}
		// A new directory, or a restored one: a new incarnation.
		fresh, err := s.newIncarnation()
		if err != nil {
			return err
		}
		s.origin += originSep + fresh
		if owner == nil {
			if err := txn.Set(metaSite, []byte(s.cfg.Site)); err != nil {
				return err
			}
		}
		return txn.Set(metaIncarnation, []byte(fresh))
	})
}

// metaBytes reads a meta value: nil if never written, empty if written empty.
func metaBytes(txn *badger.Txn, k []byte) ([]byte, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read meta: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("store: read meta: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}
