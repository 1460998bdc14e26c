package store

import "context"

// Small views of the store, composed into the ones a request runs in, in the
// manner of etcd's mvcc package: a reader of the shim (etcdshim) depends on
// these, not on Store or WriteTxn.

// ReadView reads the key space at one revision.
type ReadView interface {
	// Rev returns the revision the view reads at: the newest durable revision
	// when the view began, for a write the revision before it.
	Rev() int64
	// CompactRev returns the revision of the last compaction (-1 if none):
	// reads at a revision below it fail with ErrCompacted.
	CompactRev() int64
	// Range reads keys by etcd's key/end convention at opts.Rev, 0 meaning the
	// view's own revision. A revision above that fails with ErrFutureRev, one
	// below CompactRev with ErrCompacted. RangeResult.Rev is the view's revision,
	// or, in a write that has changed something, the revision it commits as; a
	// write's Range sees its own changes.
	Range(key []byte, opts RangeOptions) (RangeResult, error)
}

// WriteView changes the key space. Every change of one write takes the same
// revision, Rev()+1, and becomes visible to other views only once that
// revision is durable.
type WriteView interface {
	// Put writes key with value, attached to lease (0: none; an unknown lease
	// fails with ErrLeaseNotFound). The key's version grows by one; a key that
	// was absent starts at version 1 with its create revision the write's.
	Put(key, value []byte, lease int64) error
	// DeleteRange deletes the live keys by etcd's key/end convention and
	// returns their states before the write.
	DeleteRange(key, end []byte) ([]KeyValue, error)
	// Changed reports whether the write has changed anything yet: only then
	// does it take a revision.
	Changed() bool
}

// TxnRead is a read of one request: a view and what the request may check
// besides keys.
type TxnRead interface {
	ReadView
	// LeaseExists reports whether a lease is granted now (leases are not
	// versioned).
	LeaseExists(id int64) bool
}

// TxnWrite is one atomic write: it reads its own changes, and is charged
// against the space quota before it writes.
type TxnWrite interface {
	TxnRead
	WriteView
	// Reserve charges cost bytes against the quota; past it the write fails
	// with ErrNoSpace (see quota.go). Call it before the first change.
	Reserve(cost int64) error
}

var _ TxnWrite = (*WriteTxn)(nil)

// Write runs fn as one atomic write, like Update, seeing the write through
// TxnWrite. It returns the revision the write committed as (the current one
// when fn changed nothing), once durable.
//
// fn runs twice: first in the caller's goroutine against a dry view of the
// newest durable revision, so that the documents of the keys it puts are
// readied there rather than in the committer (prepare.go), then for real. Only
// the second run's effects and result count; fn must leave nothing else behind
// from the first (set its results, do not append to them).
func (s *Store) Write(ctx context.Context, fn func(TxnWrite) error) (int64, error) {
	r := &request{fns: []func(*WriteTxn) error{func(tx *WriteTxn) error { return fn(tx) }}, done: make(chan struct{})}
	r.prep = s.prepare(fn)
	rev, err := s.submit(ctx, r)
	dropPrepared(r.prep) // never committed (the committer takes them otherwise)
	return rev, err
}

// Read returns a read view at the newest durable revision. It holds nothing:
// a compaction past its revision makes its reads fail with ErrCompacted.
func (s *Store) Read() TxnRead { return readView{s: s, rev: s.Rev()} }

// readView reads a store at one revision.
type readView struct {
	s   *Store
	rev int64
	dry bool // a write's dry run (prepare.go): its reads are not counted
}

func (v readView) Rev() int64                { return v.rev }
func (v readView) CompactRev() int64         { return v.s.CompactRev() }
func (v readView) LeaseExists(id int64) bool { return v.s.leases.exists(id) }

func (v readView) Range(key []byte, opts RangeOptions) (RangeResult, error) {
	if opts.Rev == 0 {
		opts.Rev = v.rev
	} else if opts.Rev > v.rev {
		return RangeResult{}, ErrFutureRev
	}
	read := v.s.Range
	if v.dry {
		read = v.s.rangeCommitted
	}
	res, err := read(key, opts)
	res.Rev = v.rev
	return res, err
}
