package store

import (
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// badgerOptions sizes badger from Config.MemoryBudget (B), which bounds what
// badger holds in memory:
//
//   - two memtables of B/16 each (memTableSize). A memtable is an arena in Go's
//     heap plus a write-ahead log of the same size, mapped but written with
//     pwrite(2), so its pages are not the process's until read at open;
//   - an index cache of B/16 (table indexes and bloom filters);
//   - the buffers tables are built in: badger pools eight table builders
//     (beside those building) and keeps each one's buffers for reuse, letting
//     one go only after two seconds without a build. A builder starts with a
//     buffer of twice the table size and doubles it while the table outgrows
//     it; so the largest table any builder makes sets the size of every pooled
//     one. With badger's defaults (snappy, which keeps a compressed copy of
//     each block, and tables doubling in size at each level) those buffers,
//     not the data, were most of a filled store's Go heap (150-235 MiB at
//     20,000 pods); with tables of B/64 but memtables of B/8, the flush of a
//     memtable grew the builders to 14-30 MiB each (190 of 263 MiB live heap
//     after 5,000 pods and 15,000 updates). Tables of one small size at every
//     level (tableSize) and no compression keep them at twice a table each (34
//     MiB live in the same run); a memtable's flush builds its table in a
//     builder of its own, sized for the memtable and not pooled (the patched
//     badger in internal/thirdparty), and compactions fill at most one builder
//     per CPU at once.
//
// Tables are not compressed, so there is no block cache: reads go to the
// tables' memory mappings, which the kernel pages in and out as it needs
// (badger's block cache holds decompressed blocks only, and missed 99% of
// reads of uncompressed tables). Disk space is the price (see the fill
// benchmark's bytes per object).
//
// Memtables flush often, and every level-0 table spans the whole key space
// (each batch writes revision records and meta keys on both sides of them,
// and a store with documents writes documents anywhere). The patched badger
// (internal/thirdparty) leaves the base level's tables that hold none of a
// level 0 compaction's keys as they are; a store without documents writes
// only revision records, which land past all before them, so compacting
// level 0 rewrites little but level 0 itself, and it is compacted at badger's
// default of five waiting tables: smaller compactions, more often, so the
// write rate does not dip for one large one. A store with documents (one of
// several sites) rewrites most of its base level each time, so there level 0
// is compacted once twenty tables wait, so that each such compaction brings
// much against what level 1 holds (5/8 of the budget) and rewrites little
// per byte it brings; writes stall only at 40 waiting tables. Measured at
// 5,000 pods and 15,000 updates with memtables of B/64, against five waiting
// tables and a level 1 of five memtables (three levels instead of two for the
// same data, each byte rewritten once more), this took 1,643 instead of
// 2,491-2,708 us of CPU per update; with memtables of B/16 (50,000 pods, one
// update each), 653 against 752 us with five waiting tables (the same bytes
// in level 0 as twenty of B/64).
func badgerOptions(cfg Config) badger.Options {
	b := cfg.MemoryBudget
	opts := badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		// A commit syncs the memtable's log, and the value log only when it
		// wrote to it: badger is the patched copy in internal/thirdparty.
		WithSyncWrites(cfg.SyncWrites).
		WithLogger(badgerLogger{cfg.Logger}).
		// One committer writes; badger's conflict detection would only keep
		// every transaction's keys in memory for nothing.
		WithDetectConflicts(false).
		WithNumMemtables(2).
		WithMemTableSize(memTableSize(b)).
		WithCompression(options.None).
		// badger requires values kept in the LSM to fit a transaction (15% of a
		// memtable) and to be at most 1 MiB; larger ones go to the value log.
		WithValueThreshold(min(memTableSize(b)/8, maxValueThreshold)).
		WithNumLevelZeroTables(levelZeroTables(cfg)).
		WithNumLevelZeroTablesStall(40).
		WithBaseTableSize(tableSize(b)).
		WithBlockSize(blockSize).
		WithBaseLevelSize(5 * b / 8).
		WithNumCompactors(2).
		WithBlockCacheSize(0).
		WithIndexCacheSize(b / 16).
		// Only values above the threshold go to the value log, and its files
		// are mapped whole (twice their size): pages of that mapping read
		// while empty would count as resident memory for nothing.
		WithValueLogFileSize(16 << 20).
		// Every block is checked against its checksum when read, so a damaged
		// table fails the read instead of serving what is left of it; Open
		// checks every table whole first (checkTables), since badger checks
		// nothing by default (a damaged index made a store look empty), and its
		// own check at open panics on a damaged data block.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithMetricsEnabled(false)
	// See tableSize.
	opts.TableSizeMultiplier = 1
	if cfg.InMemory {
		opts.Dir, opts.ValueDir = "", ""
	}
	return opts
}

// maxValueThreshold is the largest value badger keeps in its LSM tree.
const maxValueThreshold = 1 << 20

// memTableSize is the size of each of badger's two memtables for a memory
// budget of b: 1/16 of it, at least 1 MiB. A memtable also bounds one
// transaction (15% of it) and so a batch (commit.go's batchBytes): at 4 MiB, a
// transaction of 629 KB and a batch of 157 KB of requests, about 50 pod
// updates. With memtables of a table's size (1 MiB at the default budget) a
// batch held about 13, so 16 writers needed two commits, each synced, and the
// store flushed a memtable and created two files (its table and the next log)
// about 20 times a second while filling: 4 MiB measured 3,469-4,219 -> 5,063
// pods/s filled and 1,497-1,758 -> 2,053 updated (50,000 pods, one update
// each, one run of each tree; runs spread by 10-15 %), the memory after the
// updates unchanged.
func memTableSize(b int64) int64 { return max(1<<20, b/16) }

// tableSize is the size of every badger table, at every level, for a memory
// budget of b: 1/64 of it, at least 1 MiB (smaller tables only multiply the
// files and their indexes). Compactions build tables of this size; only a
// memtable's flush builds a larger one.
func tableSize(b int64) int64 {
	return max(1<<20, b/64)
}

// blockSize is the size of badger's table blocks (its default: 4 KiB). A
// block is allocated at that size in a table builder's buffer and, when an
// entry does not fit, again at twice it, the first copy left unused; with
// records of a few KB (a pod's document and revision records) that happened
// for most blocks at 4 KiB, and the flush of a memtable outgrew the builder's
// first buffer into a second one twice its size, which badger's pool of
// builders then kept (48 MiB of a 100 MiB heap under pod updates).
const blockSize = 16 << 10

// badgerLogger sends badger's logs to slog at matching levels.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.log.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (l badgerLogger) Warningf(f string, a ...any) {
	l.log.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (l badgerLogger) Infof(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...), "component", "badger")
}
func (l badgerLogger) Debugf(f string, a ...any) {
	l.log.Debug(fmt.Sprintf(f, a...), "component", "badger")
}

// hasPrefix reports whether txn holds any key under prefix.
func hasPrefix(txn *badger.Txn, prefix byte) bool {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
	defer it.Close()
	it.Rewind()
	return it.Valid()
}

// eachUnder calls fn with the key (its prefix byte included) and value of every
// entry under prefix, in key order, until fn returns an error, which it
// returns. fn may keep both: they are copies.
func eachUnder(txn *badger.Txn, prefix byte, fn func(key, value []byte) error) error {
	it := txn.NewIterator(iteratorPrefix(prefix))
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := fn(it.Item().KeyCopy(nil), v); err != nil {
			return err
		}
	}
	return nil
}

// levelZeroTables is how many level 0 tables wait before badger compacts
// them into its base level: five for a store alone, twenty for one of several
// sites (see badgerOptions).
func levelZeroTables(cfg Config) int {
	if cfg.Replicated {
		return 20
	}
	return 5
}
