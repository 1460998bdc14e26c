package store

import (
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
)

// badgerOptions sizes badger from Config.MemoryBudget (B), which bounds what
// badger holds in memory:
//
//   - two memtables of B/8 each. A memtable is an arena in Go's heap plus a
//     write-ahead log of the same size mapped into memory, and flushing one
//     builds its level-0 table in a buffer of about twice its size;
//   - a block cache of B/4 (decompressed blocks: what reads of values not in
//     a memtable hit) and an index cache of B/16 (table indexes and bloom
//     filters).
//
// Small memtables flush often, and every level-0 table overlaps all of level 1
// (each batch writes revision records, documents and meta keys, spread over the
// whole key space), so compacting level 0 rewrites level 1 whole. Compacting
// level 0 only once five tables wait (badger's default; this store used 2)
// spreads that rewrite over five flushes, and a base level of five memtables
// keeps level 1 no larger than what one such compaction brings. Writes stall
// only at 20 waiting tables.
func badgerOptions(cfg Config) badger.Options {
	b := cfg.MemoryBudget
	opts := badger.DefaultOptions(cfg.Dir).
		WithInMemory(cfg.InMemory).
		WithSyncWrites(cfg.SyncWrites).
		WithLogger(badgerLogger{cfg.Logger}).
		// One committer writes; badger's conflict detection would only keep
		// every transaction's keys in memory for nothing.
		WithDetectConflicts(false).
		WithNumMemtables(2).
		WithMemTableSize(b / 8).
		// badger requires values kept in the LSM to fit a transaction (15% of a
		// memtable); larger ones go to the value log.
		WithValueThreshold(min(1<<20, b/64)).
		WithNumLevelZeroTables(5).
		WithNumLevelZeroTablesStall(20).
		WithBaseTableSize(max(2<<20, b/32)).
		WithBaseLevelSize(5 * b / 8).
		WithNumCompactors(2).
		WithBlockCacheSize(b / 4).
		WithIndexCacheSize(b / 16).
		// Only values above the threshold go to the value log, and its files
		// are mapped whole (twice their size): pages of that mapping read
		// while empty would count as resident memory for nothing.
		WithValueLogFileSize(16 << 20).
		WithMetricsEnabled(false)
	if cfg.InMemory {
		opts.Dir, opts.ValueDir = "", ""
	}
	return opts
}

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
