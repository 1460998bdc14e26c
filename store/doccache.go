package store

import (
	"container/list"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/rhizome-kv/rhizome/crdt"
)

// docCache keeps the documents of recently written keys, least recently used
// evicted first, within a budget of bytes that counts both the Go heap a
// document holds and the C-side memory of the automerge documents it has loaded
// (crdt.Doc.HeapBytes, NativeBytes). A key nobody writes costs nothing here: its
// value is read from badger and its document is decoded from badger when a write
// or a merge needs it. Documents changed by the batch being committed are pinned
// until it settles, whatever the budget.
//
// An evicted document's C memory is let go at once (crdt.Doc.Unload) but freed
// only when Go's garbage collector next runs and finalizes what wrapped it; the
// collector paces itself by Go's heap alone and would leave it for long. So the
// cache counts the C garbage it lets go, and the automerge documents writes made
// and dropped (crdt.Doc.TakeChurn), and once that reaches its budget asks for a
// collection (reclaim). Owned by the committer, but for the gauges.
type docCache struct {
	max          int64
	lru          *list.List // of *cachedDoc, most recent at front
	byKey        map[string]*list.Element
	pinned       map[string]*crdt.Doc
	heap, native atomic.Int64 // bytes the documents in the LRU hold, for the gauges
	garbage      int64        // C-side bytes let go since the last reclaim
	reclaim      chan struct{}
}

// cacheEntryBytes is what an entry costs the cache beyond its document and
// key: the cachedDoc, its list element and its place in byKey. Counted, a
// cache of small documents (registers of a few hundred bytes) holds its budget
// in memory, not two or three times it.
const cacheEntryBytes = 128

type cachedDoc struct {
	key          string
	doc          *crdt.Doc
	heap, native int64
}

func newDocCache(maxBytes int64) *docCache {
	return &docCache{max: maxBytes, lru: list.New(), byKey: make(map[string]*list.Element),
		pinned: make(map[string]*crdt.Doc), reclaim: make(chan struct{}, 1)}
}

func (c *docCache) get(key string) (*crdt.Doc, bool) {
	if d, ok := c.pinned[key]; ok {
		return d, true
	}
	if e, ok := c.byKey[key]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cachedDoc).doc, true
	}
	return nil, false
}

func (c *docCache) pin(key string, d *crdt.Doc) { c.pinned[key] = d }

// drop lets go of a document read outside the cache.
func (c *docCache) drop(d *crdt.Doc) { c.letGo(int64(d.Unload() + d.TakeChurn())) }

// settle moves the batch's documents into the LRU once they are durable and
// evicts down to the budget.
func (c *docCache) settle() {
	for key, d := range c.pinned {
		c.letGo(int64(d.TakeChurn()))
		e, ok := c.byKey[key]
		if !ok {
			e = c.lru.PushFront(&cachedDoc{key: key})
			c.byKey[key] = e
		}
		cd := e.Value.(*cachedDoc)
		c.account(cd, -1)
		if cd.doc != nil && cd.doc != d {
			// Replaced by a document prepared outside the cache (prepare.go).
			c.letGo(int64(cd.doc.Unload()))
		}
		cd.doc, cd.heap, cd.native = d, int64(d.HeapBytes()+len(key)+cacheEntryBytes), int64(d.NativeBytes())
		c.account(cd, 1)
		c.lru.MoveToFront(e)
		delete(c.pinned, key)
	}
	for c.lru.Len() > 0 && c.heap.Load()+c.native.Load() > c.max {
		e := c.lru.Back()
		cd := e.Value.(*cachedDoc)
		c.account(cd, -1)
		delete(c.byKey, cd.key)
		c.lru.Remove(e)
		c.letGo(int64(cd.doc.Unload()))
	}
}

func (c *docCache) account(cd *cachedDoc, sign int64) {
	c.heap.Add(sign * cd.heap)
	c.native.Add(sign * cd.native)
}

// letGo counts C-side garbage and asks for a collection once it reaches the
// budget (at least 1 MiB, so a tiny cache does not collect at every write).
func (c *docCache) letGo(n int64) {
	c.garbage += n
	if c.garbage < max(c.max, 1<<20) {
		return
	}
	c.garbage = 0
	select {
	case c.reclaim <- struct{}{}:
	default: // one is pending
	}
}

// reset forgets every document (their changes may never have committed).
func (c *docCache) reset() {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		c.letGo(int64(e.Value.(*cachedDoc).doc.Unload()))
	}
	for _, d := range c.pinned {
		c.drop(d)
	}
	c.lru.Init()
	clear(c.byKey)
	clear(c.pinned)
	c.heap.Store(0)
	c.native.Store(0)
}

// reclaimIdle is how long the store must see no write before the reclaimer
// gives the memory freed since the last writes back to the system.
const reclaimIdle = 2 * time.Second

// tablePagesPeriod is how often the reclaimer may drop the pages of the
// tables from the resident memory while writes go on: compactions read every
// table they merge through its mapping, tens of MiB a second at 10,000 pods
// (when badger also wrote new tables through their mappings, 45 MiB stayed
// resident at the end of the updates with a period of 2 s). A release reads
// the process's mappings and drops the tables' in one call
// (tablepages_linux.go): 0.6 % of the CPU under pod updates at 50,000 pods.
// It drops them only once a table was built since the last (tableReleases).
const tablePagesPeriod = 500 * time.Millisecond

// tableReleases decides, at each tablePagesPeriod tick, whether to drop the
// tables' pages. Tables' pages pile up where tables are built: a flush or a
// compaction (which also reads every table it merges) makes a table, and
// badger numbers each new table above all before it. Reads map only the
// blocks they touch; a release while no table was built would mostly drop
// those, for the next reads to fault them back in, 4 % of the store's CPU
// under kube-apiserver when every period released (Table.block).
type tableReleases struct {
	rev    int64  // the revision at the last release
	newest uint64 // the newest table then
}

// due records a tick at which the store's revision is rev and its newest
// table newest, and reports whether to release now: after writes, once a
// table was built since the last release.
func (r *tableReleases) due(rev int64, newest uint64) bool {
	if rev == r.rev || newest == r.newest {
		return false
	}
	r.rev, r.newest = rev, newest
	return true
}

// reclaimIdleLast is the longest idle time after which the reclaimer returns
// memory once more: badger lets its pooled table-builder buffers go one every
// two seconds once it builds no table (eight of them: 16 s), and a store idle
// that long has given back all it will.
const reclaimIdleLast = 32 * time.Second

// runReclaimer runs Go's garbage collector when the document cache asks, so
// that the automerge memory it let go is freed (see docCache); and once the
// store has been idle for reclaimIdle after writes, it also returns the memory
// freed to the system, Go's and automerge's (Go's own scavenger would take
// minutes, and glibc keeps what it frees inside its arenas), again each time
// the idle time doubles up to reclaimIdleLast, so an idle site is as small as
// its live data. Every tablePagesPeriod while writes go on, and at those idle
// times, it also drops the pages of badger's tables from the resident memory
// (tablepages.go; Open drops those recovery read before the store serves).
func (s *Store) runReclaimer() {
	defer s.wg.Done()
	tick := time.NewTicker(reclaimIdle)
	defer tick.Stop()
	pages := time.NewTicker(tablePagesPeriod)
	defer pages.Stop()
	idle := newIdleSchedule(s.Rev())
	tables := s.tablePagesDir()
	releases := tableReleases{rev: s.Rev(), newest: s.newestTable()}
	for {
		select {
		case <-s.closing:
			return
		case <-s.docs.reclaim:
			// Not trimmed here: malloc_trim at every collection cost 9-10 % of
			// the CPU of a run of first edits; the idle schedule trims.
			runtime.GC()
		case <-pages.C:
			if releases.due(s.Rev(), s.newestTable()) {
				s.releaseTablePages(tables)
			}
		case <-tick.C:
			if idle.due(s.Rev()) {
				// And what compactions wrote since the writes stopped.
				s.releaseTablePages(tables)
				debug.FreeOSMemory()
				crdt.TrimNative() // what the previous collection's finalizers freed
			}
		}
	}
}

// releaseTablePages releases the resident pages of the tables in dir, the
// store's as tablePagesDir names it ("": none).
func (s *Store) releaseTablePages(dir string) {
	if dir == "" {
		return
	}
	if _, err := releaseTablePages(s.db, dir); err != nil {
		s.log.Debug("keeping table pages resident", "err", err)
	}
}

// newestTable returns the ID of the store's newest table (0: none).
func (s *Store) newestTable() uint64 {
	var newest uint64
	for _, id := range s.db.TableIDs() {
		newest = max(newest, id)
	}
	return newest
}

// tablePagesDir is the directory whose table pages the reclaimer releases, as
// the kernel names it; "" for none (a store in memory, or a directory that
// cannot be resolved).
func (s *Store) tablePagesDir() string {
	if s.cfg.InMemory {
		return ""
	}
	dir, err := resolvedDir(s.cfg.Dir)
	if err != nil {
		s.log.Warn("table pages stay resident", "dir", s.cfg.Dir, "err", err)
		return ""
	}
	return dir
}

// idleSchedule decides, at each reclaimIdle tick, whether to return memory to
// the system: after reclaimIdle without a new revision, then each time the
// idle time doubles, up to reclaimIdleLast.
type idleSchedule struct {
	lastRev    int64
	idle, next time.Duration
}

func newIdleSchedule(rev int64) idleSchedule {
	return idleSchedule{lastRev: rev, next: reclaimIdle}
}

// due records a tick at which the store's revision is rev and reports whether
// memory is to be returned now.
func (i *idleSchedule) due(rev int64) bool {
	if rev != i.lastRev {
		*i = newIdleSchedule(rev)
		return false
	}
	i.idle += reclaimIdle
	if i.idle < i.next || i.next > reclaimIdleLast {
		return false
	}
	i.next *= 2
	return true
}
