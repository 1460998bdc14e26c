package multisite

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestPartitionedProcesses runs three `rhizome serve` processes, each in its own
// network namespace, cuts one off from the other two while all three keep taking
// writes, heals the cut, and checks that the sites converge to identical data, that
// each site's watch (opened before any write, with prev_kv) delivered the remote
// changes as ordinary events, and that MemberList lists all three sites again.
//
// It cuts twice on one cluster: briefly (shorter than gossip's failure detection,
// so only the sync streams notice), then as real partitions last, well past the
// moment gossip has declared the site dead on both sides: longer than memberlist
// keeps gossiping to dead members (30s with LAN timing), so only a deliberate
// reconnection can bring the site back.
func TestPartitionedProcesses(t *testing.T) {
	c := startCluster(t, clusterConfig{Sites: 3, GossipLAN: true, AntiEntropyInterval: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var watches []*watchLog
	for _, s := range c.Sites {
		w, err := startWatch(ctx, s.Client, "/ms/")
		if err != nil {
			t.Fatal(err)
		}
		watches = append(watches, w)
	}
	// LAN timing declares a site dead 5-10s after a cut, never within 4s.
	t.Run("BriefCut", func(t *testing.T) { partitionRound(ctx, t, c, watches, "/ms/brief/", false, 2*time.Second) })
	t.Run("DetectedCut", func(t *testing.T) {
		if testing.Short() {
			t.Skip("multisite: -short: this cut lasts over 40s")
		}
		partitionRound(ctx, t, c, watches, "/ms/detected/", true, 35*time.Second)
	})
}

// partitionRound cuts site 2 off, writes at every site, heals and checks the
// outcome, all under prefix. It heals hold after the cut or, with detect, hold
// after gossip has declared site 2 dead (and site 2 the others), and then
// writes only once the death is declared.
func partitionRound(ctx context.Context, t *testing.T, c *cluster, watches []*watchLog, prefix string, detect bool, hold time.Duration) {
	const cut = 2
	const perSite = 20
	obj, doomed, born := prefix+"obj", prefix+"doomed", prefix+"born"
	s0 := c.Sites[0].Client

	// Before the cut every site holds the same incarnation of obj and doomed, so
	// what happens to them during the cut is concurrent editing of one object.
	mustPut(ctx, t, s0, obj, `{"metadata":{"name":"obj"},"spec":{"replicas":1}}`)
	mustPut(ctx, t, s0, doomed, `{"spec":{"x":1}}`)
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := poll(waitCtx, 20*time.Millisecond, func() (bool, string) {
		for i, s := range c.Sites {
			st, err := getState(waitCtx, s.Client, prefix)
			if err != nil || len(st) != 2 {
				return false, fmt.Sprintf("s%d holds %v (%v)", i, st, err)
			}
		}
		return true, ""
	})
	cancel()
	if err != nil {
		t.Fatalf("seed objects did not reach every site: %v", err)
	}

	c.Net.Cut(cut)
	healed := false
	defer func() {
		if !healed {
			c.Net.Heal(cut) // leave the cluster whole for the next round
		}
	}()
	cutAt := time.Now()
	cutView := func(i int) int { // members each site lists while the cut is noticed
		if i == cut {
			return 1
		}
		return 2
	}
	deadAt := cutAt // or when gossip noticed
	if detect {
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := c.WaitMembers(waitCtx, cutView)
		cancel()
		if err != nil {
			t.Fatalf("gossip did not declare the cut site dead: %v", err)
		}
		deadAt = time.Now()
		t.Logf("gossip declared s%d dead (and it the others) %v after the cut", cut, deadAt.Sub(cutAt).Round(time.Millisecond))
	}

	// Every site keeps taking writes.
	for i, s := range c.Sites {
		cli := s.Client
		for n := range perSite {
			mustPut(ctx, t, cli, fmt.Sprintf("%ss%d/%02d", prefix, i, n), fmt.Sprintf(`{"n":%d,"site":"s%d"}`, n, i))
		}
		// Read-modify-write, as a controller does: s0 and s1 still see each
		// other's edits, s2 edits the version from before the cut.
		mustUpdate(ctx, t, cli, obj, func(v map[string]any) {
			v["spec"].(map[string]any)[fmt.Sprintf("f%d", i)] = fmt.Sprintf("s%d", i)
			v["status"] = map[string]any{"by": fmt.Sprintf("s%d", i)}
		})
	}
	mustUpdate(ctx, t, s0, doomed, func(v map[string]any) { v["spec"].(map[string]any)["x"] = 2 })
	if _, err := c.Sites[cut].Client.Delete(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	bornValues := []string{`{"a":1,"by":"s0"}`, `{"b":2,"by":"s2"}`}
	mustPut(ctx, t, s0, born, bornValues[0])
	mustPut(ctx, t, c.Sites[cut].Client, born, bornValues[1])

	// The cut is real: neither side has the other's writes.
	for _, probe := range []struct{ site, key string }{{"s2", prefix + "s0/00"}, {"s0", prefix + "s2/00"}} {
		cli := c.Sites[probe.site[1]-'0'].Client
		res, err := cli.Get(ctx, probe.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Kvs) != 0 {
			t.Fatalf("%s holds %s while cut off from its writer", probe.site, probe.key)
		}
	}
	// The two connected sites keep syncing with each other meanwhile.
	waitCtx, cancel = context.WithTimeout(ctx, 30*time.Second)
	err = poll(waitCtx, 20*time.Millisecond, func() (bool, string) {
		a, errA := getState(waitCtx, s0, prefix)
		b, errB := getState(waitCtx, c.Sites[1].Client, prefix)
		return errA == nil && errB == nil && maps.Equal(a, b), fmt.Sprintf("s0 holds %d keys, s1 %d", len(a), len(b))
	})
	cancel()
	if err != nil {
		t.Errorf("s0 and s1 did not converge while s2 was cut off: %v", err)
	}
	// Nothing to poll for: the cut has to last, as partitions do.
	time.Sleep(time.Until(deadAt.Add(hold)))
	if detect {
		waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.WaitMembers(waitCtx, cutView)
		cancel()
		if err != nil {
			t.Fatalf("membership changed during the cut: %v", err)
		}
	}
	t.Logf("site %d cut off for %v", cut, time.Since(cutAt).Round(time.Millisecond))

	c.Net.Heal(cut)
	healed = true
	healAt := time.Now()
	waitCtx, cancel = context.WithTimeout(ctx, time.Minute)
	err = c.WaitMembers(waitCtx, func(int) int { return 3 })
	cancel()
	if err != nil {
		t.Fatalf("MemberList did not list all three sites again after healing: %v", err)
	}
	t.Logf("all three sites listed as members %v after healing", time.Since(healAt).Round(time.Millisecond))

	// Identical data everywhere.
	wantKeys := 3*perSite + 2 // obj and born; doomed is gone
	var final map[string]string
	waitCtx, cancel = context.WithTimeout(ctx, time.Minute)
	err = poll(waitCtx, 50*time.Millisecond, func() (bool, string) {
		var states []map[string]string
		for i, s := range c.Sites {
			st, err := getState(waitCtx, s.Client, prefix)
			if err != nil {
				return false, fmt.Sprintf("s%d: %v", i, err)
			}
			states = append(states, st)
		}
		for i, st := range states {
			if len(st) != wantKeys || !maps.Equal(st, states[0]) {
				return false, fmt.Sprintf("s%d holds %d keys (want %d); differs from s0: %s", i, len(st), wantKeys, diff(states[0], st))
			}
		}
		final = states[0]
		return true, ""
	})
	cancel()
	if err != nil {
		t.Fatalf("sites did not converge: %v", err)
	}
	t.Logf("get --prefix identical at all three sites %v after healing", time.Since(healAt).Round(time.Millisecond))

	// The merge rules of DESIGN.md, end to end.
	var o struct{ Spec map[string]any }
	if err := json.Unmarshal([]byte(final[obj]), &o); err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	wantSpec := map[string]any{"replicas": 1.0, "f0": "s0", "f1": "s1", "f2": "s2"}
	if !reflect.DeepEqual(o.Spec, wantSpec) {
		t.Errorf("concurrent edits of different fields of %s: spec = %v, want %v (field-level merge)", obj, o.Spec, wantSpec)
	}
	if v, ok := final[doomed]; ok {
		t.Errorf("%s = %s after a delete concurrent with an update; want it deleted (a delete beats concurrent updates)", doomed, v)
	}
	if v := final[born]; !jsonEqual(v, bornValues[0]) && !jsonEqual(v, bornValues[1]) {
		t.Errorf("%s = %s after concurrent creates; want one of %q whole", born, v, bornValues)
	}

	// Each site's watch saw every remote change: replaying its events gives the
	// converged state, and the keys written at the other sites arrived as PUTs.
	for j, w := range watches {
		var events []event
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := poll(waitCtx, 20*time.Millisecond, func() (bool, string) {
			var err error
			if events, err = w.Events(prefix); err != nil {
				return false, err.Error()
			}
			got := Replay(events)
			return maps.Equal(got, final), diff(final, got)
		})
		cancel()
		if err != nil {
			t.Errorf("s%d: replaying its watch does not give the converged state: %v", j, err)
			continue
		}
		all, _ := w.Events("/ms/")
		if err := checkStream(all); err != nil {
			t.Errorf("s%d's watch: %v", j, err)
		}
		remote := 0
		for i := range c.Sites {
			if i == j {
				continue
			}
			for n := range perSite {
				key := fmt.Sprintf("%ss%d/%02d", prefix, i, n)
				if !slices.ContainsFunc(events, func(e event) bool { return e.Put && e.Key == key }) {
					t.Errorf("s%d's watch has no PUT of %s, written at s%d", j, key, i)
				}
				remote++
			}
		}
		if j != cut && !slices.ContainsFunc(events, func(e event) bool { return !e.Put && e.Key == doomed }) {
			t.Errorf("s%d's watch has no DELETE of %s, deleted at s%d", j, doomed, cut)
		}
		t.Logf("s%d's watch: %d events under %s, %d remote creates checked", j, len(events), prefix, remote)
	}

	want := []string{"s0", "s1", "s2"}
	for i := range c.Sites {
		names, err := c.Members(ctx, i)
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("s%d: MemberList = %v (%v), want %v", i, names, err, want)
		}
	}
}

func mustPut(ctx context.Context, t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// mustUpdate reads a JSON object, changes it and writes it back if nothing
// changed it meanwhile, retrying otherwise: optimistic concurrency, as
// kube-apiserver does. A plain Put would be a blind overwrite: a remote edit
// merged between the read and the write would be undone by it, at Rhizome as a
// concurrent write would be lost at etcd.
func mustUpdate(ctx context.Context, t *testing.T, cli *clientv3.Client, key string, change func(map[string]any)) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		res, err := cli.Get(ctx, key)
		if err != nil || len(res.Kvs) != 1 {
			t.Fatalf("get %s: %v (%d kvs)", key, err, len(res.Kvs))
		}
		var v map[string]any
		if err := json.Unmarshal(res.Kvs[0].Value, &v); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		change(v)
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		txn, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", res.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			t.Fatalf("update %s: %v", key, err)
		}
		if txn.Succeeded {
			return
		}
		if attempt == 10 {
			t.Fatalf("update %s: changed under every one of %d attempts", key, attempt+1)
		}
		t.Logf("update %s: changed since read (a merged remote edit); reading again", key)
	}
}

// getState is `get --prefix`: every key under prefix with its value.
func getState(ctx context.Context, cli *clientv3.Client, prefix string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	st := make(map[string]string, len(res.Kvs))
	for _, kv := range res.Kvs {
		st[string(kv.Key)] = string(kv.Value)
	}
	return st, nil
}

// diff describes the first few differences between two states.
func diff(want, got map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+k)
		} else if g != want[k] {
			out = append(out, fmt.Sprintf("%s = %s, not %s", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k)
		}
	}
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

func jsonEqual(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
