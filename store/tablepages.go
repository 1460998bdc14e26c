package store

import (
	"github.com/dgraph-io/badger/v4"
)

// Resident table pages. badger reads tables through shared memory mappings of
// their files, so every page a read or a compaction touched stays mapped and
// counts as the process's resident memory: compactions read every table they
// merge, so in time the whole store (about 120 MiB of a 505 MiB site after
// 5,000 pods and 15,000 updates, when badger also wrote each new table
// through its mapping; the copy in internal/thirdparty writes them with
// write(2)), while a store just opened maps only the pages its reads touch.
// The pages are the kernel's page cache, clean once badger has synced the
// table; badger has no option to map them otherwise. So the reclaimer tells
// the kernel the store is done with them (releaseTablePages): they leave the
// process's page tables but stay in the page cache, and a later read maps
// them again from there (a minor fault). Nothing is written or lost: the
// mappings are shared, so their contents are the file's.
//
// Only a mapping badger cannot unmap meanwhile is released: the pages of an
// unmapped range could by then belong to another mapping, whose contents
// releasing would lose. So releaseTablePages holds an iterator, which holds a
// reference to every table the store had when it was made, and releases the
// mappings of tables listed both before and after it was made: a table
// removed is never listed again, so those were present, and referenced, when
// it was made.

// heldTables calls fn with the IDs of tables db cannot close until fn
// returns. It lists tables with TableIDs (the patched badger in
// internal/thirdparty): badger's Tables reads every table's index through its
// mapping, which paged back in, at every release, the index pages the last
// release had dropped (half of the reclaimer's CPU at 100,000 pods).
func heldTables(db *badger.DB, fn func(held map[uint64]bool) error) error {
	before := make(map[uint64]bool)
	for _, id := range db.TableIDs() {
		before[id] = true
	}
	txn := db.NewTransaction(false)
	defer txn.Discard()
	// Without a prefix, an iterator references every table (badger's
	// levelHandler.appendIterators), until it is closed.
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	held := make(map[uint64]bool)
	for _, id := range db.TableIDs() {
		if before[id] {
			held[id] = true
		}
	}
	return fn(held)
}
