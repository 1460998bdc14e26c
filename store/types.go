package store

import "errors"

// Errors a client can act on. etcdshim maps each to etcd's gRPC error.
var (
	ErrCompacted     = errors.New("store: required revision has been compacted")
	ErrFutureRev     = errors.New("store: required revision is a future revision")
	ErrLeaseNotFound = errors.New("store: requested lease not found")
	ErrLeaseExists   = errors.New("store: lease already exists")
	ErrLeaseTTLLarge = errors.New("store: too large lease TTL")
	ErrClosed        = errors.New("store: closed")
	ErrNoSpace       = errors.New("store: database space exceeded")
	ErrOtherSite     = errors.New("store: the data directory belongs to another site")
)

// MaxLeaseTTL is the longest lease TTL, in seconds (etcd's limit).
const MaxLeaseTTL = 9_000_000_000

// KeyValue is a key's state at one revision, as etcd reports it.
type KeyValue struct {
	Key            []byte
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Lease          int64
}

// EventType says what an Event did.
type EventType uint8

const (
	EventPut EventType = iota + 1
	EventDelete
)

// Event is one committed change. For a delete, KV holds the key and the revision of
// the delete. PrevKV is the key's state before the change, nil if it did not exist
// or, in an event as published, if it was not in memory when the change was
// committed: Store.PrevKV reads it then, as etcd reads a watcher's prev_kv when it
// sends the event.
type Event struct {
	Type   EventType
	KV     KeyValue
	PrevKV *KeyValue
	prev   revision // the revision PrevKV is the state of, when not read at commit
}

// RangeOptions selects what Range returns. It follows etcd's wire conventions:
// an empty End means the single key Key; End "\x00" means every key >= Key.
type RangeOptions struct {
	End       []byte
	Rev       int64 // 0: the latest revision
	Limit     int64 // 0: no limit
	CountOnly bool
	// KeysOnly returns KVs without Value and Lease, made from the in-memory
	// index alone (key, create and mod revision, version), as etcd answers a
	// keys-only range from its index: no revision record is read.
	KeysOnly bool
}

// RangeResult is what Range found.
type RangeResult struct {
	KVs   []KeyValue
	Count int   // keys in the range at Rev, regardless of Limit
	Rev   int64 // the store's revision when read (not Rev of the request)
}

// Publisher receives committed events, in revision order, after they are durable.
// Publish must not block for long: it runs on the commit path.
type Publisher interface {
	Publish(rev int64, events []Event)
}
