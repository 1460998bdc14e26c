package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkApplyRemote merges another site's Puts of new keys (256-byte
// values, as the sites benchmark's catch-up after a cut) in batches of 500,
// as sync/peer's answers carry them (its default MaxBatch), and reports the
// CPU per change merged.
//
//	go test -run '^$' -bench ApplyRemote -benchtime 10000x ./store/
func BenchmarkApplyRemote(b *testing.B) {
	ctx := context.Background()
	src, dst := benchStore(b, "src"), benchStore(b, "dst")
	value := strings.Repeat("v", 256)
	for i := 0; i < b.N; i += 100 {
		if _, err := src.Update(ctx, func(tx *WriteTxn) error {
			for j := i; j < min(i+100, b.N); j++ {
				if err := tx.Put(fmt.Appendf(nil, "/bench/key-%08d", j), []byte(value), 0); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	changes, err := src.Changes(src.Origin(), 0, b.N)
	if err != nil || len(changes) != b.N {
		b.Fatalf("%d changes (%v), want %d", len(changes), err, b.N)
	}
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < len(changes); i += 500 {
		if _, err := dst.ApplyRemote(ctx, changes[i:min(i+500, len(changes))]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/change")
}

func benchStore(b *testing.B, site string) *Store {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.Replicated = b.TempDir(), site, true
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
