package crdt

import (
	"os"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

func widgetJSON(ports string) string {
	return `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"default"},` +
		`"spec":{"ports":[` + ports + `]}}`
}

// A replica that learns a CRD after receiving one of its objects (and one that
// decodes the object from storage meanwhile) merges with a replica that knew it
// all along: the writer's shipped body decides the fields, and the list-map's
// concurrently added elements both stay.
func TestCustomResourceSchemaLearnedLate(t *testing.T) {
	crd, err := os.ReadFile("kube/testdata/crd-widgets.json")
	if err != nil {
		t.Fatal(err)
	}
	known, late := kube.NewCustomResources(), kube.NewCustomResources()
	if _, _, err := known.Put(crd); err != nil {
		t.Fatal(err)
	}
	a, b := &replica{site: "a"}, &replica{site: "b"}
	a.doc.SetSchemas(known.Object)
	b.doc.SetSchemas(late.Object)
	http := `{"name":"http","port":80}`
	a.put(t, widgetJSON(http))
	b.receive(t, a)
	a.changes = nil
	d, err := DecodeDoc(b.doc.Encode(), late.Object)
	if err != nil {
		t.Fatal(err)
	}
	b.doc = *d
	if _, _, err := late.Put(crd); err != nil {
		t.Fatal(err)
	}
	a.put(t, widgetJSON(http+`,{"name":"metrics","port":9090}`))
	b.put(t, widgetJSON(http+`,{"name":"grpc","port":9000}`))
	got := exchange(t, a, b)
	for _, name := range []string{"http", "metrics", "grpc"} {
		if !strings.Contains(got, `"name":"`+name+`"`) {
			t.Fatalf("merged %s\nlacks port %s", got, name)
		}
	}
}
