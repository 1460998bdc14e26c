package peer

import (
	"context"
	"fmt"
	"testing"

	"github.com/rhizome-kv/rhizome/store"
)

func put(t *testing.T, st *store.Store, key, value string) {
	t.Helper()
	if _, err := st.Update(context.Background(), func(tx *store.WriteTxn) error {
		return tx.Put([]byte(key), []byte(value), 0)
	}); err != nil {
		t.Fatal(err)
	}
}

func sameData(t *testing.T, stores ...*store.Store) {
	t.Helper()
	want, err := stores[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stores[1:] {
		got, err := st.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			a, _ := stores[0].Range([]byte{0}, store.RangeOptions{End: []byte{0}})
			b, _ := st.Range([]byte{0}, store.RangeOptions{End: []byte{0}})
			t.Fatalf("%s differs from %s:\n%s\n%s", st.Site(), stores[0].Site(), dump(a.KVs), dump(b.KVs))
		}
	}
}

// TestSnapshotBootstrap: a site that joins after the others collected their logs
// gets their state as a snapshot, then follows the log like any site.
func TestSnapshotBootstrap(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(1)
	a, b := openStore(t, "a"), openStore(t, "b")
	net.Add("a", NewEngine(a, 50))
	net.Add("b", NewEngine(b, 50))
	for i := range 200 {
		put(t, a, fmt.Sprintf("/a/%d", i%40), fmt.Sprintf(`{"v":"%d","w":"x"}`, i))
		put(t, b, fmt.Sprintf("/b/%d", i%40), fmt.Sprintf(`{"v":"%d"}`, i))
	}
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	net.Tick()
	net.Drain(ctx, 1000)
	waitCollected(t, a)
	waitCollected(t, b)

	c := openStore(t, "c")
	net.Add("c", NewEngine(c, 50))
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	sameData(t, a, b, c)
	put(t, c, "/a/1", `{"v":"c","w":"x"}`)
	put(t, a, "/c/new", `{"v":"a"}`)
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	sameData(t, a, b, c)
}

// TestSnapshotAfterForgotten: a site cut off so long that the others stopped
// counting it (and collected their logs) comes back through a snapshot. The keys
// it wrote while away reach everyone; its edit of a document the others rebased
// without counting it is dropped, alike at every site.
func TestSnapshotAfterForgotten(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(2)
	names := []string{"a", "b", "c"}
	stores, engines := addSites(t, net, names...)
	put(t, stores["a"], "/shared", `{"a":"0","c":"0"}`)
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	net.Partition([]string{"c"})
	engines["a"].SetCounted([]string{"a", "b"})
	engines["b"].SetCounted([]string{"a", "b"})
	for _, n := range []string{"a", "b"} { // what site's status reports
		if !engines[n].forgottenSite("c") || engines[n].forgottenSite("a") || engines[n].forgottenSite("b") {
			t.Fatalf("%s: forgotten sites a %v, b %v, c %v; want c alone", n, engines[n].forgottenSite("a"), engines[n].forgottenSite("b"), engines[n].forgottenSite("c"))
		}
	}
	for i := range 100 {
		put(t, stores["a"], "/shared", fmt.Sprintf(`{"a":"%d","c":"0"}`, i))
		put(t, stores["b"], fmt.Sprintf("/b/%d", i%10), `{"v":"b"}`)
		put(t, stores["c"], fmt.Sprintf("/c/%d", i%10), fmt.Sprintf(`{"v":"%d"}`, i))
	}
	put(t, stores["c"], "/shared", `{"a":"0","c":"away"}`)
	if _, err := net.Settle(ctx, 20); err == nil {
		t.Fatal("a partitioned cluster converged")
	}
	// Each collects the other's changes (its own it keeps for c, which it has
	// heard from, counted or not).
	for range 2 {
		net.Tick()
		net.Drain(ctx, 1000)
	}
	waitCollectedOf(t, stores["a"], stores["b"].Origin())
	waitCollectedOf(t, stores["b"], stores["a"].Origin())
	net.Heal()
	engines["a"].SetCounted(names)
	engines["b"].SetCounted(names)
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	sameData(t, stores["a"], stores["b"], stores["c"])
	if got := stores["c"].Collected()[stores["a"].Origin()]; got == 0 {
		t.Fatal("c caught up without a snapshot")
	}
	res, err := stores["a"].Range([]byte("/c/"), store.RangeOptions{End: []byte("/c0"), CountOnly: true})
	if err != nil || res.Count != 10 {
		t.Fatalf("a holds %d of c's keys (%v), want 10", res.Count, err)
	}
	res, err = stores["c"].Range([]byte("/shared"), store.RangeOptions{})
	if err != nil || len(res.KVs) != 1 || string(res.KVs[0].Value) != `{"a":"99","c":"0"}` {
		t.Fatalf("/shared at c: %s %v", dump(res.KVs), err)
	}
}

// TestStaleSnapshotNoRejoin: a forgotten site in touch with the others gets a
// snapshot taken long before (a stalled link delivers it late). It holds, and
// has collected, changes the snapshot lacks — of a current snapshot, a sign it
// can never take one of that sender — but the sender has since reported holding
// them: the snapshot is stale, and the site neither installs it nor goes on
// anew, which would give up, and show again as missing, what it held
// (internal/cluster TestChaosForgetting seed 169).
func TestStaleSnapshotNoRejoin(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(2)
	names := []string{"a", "b"}
	stores, engines := addSites(t, net, names...)
	settle := func() {
		t.Helper()
		if _, err := net.Settle(ctx, 20); err != nil {
			t.Fatal(err)
		}
	}
	put(t, stores["a"], "/a", `{"v":"0"}`)
	settle()
	engines["a"].SetCounted([]string{"a"}) // a's clock forgets b
	engines["b"].SetCounted(names)
	settle()
	if !engines["b"].gone[stores["b"].Origin()] {
		t.Fatal("b does not hold the decision that forgets it")
	}
	stale, err := engines["a"].snapshot(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		put(t, stores["a"], "/a", fmt.Sprintf(`{"v":"%d"}`, i+1))
	}
	settle()
	waitCollectedOf(t, stores["b"], stores["a"].Origin())
	origin := stores["b"].Origin()
	for _, env := range stale {
		if _, err := engines["b"].Handle(ctx, env.Msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := stores["b"].Origin(); got != origin {
		t.Fatalf("b went on anew (%s -> %s) on a snapshot older than what its sender reported holding", origin, got)
	}
	sameData(t, stores["a"], stores["b"])
}

// TestRejoinKeepsOthersChanges: a forgotten site holds a third site's changes
// that every site held, so that their origin and the forgotten site have both
// collected them from their logs; then a site loses its disk. Its new
// incarnation's snapshot lacks those changes: the forgotten site must not go
// on anew on it, which would give them up where it alone can send them on
// (internal/cluster TestChaosForgetting seed 41: the cluster never converged).
func TestRejoinKeepsOthersChanges(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(2)
	stores, engines := addSites(t, net, "a", "b", "c")
	for i := range 5 {
		put(t, stores["c"], fmt.Sprintf("/c/%d", i), `{"v":"c"}`)
	}
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	for range 2 { // every site hears that every site holds them
		net.Tick()
		net.Drain(ctx, 1000)
	}
	waitCollectedOf(t, stores["b"], stores["c"].Origin())
	waitCollectedOf(t, stores["c"], stores["c"].Origin())
	fresh := map[string]*store.Store{"a": openStore(t, "a")} // a's disk is wiped
	engines["a"] = NewEngine(fresh["a"], 50)
	net.Add("a", engines["a"])
	put(t, fresh["a"], "/a", `{"v":"a"}`)
	engines["c"].SetCounted([]string{"a", "c"}) // c's clock forgets b
	if _, err := engines["b"].Handle(ctx, engines["c"].Pull("b").Msg); err != nil {
		t.Fatal(err)
	}
	if !engines["b"].gone[stores["b"].Origin()] {
		t.Fatal("b does not hold the decision that forgets it")
	}
	snap, err := engines["a"].snapshot(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	origin := stores["b"].Origin()
	for _, env := range snap {
		if _, err := engines["b"].Handle(ctx, env.Msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := stores["b"].Origin(); got != origin {
		t.Fatalf("b went on anew (%s -> %s) on a snapshot lacking c's changes, which c had collected", origin, got)
	}
	engines["c"].SetCounted([]string{"a", "b", "c"})
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	sameData(t, fresh["a"], stores["b"], stores["c"])
	res, err := fresh["a"].Range([]byte("/c/"), store.RangeOptions{End: []byte("/c0"), CountOnly: true})
	if err != nil || res.Count != 5 {
		t.Fatalf("a holds %d of c's keys (%v), want 5", res.Count, err)
	}
}

// TestOwnChangesKeptUntilHeld: a site whose peers are all forgotten starts
// again (its engine knows their incarnations from the changes it holds and the
// decisions, not yet their vectors). Its own changes stay in its log until a
// site is heard holding them: collected at once, they were held nowhere else,
// and a forgotten site that returned could take no snapshot of it (internal/
// cluster TestChaosForgetting seed 186: two sites each collected their own
// changes past the other and the cluster never converged).
func TestOwnChangesKeptUntilHeld(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(2)
	stores, engines := addSites(t, net, "a", "b", "c")
	for _, n := range []string{"a", "b", "c"} {
		put(t, stores[n], "/"+n, `{"v":"0"}`)
	}
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	engines["a"].SetCounted([]string{"a"}) // a's clock forgets b and c
	put(t, stores["a"], "/a", `{"v":"1"}`)
	restarted := NewEngine(stores["a"], 50)
	restarted.SetCounted([]string{"a"})
	if got := restarted.Forgotten(); len(got) != 2 {
		t.Fatalf("forgotten after the restart: %v, want b's and c's incarnations", got)
	}
	if got := restarted.Horizon().Stable[stores["a"].Origin()]; got != 0 {
		t.Fatalf("a's own changes stable up to %d where no site is heard holding any", got)
	}
}

// TestReplacedOriginSentAgain: a site gives up, by a forced snapshot install,
// the tail of a replaced origin's changes it had reported holding (site c lost
// its disk; b took a snapshot from before it). The others' rows for b only
// grow, so they held that tail as b's; its Pulls say what it holds now, and
// the tail is sent again (internal/cluster TestChaosForgetting seed 113: the
// sites never converged).
func TestReplacedOriginSentAgain(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(2)
	stores := map[string]*store.Store{}
	add := func(n string) {
		stores[n] = openStore(t, n)
		net.Add(n, NewEngine(stores[n], 50))
	}
	settle := func() {
		t.Helper()
		if _, err := net.Settle(ctx, 20); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"a", "b", "c"} {
		add(n)
	}
	for i := range 5 {
		put(t, stores["c"], fmt.Sprintf("/c/%d", i), `{"v":1}`)
	}
	early, err := stores["c"].Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		put(t, stores["c"], fmt.Sprintf("/c/%d", i), `{"v":2}`)
	}
	settle()
	old := stores["c"].Origin()
	add("c") // its disk lost: a new incarnation replaces old
	settle()
	if err := stores["b"].InstallSnapshotWith(ctx, early, store.InstallOptions{GiveUp: []string{old}}); err != nil {
		t.Fatal(err)
	}
	if got := stores["b"].VersionVector()[old]; got != 5 {
		t.Fatalf("b holds %d of %s after the forced install, want 5", got, old)
	}
	settle()
	if got := stores["b"].VersionVector()[old]; got != 10 {
		t.Fatalf("b holds %d of the replaced %s, the others 10", got, old)
	}
	sameData(t, stores["a"], stores["b"], stores["c"])
}

// addSites opens a store and an engine (batches of 50) for each name and adds
// the engine to net.
func addSites(t *testing.T, net *Network, names ...string) (map[string]*store.Store, map[string]*Engine) {
	t.Helper()
	stores, engines := map[string]*store.Store{}, map[string]*Engine{}
	for _, n := range names {
		stores[n] = openStore(t, n)
		engines[n] = NewEngine(stores[n], 50)
		net.Add(n, engines[n])
	}
	return stores, engines
}

// TestRejoinPastReplacedTail: a forgotten site's own change builds on a change
// of an incarnation since replaced (its site lost its disk), which the
// forgotten site alone holds and took by a snapshot, so it cannot send it: no
// snapshot of a site not forgotten will ever hold what its own change needs,
// and it goes on anew rather than waiting for ever (internal/cluster
// TestChaosForgetting seed 177: s2 refused s1's snapshots, "lacks what this
// site's own changes build on", until the test gave up).
func TestRejoinPastReplacedTail(t *testing.T) {
	ctx := context.Background()
	net := NewNetwork(2)
	stores, engines := addSites(t, net, "a", "b", "c")
	put(t, stores["a"], "/a", `{"v":"a"}`)
	put(t, stores["b"], "/k", `{"v":"b"}`)
	handleAll(t, engines["c"], engines["b"].snapshot, "c") // c alone holds b's change, and cannot send it
	put(t, stores["c"], "/k", `{"v":"c"}`)                 // built on b's change
	fresh := openStore(t, "b")                             // b's disk is wiped
	engines["b"] = NewEngine(fresh, 50)
	net.Add("b", engines["b"])
	if _, err := engines["a"].Handle(ctx, engines["c"].Pull("a").Msg); err != nil { // a knows c's incarnation
		t.Fatal(err)
	}
	engines["a"].SetCounted([]string{"a", "b"}) // a's clock forgets it
	for _, from := range []string{"a", "b"} {   // c hears of the decision, and of b's new incarnation
		if _, err := engines["c"].Handle(ctx, engines[from].Pull("c").Msg); err != nil {
			t.Fatal(err)
		}
	}
	origin := stores["c"].Origin()
	handleAll(t, engines["c"], engines["a"].snapshot, "c")
	if got := stores["c"].Origin(); got == origin {
		t.Fatal("forgotten c refused a's snapshot, which lacks what its own change builds on, and waits for one that can never come")
	}
	if _, err := net.Settle(ctx, 20); err != nil {
		t.Fatal(err)
	}
	sameData(t, stores["a"], fresh, stores["c"])
}

// handleAll has e take every part of a snapshot made for to.
func handleAll(t *testing.T, e *Engine, snapshot func(context.Context, string) ([]Envelope, error), to string) {
	t.Helper()
	envs, err := snapshot(context.Background(), to)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range envs {
		if _, err := e.Handle(context.Background(), env.Msg); err != nil {
			t.Fatal(err)
		}
	}
}
