package crdt

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

func TestRoundTripBytes(t *testing.T) {
	cases := []struct {
		name  string
		value string
		kind  Kind
	}{
		{"object", `{"a":1,"b":"x"}`, Document},
		{"nested", `{"metadata":{"name":"n","labels":{"app":"web"}},"spec":{"replicas":3}}`, Document},
		{"order kept", `{"z":1,"a":2,"m":{"y":1,"b":2}}`, Document},
		{"empty object", `{}`, Document},
		{"empty members", `{"a":{},"b":[],"c":null,"d":""}`, Document},
		{"unicode", `{"é":"\u00e9 ü 日本","esc":"a\"b\\c\/d","slash/key":1,"tilde~key":{"x~1":2}}`, Document},
		{"big numbers", `{"n":123456789012345678901234567890,"f":1.50,"e":-1e400,"z":0}`, Document},
		{"arrays", `{"a":[1, 2,{"x": [ ]}],"b":[{"c":{}}]}`, Document},
		{"bools", `{"t":true,"f":false}`, Document},
		{"trailing newline", "{\"kind\":\"Pod\",\"metadata\":{}}\n", Document},
		{"two newlines are opaque", "{\"a\":1}\n\n", Register},
		{"spaces are opaque", `{"a": 1}`, Register},
		{"duplicate names are opaque", `{"a":1,"a":2}`, Register},
		{"array is opaque", `[1,2]`, Register},
		{"binary", "\x00\xffk8s\x00proto", Register},
		{"empty", "", Register},
		{"invalid json", `{"a":`, Register},
		{"kube list-map and set", `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d","finalizers":["b","a"],"ownerReferences":[{"uid":"u2","name":"x"},{"uid":"u1"}]},"spec":{"template":{"spec":{"containers":[{"name":"z","ports":[{"containerPort":80},{"containerPort":80,"protocol":"UDP"}]},{"name":"a","args":["x", "y"]}]}}},"status":{"replicas":1}}` + "\n", Document},
		{"kube duplicate keys stay one leaf", `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"c"},{"name":"c"}],"tolerations":[]},"metadata":{"finalizers":["a","a"]}}`, Document},
		{"kube spaces in a list-map", `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[ {"name":"c"}],"volumes":[{"name":"v", "x":1}]}}`, Document},
		{"kube atomic object with spaces", `{"apiVersion":"v1","kind":"Pod","status":{ "phase" : "Running" }}`, Document},
		{"kube spaces in a granular object are opaque", `{"apiVersion":"v1","kind":"Pod","spec":{ "nodeName":"n"}}`, Register},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d Doc
			if _, ok, err := d.Put([]byte(tc.value), Stamp{1, "a"}); err != nil || !ok {
				t.Fatalf("put: ok=%v err=%v", ok, err)
			}
			if d.Kind() != tc.kind {
				t.Fatalf("kind %d, want %d", d.Kind(), tc.kind)
			}
			got, _ := d.Value()
			if string(got) != tc.value {
				t.Fatalf("value %q, want %q", got, tc.value)
			}
			if tc.kind == Document {
				if m := materialize(d.fields, nil); string(m) != tc.value {
					t.Fatalf("materialize %q, want %q", m, tc.value)
				}
			}
			d2, err := DecodeDoc(d.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if v2, _ := d2.Value(); string(v2) != tc.value || d2.Digest() != d.Digest() {
				t.Fatalf("decoded value %q", v2)
			}
		})
	}
}

// replica is a site's copy of one key plus the changes it made.
type replica struct {
	site    string
	clock   uint64
	doc     Doc
	changes []Change
}

func (r *replica) stamp() Stamp { r.clock++; return Stamp{r.clock, r.site} }

func (r *replica) put(t *testing.T, v string) {
	t.Helper()
	c, ok, err := r.doc.Put([]byte(v), r.stamp())
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		r.changes = append(r.changes, c)
	}
}

func (r *replica) del(t *testing.T) {
	t.Helper()
	c, ok, err := r.doc.Delete()
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		r.changes = append(r.changes, c)
	}
}

// receive applies another replica's changes, as sync would (in causal order).
func (r *replica) receive(t *testing.T, from *replica) {
	t.Helper()
	for _, c := range from.changes {
		if _, err := r.doc.Apply(c); err != nil {
			t.Fatal(err)
		}
		if c.Inc.Counter > r.clock {
			r.clock = c.Inc.Counter
		}
		if c.Epoch.Counter > r.clock {
			r.clock = c.Epoch.Counter
		}
	}
	r.changes = append(r.changes, from.changes...)
}

func value(d *Doc) string {
	v, ok := d.Value()
	if !ok {
		return "<absent>"
	}
	return string(v)
}

func TestMergeRules(t *testing.T) {
	t.Run("concurrent field edits both survive", func(t *testing.T) {
		a, b := &replica{site: "a"}, &replica{site: "b"}
		a.put(t, `{"metadata":{"name":"p"},"spec":{"replicas":1},"status":{"ready":0}}`)
		b.receive(t, a)
		a.changes, b.changes = nil, nil
		a.put(t, `{"metadata":{"name":"p","labels":{"x":"1"}},"spec":{"replicas":3},"status":{"ready":0}}`)
		b.put(t, `{"metadata":{"name":"p","annotations":{"y":"2"}},"spec":{"replicas":1},"status":{"ready":1}}`)
		a.receive(t, b)
		b.receive(t, a)
		// Both member lists of metadata were edited concurrently: one wins (a's, by
		// stamp) and the member it lacks follows it.
		want := `{"metadata":{"name":"p","labels":{"x":"1"},"annotations":{"y":"2"}},"spec":{"replicas":3},"status":{"ready":1}}`
		if value(&a.doc) != value(&b.doc) || a.doc.Digest() != b.doc.Digest() {
			t.Fatalf("diverged:\n%s\n%s", value(&a.doc), value(&b.doc))
		}
		if value(&a.doc) != want {
			t.Fatalf("merged %s, want %s", value(&a.doc), want)
		}
	})
	t.Run("concurrent creates: one incarnation wins whole", func(t *testing.T) {
		a, b := &replica{site: "a"}, &replica{site: "b"}
		a.put(t, `{"from":"a","x":1}`)
		b.put(t, `{"from":"b","y":2}`)
		a.receive(t, b)
		b.receive(t, a)
		if value(&a.doc) != `{"from":"b","y":2}` || value(&b.doc) != value(&a.doc) {
			t.Fatalf("got %s / %s", value(&a.doc), value(&b.doc))
		}
		if len(a.doc.Conflicts()) != 1 || len(b.doc.Conflicts()) != 1 {
			t.Fatalf("conflicts a=%v b=%v", a.doc.Conflicts(), b.doc.Conflicts())
		}
	})
	t.Run("delete beats concurrent update", func(t *testing.T) {
		a, b := &replica{site: "a"}, &replica{site: "b"}
		a.put(t, `{"v":1}`)
		b.receive(t, a)
		a.changes, b.changes = nil, nil
		a.del(t)
		b.put(t, `{"v":2}`)
		b.put(t, "opaque now")
		a.receive(t, b)
		b.receive(t, a)
		if value(&a.doc) != "<absent>" || value(&b.doc) != "<absent>" {
			t.Fatalf("got %s / %s", value(&a.doc), value(&b.doc))
		}
	})
	t.Run("create after delete stands", func(t *testing.T) {
		a, b := &replica{site: "a"}, &replica{site: "b"}
		a.put(t, `{"v":1}`)
		a.del(t)
		a.put(t, `{"v":3}`)
		b.receive(t, a)
		if value(&b.doc) != `{"v":3}` {
			t.Fatalf("got %s", value(&b.doc))
		}
	})
}

// TestConvergenceAnyOrder applies random concurrent histories in random orders that
// respect each site's own order, and checks every replica ends identical.
func TestConvergenceAnyOrder(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			base := &replica{site: "base"}
			base.put(t, `{"a":{"b":1},"c":[1],"d":"x"}`)
			sites := []*replica{{site: "s1"}, {site: "s2"}, {site: "s3"}}
			for _, s := range sites {
				s.receive(t, base)
				s.changes = nil
			}
			values := []string{`{"a":{"b":2},"c":[1],"d":"x"}`, `{"a":{"e":1},"d":"y"}`, `{"n":{"m":{}}}`, `{"a":{"b":1},"c":[2,3]}`, "raw", `{"d":"z","a":{"b":1,"q":null}}`}
			for range 6 {
				s := sites[rng.IntN(len(sites))]
				if rng.IntN(5) == 0 {
					s.del(t)
				} else {
					s.put(t, values[rng.IntN(len(values))])
				}
			}
			var digests []string
			for i := range 3 {
				var d Doc
				d.Apply(base.changes[0])
				// interleave the three sites' logs in a random order
				pos := make([]int, len(sites))
				for {
					var live []int
					for j, s := range sites {
						if pos[j] < len(s.changes) {
							live = append(live, j)
						}
					}
					if len(live) == 0 {
						break
					}
					j := live[rng.IntN(len(live))]
					c := sites[j].changes[pos[j]]
					pos[j]++
					if _, err := d.Apply(c); err != nil {
						t.Fatalf("order %d: %v", i, err)
					}
					if rng.IntN(3) == 0 { // duplicates are harmless
						d.Apply(c)
					}
				}
				d2, err := DecodeDoc(d.Encode(), nil)
				if err != nil {
					t.Fatal(err)
				}
				digests = append(digests, fmt.Sprintf("%x %s", d2.Digest(), value(d2)))
			}
			if digests[0] != digests[1] || digests[1] != digests[2] {
				t.Fatalf("diverged:\n%s", bytes.Join([][]byte{[]byte(digests[0]), []byte(digests[1]), []byte(digests[2])}, []byte("\n")))
			}
		})
	}
}

func TestProtobufAndJSONWritesAreOneDocument(t *testing.T) {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
	var pb, js bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(pod, &pb); err != nil {
		t.Fatal(err)
	}
	if err := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{}).Encode(pod, &js); err != nil {
		t.Fatal(err)
	}
	var fromPB, fromJSON Doc
	if _, _, err := fromPB.Put(pb.Bytes(), Stamp{1, "a"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fromJSON.Put(js.Bytes(), Stamp{1, "a"}); err != nil {
		t.Fatal(err)
	}
	if fromPB.Kind() != Document || fromJSON.Kind() != Document {
		t.Fatalf("kinds %d %d, want documents", fromPB.Kind(), fromJSON.Kind())
	}
	if v1, v2 := value(&fromPB), value(&fromJSON); v1 != v2 || fromPB.Digest() != fromJSON.Digest() {
		t.Fatalf("protobuf-written:\n%s\nJSON-written:\n%s", v1, v2)
	}
	if !maps.Equal(fromPB.fields, fromJSON.fields) {
		t.Fatal("same value, different documents")
	}
}

// TestRebaseBoundsHistory updates one object many times and rebases as the store
// does, keeping the Doc in memory and, as the store does for a document it does
// not cache, decoding it from its last record for each write; the stored
// document stays within a small factor of one version. Between rebases it holds
// up to 64 edits of history: for this lease-like object about 28 bytes an edit
// once batched (batch.go), plus the edits since (half the batched part).
func TestRebaseBoundsHistory(t *testing.T) {
	for _, decoded := range []bool{false, true} {
		d := &Doc{}
		clock := uint64(0)
		stamp := func() Stamp { clock++; return Stamp{clock, "a"} }
		one, largest := 0, 0
		for i := range 5000 {
			v := fmt.Sprintf(`{"metadata":{"name":"node-1","resourceVersion":"%d"},"spec":{"holderIdentity":"node-1","renewTime":"2026-11-22T04:%02d:%02d.%06dZ"}}`, i, i/60%60, i%60, i)
			if _, _, err := d.Put([]byte(v), stamp()); err != nil {
				t.Fatal(err)
			}
			if d.Edits() >= 64 {
				if _, ok, err := d.Rebase("a", uint64(i), nil); err != nil || !ok {
					t.Fatalf("rebase: %v %v", ok, err)
				}
				if got := value(d); got != v {
					t.Fatalf("rebase changed the value: %s", got)
				}
				largest = max(largest, len(d.Encode())) // holding the prior
				// On its own a site holds every edit at once: the prior goes at
				// once (the store's tidy drops it at the next write).
				d.DropPrior()
			}
			stored := d.Encode()
			if i == 0 {
				one = len(stored)
			}
			largest = max(largest, len(stored))
			if decoded {
				var err error
				if d, err = DecodeDoc(stored, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Logf("decoded each write %t: one version %d bytes; largest over 5000 updates %d bytes", decoded, one, largest)
		if largest > 32*one {
			t.Fatalf("over 5000 updates the document reached %d bytes, one version is %d", largest, one)
		}
	}
}

// TestUnsavedBodyBuiltAlike checks that a document's create ships no automerge
// body, and that replicas which build it when an edit first needs it — the
// writer's for its own edit, another's for a remote one — hold the same
// history: their saved forms are byte-identical.
func TestUnsavedBodyBuiltAlike(t *testing.T) {
	var a, b Doc
	create, _, err := a.Put([]byte(`{"x":1,"y":{"z":"q"}}`), Stamp{1, "a"})
	if err != nil || len(create.Data) != 0 {
		t.Fatalf("create ships %d bytes of body (err %v)", len(create.Data), err)
	}
	if _, err := b.Apply(create); err != nil {
		t.Fatal(err)
	}
	edit, _, err := a.Put([]byte(`{"x":2,"y":{"z":"q"}}`), Stamp{2, "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(edit); err != nil {
		t.Fatalf("replica cannot apply an edit of the body it built: %v", err)
	}
	if !bytes.Equal(a.Encode(), b.Encode()) {
		t.Fatal("replicas' saved documents differ")
	}
}

// TestFirstEditSavedAsChanges checks that a body's first edit saves the document
// as its two changes, the body's packed, rather than whole, and that a
// document saved whole at its first edit, or with its changes deflated, as
// stored before, decodes and takes the next edit alike.
func TestFirstEditSavedAsChanges(t *testing.T) {
	long := strings.Repeat("q", 400)
	val := func(x int) []byte { return fmt.Appendf(nil, `{"x":%d,"y":{"z":"%s"}}`, x, long) }
	var d, remote Doc
	create, _, err := d.Put(val(1), Stamp{1, "a"})
	if err != nil {
		t.Fatal(err)
	}
	edit, _, err := d.Put(val(2), Stamp{2, "a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Change{create, edit} {
		if _, err := remote.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(d.Encode(), remote.Encode()) {
		t.Fatal("the writer's and another replica's saved documents differ")
	}
	refs, err := readChanges(d.amBytes)
	if err != nil || len(refs) != 2 {
		t.Fatalf("saved form holds %d changes (%v), want the body's and the edit's", len(refs), err)
	}
	if d.amBytes[8] != chunkPackedChange || len(d.amBytes) > len(long) {
		t.Fatalf("body's change not packed: type %d, saved form %d bytes", d.amBytes[8], len(d.amBytes))
	}
	am, err := d.automerge("")
	if err != nil {
		t.Fatal(err)
	}
	whole := d
	whole.amBytes = am.Save()
	// As format 4 stored it: the changes deflated.
	raw, err := uncompressedChanges(d.amBytes)
	if err != nil {
		t.Fatal(err)
	}
	deflated := d
	if deflated.amBytes, err = compressChanges(raw); err != nil || deflated.amBytes[8] != chunkCompressedChange {
		t.Fatalf("deflated saved form: %v", err)
	}
	var edits [][]byte
	for _, enc := range [][]byte{d.Encode(), whole.Encode(), deflated.Encode()} {
		r, err := DecodeDoc(enc, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, ok, err := r.Put(val(3), Stamp{3, "a"})
		if err != nil || !ok || value(r) != string(val(3)) {
			t.Fatalf("next edit: %v %v %s", ok, err, value(r))
		}
		edits = append(edits, c.Data)
	}
	if !bytes.Equal(edits[0], edits[1]) || !bytes.Equal(edits[0], edits[2]) {
		t.Fatal("the next edit differs between the saved forms")
	}
	packed, err := readChanges(d.amBytes)
	if err != nil {
		t.Fatal(err)
	}
	if refs, err := readChanges(deflated.amBytes); err != nil || len(refs) != len(packed) ||
		refs[0].hash != packed[0].hash || refs[1].hash != packed[1].hash {
		t.Fatalf("deflated and packed saved forms read as different changes (%v)", err)
	}
}

// TestPreparedEditAlike checks that readying a document ahead of its edit
// (Prepare), also once unloaded and readied again, changes neither the edit
// shipped nor the document saved.
func TestPreparedEditAlike(t *testing.T) {
	long := strings.Repeat("q", 400)
	val := func(x int) []byte { return fmt.Appendf(nil, `{"x":%d,"y":{"z":"%s"}}`, x, long) }
	var d Doc
	if _, _, err := d.Put(val(1), Stamp{1, "a"}); err != nil {
		t.Fatal(err)
	}
	stored := d.Encode()
	var encs, edits [][]byte
	for _, prepare := range []int{0, 1, 2} {
		r, err := DecodeDoc(stored, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range prepare {
			if err := r.Prepare("b"); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.Encode(), stored) {
				t.Fatal("Prepare changed the document")
			}
			if prepare == 2 {
				r.Unload()
			}
		}
		c, ok, err := r.Put(val(2), Stamp{2, "b"})
		if err != nil || !ok {
			t.Fatalf("edit after %d preparations: %v %v", prepare, ok, err)
		}
		encs, edits = append(encs, r.Encode()), append(edits, c.Data)
	}
	for i := 1; i < len(encs); i++ {
		if !bytes.Equal(encs[i], encs[0]) || !bytes.Equal(edits[i], edits[0]) {
			t.Fatalf("prepared %d times: the document or the edit differs from the unprepared one's", i)
		}
	}
}
