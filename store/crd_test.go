package store

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt"
)

const (
	crdKey    = "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"
	widgetKey = "/registry/example.com/widgets/default/w1"
	// gadgetKey holds the same body as a kind no CRD defines.
	gadgetKey = "/registry/example.org/gadgets/default/w1"
)

func widget(apiVersion, kind, ports string) string {
	return `{"apiVersion":"` + apiVersion + `","kind":"` + kind + `","metadata":{"name":"w1","namespace":"default"},` +
		`"spec":{"replicas":1,"ports":[` + ports + `]}}` + "\n"
}

func readCRD(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../crdt/kube/testdata/crd-widgets.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b)) + "\n"
}

// portNames returns the names of the ports of a widget's stored value.
func portNames(t *testing.T, s *Store, key string) []string {
	t.Helper()
	kv, ok := get(t, s, key, 0)
	if !ok {
		t.Fatalf("%s missing", key)
	}
	var obj struct {
		Spec struct {
			Ports []struct{ Name string }
		}
	}
	if err := json.Unmarshal(kv.Value, &obj); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range obj.Spec.Ports {
		names = append(names, p.Name)
	}
	return names
}

// A custom resource's list-map (x-kubernetes-list-type: map in its CRD) merges
// element by element: ports added concurrently at two sites both stay, where
// the same body of a kind no CRD defines keeps one side's whole (atomic) list.
func TestCustomResourceMergesByCRDSchema(t *testing.T) {
	a, b := openSite(t, "a", nil), openSite(t, "b", nil)
	put(t, a, crdKey, readCRD(t))
	http := `{"name":"http","port":80}`
	put(t, a, widgetKey, widget("example.com/v1", "Widget", http))
	put(t, a, gadgetKey, widget("example.org/v1", "Gadget", http))
	exchange(t, a, b)

	for _, k := range []struct{ key, av, kind string }{{widgetKey, "example.com/v1", "Widget"}, {gadgetKey, "example.org/v1", "Gadget"}} {
		put(t, a, k.key, widget(k.av, k.kind, http+`,{"name":"metrics","port":9090}`))
		put(t, b, k.key, widget(k.av, k.kind, http+`,{"name":"grpc","protocol":"UDP","port":9000}`))
	}
	exchange(t, a, b)
	mustEqual(t, a, b)
	for _, k := range []string{widgetKey, gadgetKey} {
		va, _ := get(t, a, k, 0)
		vb, _ := get(t, b, k, 0)
		if string(va.Value) != string(vb.Value) {
			t.Fatalf("%s differs:\n%s\n%s", k, va.Value, vb.Value)
		}
	}
	names := portNames(t, a, widgetKey)
	slices.Sort(names)
	if got := strings.Join(names, ","); got != "grpc,http,metrics" {
		t.Fatalf("widget ports = %s, want grpc,http,metrics (both sides' additions)", got)
	}
	if got := portNames(t, a, gadgetKey); len(got) != 2 {
		t.Fatalf("gadget ports = %v: an atomic list should keep one side's two ports", got)
	}
	if err := a.crs.Validate([]byte(widget("example.com/v1", "Widget", `{"port":1}`))); err == nil {
		t.Fatal("a port without its required name was accepted")
	}
}

// The CRDs stored are the merge units again after a restart, before any write.
func TestCRDsLoadedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	put(t, s, crdKey, readCRD(t))
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	if _, ok := s.crs.Object("example.com/v1", "Widget"); !ok {
		t.Fatal("Widget's schema not loaded at Open")
	}
	del(t, s, crdKey)
	if _, ok := s.crs.Object("example.com/v1", "Widget"); ok {
		t.Fatal("Widget's schema kept after its CRD's deletion")
	}
}

// A conflict the store's caller resolved is listed with the two keys'
// incarnations and its detail, after a restart too; a key that does not exist
// cannot lose one.
func TestRecordConflict(t *testing.T) {
	dir := t.TempDir()
	s := openReplicatedTest(t, dir)
	put(t, s, "/registry/services/specs/default/a", `{"a":1}`)
	put(t, s, "/registry/services/specs/default/b", `{"b":1}`)
	record := func(loser string) error {
		_, err := s.Update(context.Background(), func(tx *WriteTxn) error {
			return tx.RecordConflict(crdt.Allocation, []byte(loser), []byte("/registry/services/specs/default/a"), "ClusterIP 10.0.0.1")
		})
		return err
	}
	if err := record("/registry/services/specs/default/b"); err != nil {
		t.Fatal(err)
	}
	if err := record("/registry/services/specs/default/none"); err == nil {
		t.Fatal("a conflict lost by a missing key was recorded")
	}
	s.Close()
	s = openReplicatedTest(t, dir)
	defer s.Close()
	cs, err := s.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Kind != crdt.Allocation || string(cs[0].Key) != "/registry/services/specs/default/b" ||
		cs[0].Detail != "ClusterIP 10.0.0.1" || cs[0].Winner.Site != "test" || cs[0].Winner == cs[0].Loser || cs[0].Kind.String() != "allocation" {
		t.Fatalf("conflicts %+v", cs)
	}
}
