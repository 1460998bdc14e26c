package store

import (
	"fmt"

	"github.com/dgraph-io/ristretto/v2"
)

// recordCache keeps the states of recent revisions in memory, bounded by
// bytes (Config.RecordCacheBytes): those a commit just made durable, which
// the index lets go (show), and those reads found in badger. A revision's
// record never changes once written, and compaction deletes only revisions
// below the compacted one, which no read asks for, so an entry is never
// stale and nothing is ever invalidated. A read it answers skips badger: its
// memtables' and tables' searches, and a block's checksum. Safe for
// concurrent use; nil (a size of 0) caches nothing.
type recordCache struct {
	c *ristretto.Cache[uint64, KeyValue]
}

// newRecordCache returns a cache of about maxBytes of states (nil for 0).
func newRecordCache(maxBytes int64) (*recordCache, error) {
	if maxBytes == 0 {
		return nil, nil
	}
	c, err := ristretto.NewCache(&ristretto.Config[uint64, KeyValue]{
		// Ten counters an entry, for entries of a few hundred bytes.
		NumCounters:        max(maxBytes/30, 1000),
		MaxCost:            maxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: record cache: %w", err)
	}
	return &recordCache{c: c}, nil
}

// cacheKey names a revision in the cache; ok is false for one it cannot name
// (the cache then holds nothing of it).
func cacheKey(r revision) (key uint64, ok bool) {
	if r.main < 0 || r.main >= 1<<40 || r.sub < 0 || r.sub >= 1<<24 {
		return 0, false
	}
	return uint64(r.main)<<24 | uint64(r.sub), true
}

// get returns the state of revision r if the cache holds it.
func (c *recordCache) get(r revision) (KeyValue, bool) {
	if c == nil {
		return KeyValue{}, false
	}
	key, ok := cacheKey(r)
	if !ok {
		return KeyValue{}, false
	}
	return c.c.Get(key)
}

// put offers the cache kv, the state of durable revision r. kv's slices are
// shared with whoever reads it from the cache, and must not change.
func (c *recordCache) put(r revision, kv KeyValue) {
	if c == nil {
		return
	}
	if key, ok := cacheKey(r); ok {
		c.c.Set(key, kv, int64(len(kv.Key)+len(kv.Value))+64)
	}
}

// close stops the cache's goroutines.
func (c *recordCache) close() {
	if c != nil {
		c.c.Close()
	}
}
