package store

import (
	"fmt"
	"strings"
	"testing"
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
