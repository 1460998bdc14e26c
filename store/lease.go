package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// leases tracks granted leases and the keys attached to them. Grants and revokes go
// through the commit path (they are durable); renewals only move the in-memory
// expiry, as in etcd, and every lease restarts its full TTL when the store opens.
type leases struct {
	mu   sync.Mutex
	byID map[int64]*lease
}

type lease struct {
	id     int64
	ttl    int64
	owner  string // the site that granted it, and so expires it
	expiry time.Time
	keys   map[string]struct{}
	// ownerGone is when this site first saw the owner declared dead (zero while
	// it lives); after the takeover timeout this site expires the lease itself.
	ownerGone time.Time
	taken     bool // this site expires it now (logged once)
}

// Lease changes travel in the change log like key changes, with an empty key (which
// no client can write). Their body: op, id, TTL, owner.
const (
	leaseGrant  = 1
	leaseRevoke = 2
)

func encodeLeaseRecord(op byte, l *lease) []byte {
	b := []byte{op}
	b = binary.BigEndian.AppendUint64(b, uint64(l.id))
	b = binary.BigEndian.AppendUint64(b, uint64(l.ttl))
	return append(b, l.owner...)
}

func decodeLeaseRecord(b []byte) (op byte, l *lease, err error) {
	if len(b) < 17 {
		return 0, nil, fmt.Errorf("store: lease record: %w", errCorrupt)
	}
	l = &lease{id: int64(binary.BigEndian.Uint64(b[1:9])), ttl: int64(binary.BigEndian.Uint64(b[9:17])), owner: string(b[17:]), keys: map[string]struct{}{}}
	return b[0], l, nil
}

// LeaseStatus describes a granted lease.
type LeaseStatus struct {
	ID         int64
	GrantedTTL int64
	Remaining  int64 // whole seconds left
	Keys       [][]byte
}

func newLeases() *leases { return &leases{byID: make(map[int64]*lease)} }

func (ls *leases) load(txn *badgerTxn, now time.Time) error {
	return eachUnder(txn, prefixLease, func(k, v []byte) error {
		id := int64(binary.BigEndian.Uint64(k[1:]))
		_, l, err := decodeLeaseRecord(v)
		if err != nil || l.id != id {
			return fmt.Errorf("store: lease %d: %w", id, errCorrupt)
		}
		l.expiry = now.Add(time.Duration(l.ttl) * time.Second)
		ls.byID[id] = l
		return nil
	})
}

func (ls *leases) exists(id int64) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	_, ok := ls.byID[id]
	return ok
}

func (ls *leases) attach(id int64, key []byte) {
	if id == 0 {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.byID[id]; ok {
		l.keys[string(key)] = struct{}{}
	}
}

func (ls *leases) detach(id int64, key []byte) {
	if id == 0 {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.byID[id]; ok {
		delete(l.keys, string(key))
	}
}

// GrantLease grants a lease of ttl seconds; id 0 picks an unused id. It returns the
// id and the TTL granted (raised to the minimum TTL).
func (s *Store) GrantLease(ctx context.Context, id, ttl int64) (int64, int64, error) {
	if ttl > MaxLeaseTTL {
		return 0, 0, ErrLeaseTTLLarge
	}
	ttl = max(ttl, s.cfg.MinLeaseTTL)
	_, err := s.Update(ctx, func(tx *WriteTxn) error {
		if err := tx.Reserve(leaseQuotaCost); err != nil {
			return err
		}
		ls := s.leases
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if id == 0 {
			for id == 0 || ls.byID[id] != nil {
				id = rand.Int64() // ids are random so that sites never collide
			}
		} else if ls.byID[id] != nil {
			return ErrLeaseExists
		}
		l := &lease{id: id, ttl: ttl, owner: s.cfg.Site, expiry: s.cfg.Now().Add(time.Duration(ttl) * time.Second), keys: map[string]struct{}{}}
		ls.byID[id] = l
		tx.mutated = true
		tx.writes = append(tx.writes, write{key: leaseKey(id), value: encodeLeaseRecord(leaseGrant, l)})
		// Other sites learn of the lease so that they can take over its expiry.
		tx.record(s.origin, tx.s.vv[s.origin]+1, nil, encodeLeaseRecord(leaseGrant, l))
		return nil
	})
	return id, ttl, err
}

// RevokeLease revokes a lease and deletes its keys, in one revision.
func (s *Store) RevokeLease(ctx context.Context, id int64) (int64, error) {
	return s.Update(ctx, func(tx *WriteTxn) error { return tx.revokeLease(id) })
}

func (tx *WriteTxn) revokeLease(id int64) error {
	if err := tx.dropLease(id); err != nil {
		return err
	}
	origin := tx.s.origin
	tx.record(origin, tx.s.vv[origin]+1, nil, encodeLeaseRecord(leaseRevoke, &lease{id: id, owner: tx.s.cfg.Site}))
	return nil
}

// dropLease forgets a lease and deletes the keys attached to it here.
func (tx *WriteTxn) dropLease(id int64) error {
	ls := tx.s.leases
	ls.mu.Lock()
	l, ok := ls.byID[id]
	var keys []string
	if ok {
		for k := range l.keys {
			keys = append(keys, k)
		}
		delete(ls.byID, id)
	}
	ls.mu.Unlock()
	if !ok {
		return ErrLeaseNotFound
	}
	tx.mutated = true
	sort.Strings(keys) // deterministic order, as etcd
	for _, k := range keys {
		if ki := tx.s.idx.get([]byte(k)); ki != nil {
			if _, live := ki.live(); live {
				if _, err := tx.deleteKey(ki); err != nil {
					return err
				}
			}
		}
	}
	tx.writes = append(tx.writes, write{key: leaseKey(id), delete: true})
	return nil
}

// RenewLease restarts a lease's TTL and returns it.
func (s *Store) RenewLease(id int64) (int64, error) {
	ls := s.leases
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.byID[id]
	now := s.cfg.Now()
	if !ok || !now.Before(l.expiry) {
		return 0, ErrLeaseNotFound
	}
	l.expiry = now.Add(time.Duration(l.ttl) * time.Second)
	return l.ttl, nil
}

// LeaseTimeToLive describes a lease, with its keys when keys is set.
func (s *Store) LeaseTimeToLive(id int64, keys bool) (LeaseStatus, error) {
	ls := s.leases
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.byID[id]
	if !ok {
		return LeaseStatus{}, ErrLeaseNotFound
	}
	st := LeaseStatus{ID: id, GrantedTTL: l.ttl, Remaining: remaining(l.expiry, s.cfg.Now())}
	if keys {
		for k := range l.keys {
			st.Keys = append(st.Keys, []byte(k))
		}
		sort.Slice(st.Keys, func(i, j int) bool { return string(st.Keys[i]) < string(st.Keys[j]) })
	}
	return st, nil
}

// Leases lists the granted lease ids in increasing order.
func (s *Store) Leases() []int64 {
	ls := s.leases
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ids := make([]int64, 0, len(ls.byID))
	for id := range ls.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// remaining is the whole seconds left, rounded down as etcd reports them.
func remaining(expiry, now time.Time) int64 {
	return max(int64(expiry.Sub(now)/time.Second), 0)
}

// runLeaseExpiry revokes expired leases through the commit path, so their key
// deletes are ordinary committed (and replicated) deletes.
func (s *Store) runLeaseExpiry() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.LeaseCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		var expired []int64
		s.leases.mu.Lock()
		for id, l := range s.leases.byID {
			// A store alone (one restored from another site's backup, say)
			// expires every lease: no other site will.
			if s.cfg.Replicated && l.owner != s.cfg.Site && !s.takenOver(l, now) {
				continue // its own site expires it
			}
			if !now.Before(l.expiry) {
				expired = append(expired, id)
			}
		}
		s.leases.mu.Unlock()
		for _, id := range expired {
			if _, err := s.RevokeLease(context.Background(), id); err != nil && !errors.Is(err, ErrLeaseNotFound) {
				if !errors.Is(err, ErrClosed) {
					s.log.Error("revoking expired lease", "lease", id, "err", err)
				}
				break
			}
			s.metrics.leaseExpired()
		}
	}
}

// takenOver reports whether this site now expires a lease another site granted:
// once membership has declared the owner dead for the takeover timeout. The lease
// then runs its full TTL from the takeover. Called with leases.mu held.
func (s *Store) takenOver(l *lease, now time.Time) bool {
	alive := s.ownerAlive.Load()
	if alive == nil || (*alive)(l.owner) {
		l.ownerGone, l.taken = time.Time{}, false
		return false
	}
	if l.ownerGone.IsZero() {
		l.ownerGone = now
	}
	if now.Sub(l.ownerGone) < s.cfg.LeaseTakeover {
		return false
	}
	if took := l.ownerGone.Add(s.cfg.LeaseTakeover); l.expiry.Before(took) {
		l.expiry = took.Add(time.Duration(l.ttl) * time.Second)
	}
	if !l.taken {
		l.taken = true
		s.cfg.Logger.Info("store: lease taken over", "lease", l.id, "owner", l.owner, "owner-dead-since", l.ownerGone, "expires", l.expiry)
	}
	return true
}

// SetSiteAlive installs membership's verdict on other sites, used to take over the
// expiry of leases whose site is gone.
func (s *Store) SetSiteAlive(alive func(site string) bool) { s.ownerAlive.Store(&alive) }

// applyLeaseChange merges a lease granted or revoked at another site.
func (tx *WriteTxn) applyLeaseChange(body []byte) error {
	op, l, err := decodeLeaseRecord(body)
	if err != nil {
		return err
	}
	ls := tx.s.leases
	switch op {
	case leaseGrant:
		ls.mu.Lock()
		if ls.byID[l.id] == nil {
			l.expiry = tx.s.cfg.Now().Add(time.Duration(l.ttl) * time.Second)
			ls.byID[l.id] = l
		}
		ls.mu.Unlock()
		tx.writes = append(tx.writes, write{key: leaseKey(l.id), value: encodeLeaseRecord(leaseGrant, l)})
		return nil
	case leaseRevoke:
		// The revoking site deleted the keys; those deletes arrive as changes of
		// their own. Here the lease and what this site attached to it go.
		if err := tx.dropLease(l.id); err != nil && !errors.Is(err, ErrLeaseNotFound) {
			return err
		}
		return nil
	}
	return fmt.Errorf("store: lease change op %d: %w", op, errCorrupt)
}
