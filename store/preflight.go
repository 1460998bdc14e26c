package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrCorruptData is returned by Open when a data file fails its checksums: the
// store refuses to start rather than serve what is left of it.
var ErrCorruptData = errors.New("store: corrupt data file")

// checkTables verifies every table badger's manifest lists, the index and
// every block against their checksums, before badger.Open sees them. badger
// (v4.9.6) verifies them itself in goroutines of Open, but a damaged data
// block makes it panic there (Table.VerifyChecksum reads the block it failed
// to read), which ends the process; and a table whose index fails its checksum
// it drops with a log line, serving the store without it. Here both are an
// error naming the file. Panics are recovered in the goroutine that verifies.
//
// A manifest that cannot be read is left to badger.Open, which reports it.
// The store opens badger with block checksums verified on read only
// (badgerOptions), so the tables are read whole once at open, as before.
func checkTables(opts badger.Options) error {
	if opts.InMemory {
		return nil
	}
	f, err := os.Open(filepath.Join(opts.Dir, badger.ManifestFilename))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return fmt.Errorf("store: open manifest: %w", err)
	}
	mf, _, err := badger.ReplayManifestFile(f, opts.ExternalMagicVersion, opts)
	f.Close()
	if err != nil {
		return nil // badger.Open reports it
	}
	ids := make([]uint64, 0, len(mf.Tables))
	for id := range mf.Tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return verifyAll(ids, func(id uint64) error { return checkTable(opts, id, mf.Tables[id]) })
}

// verifyAll runs check on every id, on up to GOMAXPROCS goroutines, and
// returns the error of the lowest id that failed.
func verifyAll(ids []uint64, check func(uint64) error) error {
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = check(ids[i])
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstError(errs)
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkTable opens one table read-only, verifies its index and every block
// against their checksums, and closes it.
func checkTable(opts badger.Options, id uint64, tm badger.TableManifest) (err error) {
	name := filepath.Base(table.NewFilename(id, opts.Dir))
	if tm.KeyID != 0 {
		return fmt.Errorf("store: data file %s is encrypted (key %d): this store never encrypts", name, tm.KeyID)
	}
	mf, err := z.OpenMmapFile(table.NewFilename(id, opts.Dir), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("store: open data file %s: %w", name, err)
	}
	// OpenTable closes mf only when it cannot stat it (a second Close then
	// fails in msync, before unmapping anything).
	defer mf.Close(-1)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w %s: a damaged block (badger: %v)", ErrCorruptData, name, p)
		}
	}()
	// No verification while opening: VerifyChecksum below checks every block
	// itself, and its own error path is the one that panics.
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly:           true,
		ChkMode:            options.NoVerification,
		Compression:        tm.Compression,
		BlockSize:          opts.BlockSize,
		BloomFalsePositive: opts.BloomFalsePositive,
		TableSize:          uint64(opts.BaseTableSize),
	})
	if err == nil {
		err = t.VerifyChecksum()
	}
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrCorruptData, name, err)
	}
	return nil
}
