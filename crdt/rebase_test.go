package crdt

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// replicas is a tiny in-memory cluster of one key's replicas: each site logs the
// changes it makes, and delivery takes an origin's log in order (as the store
// does), retrying a change whose dependencies are missing.
type replicas struct {
	t     *testing.T
	names []string
	docs  map[string]*Doc
	clock map[string]uint64
	log   map[string][]Change         // by origin
	got   map[string]map[string]int   // site -> origin -> changes applied
	tookR map[string]map[uint64][]int // site -> rebase mark -> log lengths when the site took it
	moved int                         // translations seen in dropped priors
	kept  []string                    // sites whose concurrent edits a rebase keeps
}

func newReplicas(t *testing.T, names ...string) *replicas {
	r := &replicas{t: t, names: names, docs: map[string]*Doc{}, clock: map[string]uint64{}, log: map[string][]Change{},
		got: map[string]map[string]int{}, tookR: map[string]map[uint64][]int{}}
	r.kept = names
	for _, n := range names {
		r.docs[n] = &Doc{}
		r.got[n] = map[string]int{}
		r.tookR[n] = map[uint64][]int{}
	}
	return r
}

func (r *replicas) put(site, value string) {
	r.clock[site]++
	c, ok, err := r.docs[site].Put([]byte(value), Stamp{r.clock[site], site})
	if err != nil {
		r.t.Fatalf("%s: put: %v", site, err)
	}
	if ok {
		r.logged(site, c)
	}
}

func (r *replicas) logged(site string, c Change) {
	r.log[site] = append(r.log[site], c)
	r.got[site][site] = len(r.log[site])
	if c.Op == OpRebase {
		r.took(site, c.Mark)
	}
}

// took notes how far every log reached when site took the rebase with mark.
func (r *replicas) took(site string, mark uint64) {
	var lens []int
	for _, n := range r.names {
		lens = append(lens, len(r.log[n]))
	}
	r.tookR[site][mark] = lens
}

func (r *replicas) rebase(site string) bool {
	d := r.docs[site]
	if d.Edits() == 0 {
		return false
	}
	c, ok, err := d.Rebase(site, uint64(len(r.log[site])+1), r.kept)
	if err != nil {
		r.t.Fatalf("%s: rebase: %v", site, err)
	}
	if ok {
		r.logged(site, c)
	}
	return ok
}

// deliver applies origin's next change at site; false when there is none or it
// must wait for others.
func (r *replicas) deliver(site, origin string) bool {
	i := r.got[site][origin]
	if site == origin || i >= len(r.log[origin]) {
		return false
	}
	c := r.log[origin][i]
	if _, err := r.docs[site].Apply(c); err == ErrMissingDependency {
		return false
	} else if err != nil {
		r.t.Fatalf("%s: apply %s#%d (op %d): %v", site, origin, i+1, c.Op, err)
	}
	r.got[site][origin] = i + 1
	r.clock[site] = max(r.clock[site], c.Inc.Counter, c.Epoch.Counter)
	if c.Op == OpRebase {
		r.took(site, c.Mark)
	}
	return true
}

// dropPriors drops a site's prior once the store's rule says no edit of it can
// arrive: every site took the rebase, and this site holds everything each site
// had made when it took it.
func (r *replicas) dropPriors(site string) {
	d := r.docs[site]
	_, mark, _, ok := d.Prior()
	if !ok {
		return
	}
	for j, n := range r.names {
		lens, took := r.tookR[n][mark]
		if !took || r.got[site][n] < lens[j] {
			return
		}
	}
	r.moved += len(d.prior.moved)
	d.DropPrior()
}

func (r *replicas) settle() {
	for progress := true; progress; {
		progress = false
		for _, s := range r.names {
			for _, o := range r.names {
				for r.deliver(s, o) {
					progress = true
				}
			}
		}
	}
	for _, s := range r.names {
		r.dropPriors(s)
	}
}

func (r *replicas) same() string {
	first := value(r.docs[r.names[0]])
	for _, n := range r.names[1:] {
		if got := value(r.docs[n]); got != first {
			r.t.Fatalf("diverged: %s has %s, %s has %s", r.names[0], first, n, got)
		}
		if r.docs[n].Digest() != r.docs[r.names[0]].Digest() {
			r.t.Fatalf("diverged digests at %s", n)
		}
	}
	return first
}

// TestRebaseKeepsConcurrentEdits: an edit made on the old history while the
// rebaser restarts it reaches every replica, and later edits build on it.
func TestRebaseKeepsConcurrentEdits(t *testing.T) {
	r := newReplicas(t, "a", "b", "c")
	r.put("a", `{"x":"0","y":"0","z":"0"}`)
	r.put("a", `{"x":"1","y":"0","z":"0"}`)
	r.settle()
	r.put("b", `{"x":"1","y":"b","z":"0"}`) // not yet seen by a
	r.deliver("c", "b")
	r.put("c", `{"x":"1","y":"b","z":"c"}`) // builds on b's edit
	if !r.rebase("a") {
		t.Fatal("a did not rebase")
	}
	r.put("a", `{"x":"a","y":"0","z":"0"}`) // on the new history
	r.settle()
	if got := r.same(); got != `{"x":"a","y":"b","z":"c"}` {
		t.Fatalf("after the rebase: %s", got)
	}
	// Everyone took the rebase and holds every old edit: the priors go, and the
	// next edits and rebase work from the new history.
	for _, n := range r.names {
		if _, _, _, ok := r.docs[n].Prior(); ok {
			t.Fatalf("%s kept its prior", n)
		}
	}
	r.put("b", `{"x":"a","y":"b2","z":"c"}`)
	r.settle()
	if !r.rebase("a") {
		t.Fatal("second rebase refused")
	}
	r.settle()
	if got := r.same(); got != `{"x":"a","y":"b2","z":"c"}` {
		t.Fatalf("after the second rebase: %s", got)
	}
}

// TestRebaseDropsForgottenSites: a rebase that does not count a site drops that
// site's concurrent edits of the old history at every replica, itself included,
// whenever they arrive.
func TestRebaseDropsForgottenSites(t *testing.T) {
	r := newReplicas(t, "a", "b", "c")
	r.put("a", `{"x":"0","y":"0"}`)
	r.put("a", `{"x":"1","y":"0"}`)
	r.settle()
	r.put("c", `{"x":"1","y":"c"}`) // c is away, and forgotten
	r.put("b", `{"x":"b","y":"0"}`)
	r.kept = []string{"a", "b"}
	if !r.rebase("a") {
		t.Fatal("a did not rebase")
	}
	r.deliver("b", "a") // b takes the rebase, then c's edit
	r.deliver("b", "c")
	r.settle()
	if got := r.same(); got != `{"x":"b","y":"0"}` {
		t.Fatalf("after the rebase: %s", got)
	}
}

// TestRebaseNotBySomeoneElse: only the rebaser restarts an epoch's history.
func TestRebaseNotBySomeoneElse(t *testing.T) {
	r := newReplicas(t, "a", "b")
	r.put("a", `{"x":"0"}`)
	r.settle()
	r.put("b", `{"x":"1"}`)
	if _, ok, _ := r.docs["b"].Rebase("b", 9, nil); ok {
		t.Fatal("b rebased a's document")
	}
}

// TestRebaseProperty runs random edits, rebases and deliveries at three replicas
// and checks they converge; when every edit is delivered before the next one, the
// result must be the last value written.
func TestRebaseProperty(t *testing.T) {
	seeds := 200
	if s := os.Getenv("RHIZOME_CRDT_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	moved := 0
	for seed := range uint64(seeds) {
		for _, sequential := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/sequential=%t", seed, sequential), func(t *testing.T) {
				moved += rebaseProperty(t, seed, sequential)
			})
		}
	}
	t.Logf("%d edits of old histories translated", moved)
	if moved == 0 && seeds >= 20 {
		t.Fatal("no run translated an edit: the property does not exercise rebases")
	}
}

func rebaseProperty(t *testing.T, seed uint64, sequential bool) int {
	rng := rand.New(rand.NewPCG(seed, 7))
	r := newReplicas(t, "a", "b", "c")
	r.put("a", `{"f0":"","f1":"","f2":"","f3":""}`)
	r.settle()
	last := ""
	for step := range 120 {
		site := r.names[rng.IntN(3)]
		switch k := rng.IntN(10); {
		case k < 5:
			cur := value(r.docs[site])
			// Change one or two fields of what this replica sees.
			fields := map[string]string{}
			for i := range 4 {
				fields[fmt.Sprintf("f%d", i)] = fieldOf(cur, i)
			}
			for range 1 + rng.IntN(2) {
				fields[fmt.Sprintf("f%d", rng.IntN(4))] = fmt.Sprintf("%s%d", site, step)
			}
			v := fmt.Sprintf(`{"f0":%q,"f1":%q,"f2":%q,"f3":%q}`, fields["f0"], fields["f1"], fields["f2"], fields["f3"])
			r.put(site, v)
			last = value(r.docs[site])
		case k < 7:
			r.dropPriors("a")
			r.rebase("a")
		default:
			to, from := r.names[rng.IntN(3)], r.names[rng.IntN(3)]
			for range rng.IntN(4) {
				r.deliver(to, from)
			}
			r.dropPriors(to)
		}
		if sequential {
			r.settle()
		}
	}
	r.settle()
	r.settle()
	got := r.same()
	if sequential && got != last {
		t.Fatalf("sequential edits ended at %s, last written %s", got, last)
	}
	return r.moved
}

// fieldOf reads field fi of a value written by rebaseProperty.
func fieldOf(v string, fi int) string {
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return ""
	}
	return m[fmt.Sprintf("f%d", fi)]
}

// TestReadChanges checks the chunk reader against automerge's own view of the
// same changes, small and large (automerge deflates large ones).
func TestReadChanges(t *testing.T) {
	for _, size := range []int{1, 10, 5000} {
		var d Doc
		d.Put([]byte(`{"a":"0"}`), Stamp{1, "s"})
		c, _, err := d.Put([]byte(fmt.Sprintf(`{"a":%q}`, strings.Repeat("x", size))), Stamp{2, "s"})
		if err != nil {
			t.Fatal(err)
		}
		refs, err := readChanges(c.Data)
		if err != nil || len(refs) != 1 {
			t.Fatalf("size %d: %v %v", size, refs, err)
		}
		am, err := d.automerge("")
		if err != nil {
			t.Fatal(err)
		}
		ch, err := am.Change(am.Heads()[0])
		if err != nil {
			t.Fatal(err)
		}
		if refs[0].hash != ch.Hash() || !slices.Equal(refs[0].deps, ch.Dependencies()) {
			t.Fatalf("size %d: read %x deps %x; automerge says %x deps %x", size, refs[0].hash, refs[0].deps, ch.Hash(), ch.Dependencies())
		}
		bad := slices.Clone(c.Data)
		bad[len(bad)-1] ^= 1
		if _, err := readChanges(bad); err == nil {
			t.Fatalf("size %d: a damaged change was read", size)
		}
	}
}
