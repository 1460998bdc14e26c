package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

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

	// Each conflict is recorded by the sites that saw it, with kind, both writes' sites and time.
	for _, s := range []*Store{a, b} {
		checkConflicts(t, s, crdt.Validation, 1)
	}
}

func TestConcurrentCreateConflict(t *testing.T) {
	a, b := openSite(t, "a", nil), openSite(t, "b", nil)
	put(t, a, "k", `{"from":"a"}`)
	put(t, b, "k", `{"from":"b"}`)
	put(t, a, "j", `{"from":"a"}`)
	put(t, b, "j", `{"from":"b"}`)
	exchange(t, a, b)
	mustEqual(t, a, b)
	checkConflicts(t, b, crdt.ConcurrentCreate, 2)

	// Bounded: the latest MaxConflicts are kept, across a restart.
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site, cfg.Replicated, cfg.MaxConflicts = dir, "c", true, 1
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, a, c)
	if cs, err := c.Conflicts(); err != nil || len(cs) != 1 || string(cs[0].Key) != "j" {
		t.Fatalf("conflicts kept with MaxConflicts 1: %+v, %v", cs, err)
	}
	c.Close()
	if c, err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cs, err := c.Conflicts(); err != nil || len(cs) != 1 || c.conflictSeq != 2 {
		t.Fatalf("after reopen: conflicts %+v (%v), sequence %d, want the latest and 2", cs, err, c.conflictSeq)
	}
}

// checkConflicts asserts s recorded n conflicts of kind between sites a and b,
// and counted them in the metric.
func checkConflicts(t *testing.T, s *Store, kind crdt.ConflictKind, n int) {
	t.Helper()
	cs, err := s.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != n {
		t.Fatalf("site %s recorded %d conflicts, want %d: %+v", s.Site(), len(cs), n, cs)
	}
	for _, c := range cs {
		sites := c.Winner.Site + c.Loser.Site
		if c.Kind != kind || (sites != "ab" && sites != "ba") || c.Time.IsZero() || len(c.Key) == 0 {
			t.Fatalf("site %s conflict %+v: want %s between a and b, with time", s.Site(), c, kind)
		}
	}
	if got := testutil.ToFloat64(s.metrics.conflicts.WithLabelValues(kind.String())); got != float64(n) {
		t.Fatalf("site %s rhizome_conflicts_total{kind=%q} = %v, want %d", s.Site(), kind, got, n)
	}
}

func TestOldConflictRecordsStillListed(t *testing.T) {
	s := openSite(t, "a", nil)
	old := crdt.Change{Op: crdt.OpCreate, Inc: crdt.Stamp{Counter: 3, Site: "b"}, Epoch: crdt.Stamp{Counter: 3, Site: "a"}}.Encode()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("xk"), old) }); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Conflicts()
	if err != nil || len(cs) != 1 || string(cs[0].Key) != "k" || cs[0].Kind != crdt.ConcurrentCreate || cs[0].Winner.Site != "b" || cs[0].Loser.Site != "a" {
		t.Fatalf("old record listed as %+v, %v", cs, err)
	}
}

func kubeObj(kind, ns, name string) string {
	if ns == "" {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":%q,"metadata":{"name":%q}}`, kind, name)
	}
	return fmt.Sprintf(`{"apiVersion":"v1","kind":%q,"metadata":{"name":%q,"namespace":%q}}`, kind, name, ns)
}

func del(t *testing.T, s *Store, k string) {
	t.Helper()
	if _, err := s.Update(context.Background(), func(tx *WriteTxn) error { _, err := tx.DeleteRange([]byte(k), nil); return err }); err != nil {
		t.Fatal(err)
	}
}

const (
	nsKey      = "/registry/namespaces/ns"
	cmKey      = "/registry/configmaps/ns/cm"
	otherKey   = "/registry/configmaps/other/cm"
	clusterKey = "/registry/example.com/ns/thing" // cluster-scoped: its resource is named ns
	crKey      = "/registry/example.com/widgets/ns/w"
)

// TestNamespaceDeletionBeatsConcurrentCreates: a namespace deleted at one site
// while an object is created in it at another leaves neither, whichever way the
// changes travel first; cluster-scoped keys and other namespaces stay.
func TestNamespaceDeletionBeatsConcurrentCreates(t *testing.T) {
	for _, tc := range []struct{ first, encoding string }{{"a", "json"}, {"b", "json"}, {"a", "protobuf"}, {"b", "protobuf"}} {
		first := tc.first
		t.Run("first to "+first+" "+tc.encoding, func(t *testing.T) {
			cm := kubeObj("ConfigMap", "ns", "cm")
			if tc.encoding == "protobuf" { // kube-apiserver's default: served as written
				cm = string(protobufConfigMap(t, "ns", map[string]string{"k": "v"}))
			}
			a, b := openSite(t, "a", nil), openSite(t, "b", nil)
			put(t, a, nsKey, kubeObj("Namespace", "", "ns"))
			put(t, a, "/registry/namespaces/other", kubeObj("Namespace", "", "other"))
			exchange(t, a, b)
			del(t, a, nsKey)
			put(t, b, cmKey, cm)
			put(t, b, clusterKey, kubeObj("Thing", "", "thing"))
			put(t, b, crKey, kubeObj("Widget", "ns", "w"))
			put(t, b, otherKey, kubeObj("ConfigMap", "other", "cm"))
			if first == "a" {
				exchange(t, b, a) // a merges b's create into a namespace it deleted
			} else {
				exchange(t, a, b) // b takes a's namespace delete while it holds the ConfigMap
			}
			mustEqual(t, a, b)
			for _, s := range []*Store{a, b} {
				for k, want := range map[string]bool{nsKey: false, cmKey: false, crKey: false, clusterKey: true, otherKey: true} {
					if _, ok := get(t, s, k, 0); ok != want {
						t.Fatalf("site %s: %s present %v, want %v", s.Site(), k, ok, want)
					}
				}
			}
			// The deleting site's watchers saw the ConfigMap go at its own revision.
			s := map[string]*Store{"a": a, "b": b}[first]
			vs := s.idx.get([]byte(cmKey)).versions
			last := vs[len(vs)-1]
			if !last.tomb || len(vs) < 2 || vs[len(vs)-2].rev.main == last.rev.main {
				t.Fatalf("site %s: ConfigMap history %+v: want a delete at a revision of its own", first, vs)
			}
		})
	}
}

// TestNamespaceNormalFlows: objects created after their namespace, and deleted
// before it as the namespace controller does, lose nothing extra anywhere.
func TestNamespaceNormalFlows(t *testing.T) {
	a, b := openSite(t, "a", nil), openSite(t, "b", nil)
	put(t, a, nsKey, kubeObj("Namespace", "", "ns"))
	put(t, a, cmKey, kubeObj("ConfigMap", "ns", "cm"))
	put(t, a, clusterKey, kubeObj("Thing", "", "thing"))
	exchange(t, a, b)
	put(t, b, "/registry/secrets/ns/s", kubeObj("Secret", "ns", "s"))
	put(t, b, cmKey, kubeObj("ConfigMap", "ns", "cm")+" ")
	exchange(t, a, b)
	for _, s := range []*Store{a, b} {
		for _, k := range []string{nsKey, cmKey, "/registry/secrets/ns/s", clusterKey} {
			if _, ok := get(t, s, k, 0); !ok {
				t.Fatalf("site %s lost %s", s.Site(), k)
			}
		}
	}
	del(t, b, cmKey)
	del(t, b, "/registry/secrets/ns/s")
	del(t, b, nsKey)
	revA := a.Rev()
	exchange(t, a, b)
	mustEqual(t, a, b)
	if _, ok := get(t, a, clusterKey, 0); !ok {
		t.Fatal("cluster-scoped key deleted")
	}
	if a.Rev() != revA+3 || a.VersionVector()[a.Origin()] != 3 {
		t.Fatalf("site a at revision %d (from %d), own changes %d: the namespace rule acted in a normal flow", a.Rev(), revA, a.VersionVector()[a.Origin()])
	}
}

// TestReplacedIncarnationEvents checks what a watcher of the site whose object
// loses to a concurrent create sees: its object deleted (prev_kv: the loser),
// then the winner created at the next revision (create_revision ==
// mod_revision, no prev_kv), never an update from one object to another; and
// the winning site sees nothing, its object being unchanged.
func TestReplacedIncarnationEvents(t *testing.T) {
	a, b := openSite(t, "a", nil), openSite(t, "b", nil)
	put(t, a, "k", `{"from":"a"}`)
	put(t, b, "k", `{"from":"b"}`)
	revA, revB := a.Rev(), b.Rev()
	exchange(t, a, b)
	mustEqual(t, a, b)
	kv, _ := get(t, a, "k", 0)
	loser, winner, from := a, b, revA
	if string(kv.Value) == `{"from":"a"}` {
		loser, winner, from = b, a, revB
	}
	evs, err := loser.Events(from+1, loser.Rev(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Type != EventDelete || evs[1].Type != EventPut {
		t.Fatalf("loser's events %+v, want a delete then a put", evs)
	}
	del, cre := evs[0], evs[1]
	if del.PrevKV == nil || string(del.PrevKV.Value) == string(kv.Value) {
		t.Errorf("delete's prev_kv %+v, want the losing object", del.PrevKV)
	}
	if cre.KV.ModRevision != del.KV.ModRevision+1 || cre.KV.CreateRevision != cre.KV.ModRevision ||
		cre.KV.Version != 1 || cre.PrevKV != nil || string(cre.KV.Value) != string(kv.Value) {
		t.Errorf("create event %+v after delete at %d: want the winner created at the next revision",
			cre, del.KV.ModRevision)
	}
	wrev := map[*Store]int64{a: revA, b: revB}[winner]
	if evs, err := winner.Events(wrev+1, winner.Rev(), 100); err != nil || len(evs) != 0 {
		t.Errorf("winner's events %+v (%v), want none", evs, err)
	}
}
