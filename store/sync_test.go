package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/crdt"
)

// openSite opens an in-memory replicated store named site.
func openSite(t *testing.T, site string, v crdt.Validator) *Store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.InMemory, cfg.Site, cfg.Replicated, cfg.Validator = true, site, true, v
	cfg.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange ships every change each store lacks from the others until none moves,
// as sync/peer's anti-entropy does.
func exchange(t *testing.T, stores ...*Store) {
	t.Helper()
	for moved := true; moved; {
		moved = false
		for _, from := range stores {
			for _, to := range stores {
				if from == to {
					continue
				}
				have := to.VersionVector()
				for origin, seq := range from.VersionVector() {
					if seq <= have[origin] {
						continue
					}
					cs, err := from.Changes(origin, have[origin], 1000)
					if err != nil {
						t.Fatal(err)
					}
					n, err := to.ApplyRemote(context.Background(), cs)
					if err != nil {
						t.Fatal(err)
					}
					moved = moved || n > 0
				}
			}
		}
	}
}

func mustEqual(t *testing.T, a, b *Store) {
	t.Helper()
	da, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if da != db {
		t.Fatalf("stores differ after exchange")
	}
}

// notBoth rejects objects setting both "a" and "b", as Kubernetes rejects a
// Deployment with maxSurge and maxUnavailable both 0.
func notBoth(v []byte) error {
	var m map[string]any
	if json.Unmarshal(v, &m) == nil && m["a"] != nil && m["b"] != nil {
		return errors.New("a and b are exclusive")
	}
	return nil
}

func TestValidatorOnMerge(t *testing.T) {
	a, b := openSite(t, "a", notBoth), openSite(t, "b", notBoth)
	put(t, a, "k", `{"x":1}`)
	exchange(t, a, b)
	put(t, a, "k", `{"x":1,"a":1}`)
	put(t, b, "k", `{"x":1,"b":1}`)
	exchange(t, a, b)
	mustEqual(t, a, b)
	for _, s := range []*Store{a, b} {
		kv, ok := get(t, s, "k", 0)
		if !ok || notBoth(kv.Value) != nil || !bytes.Contains(kv.Value, []byte(`"x":1`)) {
			t.Fatalf("merged value %s: want one side's whole object", kv.Value)
		}
	}
}
