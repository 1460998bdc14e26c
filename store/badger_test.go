package store

import (
	"bytes"
	"errors"
	"expvar"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestOpenAnyBudget: a store opens, takes a large value and reopens with it
// at every memory budget the flag's help names and beyond (badger caps the
// values its LSM keeps at 1 MiB; a budget above 128 MiB once asked for more).
func TestOpenAnyBudget(t *testing.T) {
	for _, budget := range []int64{MinMemoryBudget, 32 << 20, 64 << 20, 256 << 20, 1 << 30} {
		t.Run(fmt.Sprint(budget>>20, "MiB"), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Dir, cfg.Site, cfg.MemoryBudget = t.TempDir(), "a", budget
			s, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			big := strings.Repeat("v", 2<<20)
			rev := put(t, s, "k", big)
			s.Close()
			if s, err = Open(cfg); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if kv, _ := get(t, s, "k", 0); string(kv.Value) != big || kv.ModRevision != rev {
				t.Fatalf("after reopening: %d bytes at %d, want %d at %d", len(kv.Value), kv.ModRevision, len(big), rev)
			}
		})
	}
}

// TestCompactionsKeepTablesNarrow: no table overlaps ten or more tables of
// the level below it, and what a store wrote reads back whole, at its
// latest and at an earlier revision, before and after a reopen. Every batch
// writes revision records and the store's meta keys on both sides of them;
// upstream badger checked a table's overlap only every 5,000 keys, so the
// table holding the low meta keys and the newest records spanned the whole
// level below it, and each of its compactions rewrote that level.
func TestCompactionsKeepTablesNarrow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.MemoryBudget, cfg.SyncWrites = t.TempDir(), "a", MinMemoryBudget, false
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	const keys, passes = 3000, 3
	value := func(k, pass int) string { return fmt.Sprintf("%05d/%d/%s", k, pass, strings.Repeat("v", 2000)) }
	firstRevs := make([]int64, keys)
	worst := 0 // the widest overlap seen, checked as the store fills
	for pass := range passes {
		for k := range keys {
			rev := put(t, s, fmt.Sprintf("/registry/pods/k%05d", k), value(k, pass))
			if pass == 0 {
				firstRevs[k] = rev
			}
			if k%100 == 0 {
				worst = max(worst, widestOverlap(s.db))
			}
		}
	}
	if worst >= 10 {
		t.Errorf("a table overlapped %d tables of the level below it", worst)
	}
	check := func() {
		t.Helper()
		for k := range keys {
			key := fmt.Sprintf("/registry/pods/k%05d", k)
			if kv, ok := get(t, s, key, 0); !ok || string(kv.Value) != value(k, passes-1) {
				t.Fatalf("%s: %.20q, want %.20q", key, kv.Value, value(k, passes-1))
			}
			if k%100 == 0 {
				if kv, ok := get(t, s, key, firstRevs[k]); !ok || string(kv.Value) != value(k, 0) {
					t.Fatalf("%s at %d: %.20q, want %.20q", key, firstRevs[k], kv.Value, value(k, 0))
				}
			}
		}
	}
	check()
	s.Close()
	if s, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	check()
}

// TestLevelZeroCompactionKeepsUntouchedTables: a level 0 compaction leaves
// the tables of the level it compacts into that hold none of its keys as
// they are (the patched badger's keepUntouched), and every key reads back.
// Batches are written as a store's are (revision records in order, meta keys
// on both sides), into badger configured as a store's but with a base level
// so large that level 0 compacts straight into the last level, which no
// compaction moves tables out of: upstream rewrote every table there each
// time, since each level 0 table spans the whole key space.
func TestLevelZeroCompactionKeepsUntouchedTables(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.MemoryBudget, cfg.SyncWrites = t.TempDir(), MinMemoryBudget, false
	opts := badgerOptions(cfg)
	opts.BaseLevelSize = 1 << 40
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	value := func(rev int) []byte { return fmt.Appendf(nil, "%08d/%s", rev, strings.Repeat("v", 2000)) }
	rev := 0
	write := func(n int) { // in batches of 20 records
		t.Helper()
		for range n / 20 {
			err := db.Update(func(txn *badger.Txn) error {
				for range 20 {
					rev++
					if err := txn.Set(revKey(int64(rev), 0), value(rev)); err != nil {
						return err
					}
				}
				return errors.Join(txn.Set(metaRev, int64Bytes(int64(rev))), txn.Set(vvKey("a"), int64Bytes(int64(rev))))
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	write(5000) // ~10 MB: ten memtables
	before := settledTables(t, db, levelZeroTables(cfg))
	write(3000) // enough for one more compaction of level 0
	// What the last level holds once that compaction is done: tables from
	// before it, kept, and tables it built.
	lastLevel := opts.MaxLevels - 1
	deadline := time.Now().Add(30 * time.Second)
	for {
		kept, built := 0, 0
		for id, l := range settledTables(t, db, levelZeroTables(cfg)) {
			switch {
			case l != lastLevel:
			case before[id] == l:
				kept++
			default:
				built++
			}
		}
		if built > 0 {
			if kept == 0 {
				t.Errorf("the last level after a level 0 compaction: %d tables built, none kept from before it", built)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("level 0 was not compacted again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = db.View(func(txn *badger.Txn) error {
		for r := 1; r <= rev; r++ {
			item, err := txn.Get(revKey(int64(r), 0))
			if err != nil {
				return fmt.Errorf("revision %d: %w", r, err)
			}
			if v, err := item.ValueCopy(nil); err != nil || !bytes.Equal(v, value(r)) {
				return fmt.Errorf("revision %d: %.20q, %v", r, v, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// settledTables waits until badger has compacted level 0 below trigger
// tables and returns the level of every table by id.
func settledTables(t *testing.T, db *badger.DB, trigger int) map[uint64]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		levels, l0 := map[uint64]int{}, 0
		for _, ti := range db.Tables() {
			levels[ti.ID] = ti.Level
			if ti.Level == 0 {
				l0++
			}
		}
		if l0 < trigger {
			return levels
		}
		if time.Now().After(deadline) {
			t.Fatalf("level 0 still holds %d tables", l0)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// widestOverlap is the most tables of the level below that one table above
// level 0 overlaps.
func widestOverlap(db *badger.DB) int {
	tables := db.Tables()
	worst := 0
	for _, a := range tables {
		n := 0
		for _, b := range tables {
			if a.Level > 0 && b.Level == a.Level+1 && bytes.Compare(a.Left, b.Right) <= 0 && bytes.Compare(b.Left, a.Right) <= 0 {
				n++
			}
		}
		worst = max(worst, n)
	}
	return worst
}

// TestHotKeyReadsNoOlderTables: a key written again and again has versions
// in the memtable and in many level 0 tables; reading its newest version
// seeks it in no table (badger-get-max-version.patch; upstream sought it,
// reading a block and checking its checksum, in every table holding an older
// version), and every read, of any version still kept, returns what was
// written then.
func TestHotKeyReadsNoOlderTables(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.MemoryBudget, cfg.SyncWrites = t.TempDir(), MinMemoryBudget, false
	opts := badgerOptions(cfg)
	opts.NumLevelZeroTables, opts.NumLevelZeroTablesStall = 50, 60 // keep them in level 0
	opts.MetricsEnabled = true                                     // for lsmSeeks
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hot := []byte("hot")
	value := func(i int) []byte { return fmt.Appendf(nil, "%08d", i) }
	type snapshot struct {
		txn *badger.Txn
		i   int // the last hot write it sees
	}
	var snapshots []snapshot // read views opened along the way
	defer func() {
		for _, s := range snapshots {
			s.txn.Discard()
		}
	}()
	filler := []byte(strings.Repeat("f", 4000))
	for i := range 3000 {
		err := db.Update(func(txn *badger.Txn) error {
			return errors.Join(txn.Set(hot, value(i)), txn.Set(fmt.Appendf(nil, "cold/%08d", i), filler))
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%97 == 0 {
			snapshots = append(snapshots, snapshot{db.NewTransaction(false), i})
		}
	}
	if n := len(db.Tables()); n < 5 {
		t.Fatalf("%d tables: the hot key's versions must be spread over several", n)
	}
	// Later commits of other keys: a read's timestamp past the hot key's
	// version, as a store's reads are (badger stops at a version equal to
	// the read's timestamp).
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("other"), filler) }); err != nil {
		t.Fatal(err)
	}
	seeks := lsmSeeks(t)
	for range 100 {
		if err := db.View(func(txn *badger.Txn) error { return checkValue(txn, hot, value(2999)) }); err != nil {
			t.Fatal(err)
		}
	}
	if n := lsmSeeks(t) - seeks; n > 0 {
		t.Errorf("100 reads of a key's newest version sought it in tables %d times, want none", n)
	}
	for _, s := range snapshots { // older versions, most in tables
		if err := checkValue(s.txn, hot, value(s.i)); err != nil {
			t.Fatalf("a view opened after write %d: %v", s.i, err)
		}
	}
}

// lsmSeeks returns how many times badger has sought a key in a table for a
// read (each reads a block of it), from its metrics (process-wide, kept only
// by databases opened with MetricsEnabled).
func lsmSeeks(t *testing.T) (n int64) {
	m, ok := expvar.Get("badger_get_num_lsm").(*expvar.Map)
	if !ok {
		t.Fatal("badger's metric of table seeks is gone")
	}
	m.Do(func(kv expvar.KeyValue) {
		if v, ok := kv.Value.(*expvar.Int); ok {
			n += v.Value()
		}
	})
	return n
}

// checkValue reads key through txn and checks it holds want.
func checkValue(txn *badger.Txn, key, want []byte) error {
	item, err := txn.Get(key)
	if err != nil {
		return err
	}
	if v, err := item.ValueCopy(nil); err != nil || !bytes.Equal(v, want) {
		return fmt.Errorf("%q holds %q (%v), want %q", key, v, err, want)
	}
	return nil
}
