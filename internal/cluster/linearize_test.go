package cluster

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/sync/peer"
)

// TestLinearizable checks one site's etcd API while it syncs: four clients send
// Kubernetes- and etcd-shaped requests (get, list, put, delete, DeleteRange of a
// prefix, and optimistic updates by Txn on mod_revision) to site s0 while s1 and s2 write the same keys,
// the fabric drops, duplicates and reorders messages, s0 is cut off and healed,
// and s0 crashes and restarts. The history — the clients' requests and, as a
// "remote" client, every revision a merge committed — must be linearizable
// (porcupine), and three watchers at s0 (one from the start, one re-opened by
// hand halfway, one opened midway) must keep etcd's watch guarantees
// (watchcheck_test.go). A history that fails is saved to a file (its name is in
// the error) that TestReplayHistories checks once copied to testdata/histories.
// RHIZOME_CLUSTER_SEED=N replays seed N's schedule; RHIZOME_CLUSTER_SEEDS=N runs
// seeds 1..N.
func TestLinearizable(t *testing.T) {
	first, last := seedRange(2)
	for seed := first; seed <= last; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			if err := runLinearizable(t, seed); err != nil {
				t.Fatalf("seed %d: %v (replay: RHIZOME_CLUSTER_SEED=%d go test -run TestLinearizable ./internal/cluster)", seed, err, seed)
			}
		})
	}
}

// linKeys are the keys every client writes.
var linKeys = []string{"/lin/a", "/lin/b", "/lin/c"}

const (
	linClients = 4
	linOps     = 60 // per local client, at least: they go on until the faults are over
)

// recorder collects the local clients' operations.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []linOp
	errs  []error // failed requests: their outcome is unknown
}

func (r *recorder) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *recorder) add(op linOp, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		op.Out = linOutput{Unknown: true}
		op.Return = math.MaxInt64
	}
	r.ops = append(r.ops, op)
	r.errs = append(r.errs, err)
}

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runLinearizable(t *testing.T, seed uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Faults = peer.Faults{Drop: 0.05, Duplicate: 0.05, Reorder: 0.1, ReorderDelay: 5 * time.Millisecond, Jitter: time.Millisecond}
	c := startCluster(t, cfg)
	s0 := c.Site("s0")
	startRev := s0.Store.Rev()
	rec := &recorder{start: time.Now()}

	// Watchers at s0: from the start; from the start, re-opened by hand once it
	// has got a third of the local writes; from whenever it opens.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var wg sync.WaitGroup
	ws := []*watcher{{name: "from-start", from: startRev + 1}, {name: "resumed", from: startRev + 1}, {name: "midway"}}
	fromStart, midway := newClient(t, s0.Endpoint), newClient(t, s0.Endpoint)
	wg.Go(func() { ws[0].watch(wctx, fromStart, startRev+1, nil) })
	resumed := newClient(t, s0.Endpoint)
	wg.Go(func() {
		ws[1].watch(wctx, resumed, startRev+1, func(w *watcher) bool { return w.got >= startRev+linOps })
		ws[1].mu.Lock()
		from := ws[1].got + 1
		ws[1].mu.Unlock()
		ws[1].watch(wctx, resumed, from, nil)
	})

	done, faultsOver := make(chan struct{}), make(chan struct{})
	var writers sync.WaitGroup
	for i := range linClients {
		cl := newClient(t, s0.Endpoint)
		rng := rand.New(rand.NewPCG(seed, uint64(10+i)))
		writers.Go(func() { localClient(ctx, cl, rng, i, rec, faultsOver) })
	}
	var remote sync.WaitGroup
	for i, name := range []string{"s1", "s2"} {
		cl := newClient(t, c.Site(name).Endpoint)
		rng := rand.New(rand.NewPCG(seed, uint64(20+i)))
		remote.Go(func() { remoteWriter(ctx, cl, rng, name, done) })
	}
	// The faults, at s0, while the clients run.
	faults := rand.New(rand.NewPCG(seed, 3))
	time.Sleep(time.Duration(100+faults.IntN(200)) * time.Millisecond)
	c.Disconnect("s0")
	wg.Go(func() { ws[2].watch(wctx, midway, 0, nil) })
	time.Sleep(time.Duration(100+faults.IntN(200)) * time.Millisecond)
	c.Heal()
	time.Sleep(time.Duration(100+faults.IntN(200)) * time.Millisecond)
	if err := c.Crash("s0"); err != nil {
		return err
	}
	time.Sleep(time.Duration(50+faults.IntN(200)) * time.Millisecond)
	if err := c.Restart("s0"); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	close(faultsOver)
	writers.Wait()
	close(done)
	remote.Wait()
	if err := c.EnsureSame(ctx); err != nil {
		return err
	}
	s0 = c.Site("s0")
	log, err := siteLog(s0.Store, startRev+1)
	if err != nil {
		return err
	}
	if err := prevRight(log); err != nil {
		return err
	}
	final := s0.Store.Rev()
	for _, w := range ws {
		for !w.reached(final) {
			if ctx.Err() != nil {
				return fmt.Errorf("watcher %s: reliable: stopped at revision %d of %d", w.name, w.got, final)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stopWatch()
	wg.Wait()
	for _, w := range ws {
		if err := w.check(log, startRev+1); err != nil {
			return err
		}
	}
	h := history(rec, log, startRev)
	if err := h.check(t.TempDir()); err != nil {
		return err
	}
	remotes, unknown := 0, 0
	for _, op := range h.Ops {
		if op.In.Kind == opRemote {
			remotes++
		}
		if op.Out.Unknown {
			unknown++
		}
	}
	t.Logf("seed %d: %d operations (%d merged revisions, %d failed by the crash) linearizable; %d events, 3 watchers checked; fabric %+v",
		seed, len(h.Ops), remotes, unknown, len(log), c.Fabric.Stats())
	return nil
}

// localClient sends random requests to s0, at least linOps and until the faults
// are over.
func localClient(ctx context.Context, c *clientv3.Client, rng *rand.Rand, id int, rec *recorder, faultsOver <-chan struct{}) {
	modRev := map[string]int64{} // the mod revision this client last read, per key
	for n := 0; ; n++ {
		if n >= linOps {
			select {
			case <-faultsOver:
				return
			default:
			}
		}
		key := linKeys[rng.IntN(len(linKeys))]
		value := fmt.Sprintf("c%d-%d", id, n)
		op := linOp{Client: id, Call: rec.now()}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		switch r := rng.IntN(100); {
		case r < 25:
			op.In = linInput{Kind: opGet, Key: key}
			var res *clientv3.GetResponse
			if res, err = c.Get(rctx, key); err == nil {
				op.Out = linOutput{Rev: res.Header.Revision, KVs: kvs(res)}
				for _, kv := range op.Out.KVs {
					modRev[key] = kv.ModRev
				}
			}
		case r < 35:
			op.In = linInput{Kind: opList, Key: "/lin/"}
			var res *clientv3.GetResponse
			if res, err = c.Get(rctx, "/lin/", clientv3.WithPrefix()); err == nil {
				op.Out = linOutput{Rev: res.Header.Revision, KVs: kvs(res)}
			}
		case r < 60:
			op.In = linInput{Kind: opPut, Key: key, Value: value}
			var res *clientv3.PutResponse
			if res, err = c.Put(rctx, key, value); err == nil {
				op.Out = linOutput{Rev: res.Header.Revision}
			}
		case r < 67:
			op.In = linInput{Kind: opDelete, Key: key}
			var res *clientv3.DeleteResponse
			if res, err = c.Delete(rctx, key); err == nil {
				op.Out = linOutput{Rev: res.Header.Revision, Deleted: res.Deleted}
			}
		case r < 70:
			op.In = linInput{Kind: opPurge, Key: "/lin/"}
			var res *clientv3.DeleteResponse
			if res, err = c.Delete(rctx, "/lin/", clientv3.WithPrefix()); err == nil {
				op.Out = linOutput{Rev: res.Header.Revision, Deleted: res.Deleted}
			}
		default:
			op.In = linInput{Kind: opCAS, Key: key, Value: value, Rev: modRev[key]}
			var res *clientv3.TxnResponse
			res, err = c.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev[key])).
				Then(clientv3.OpPut(key, value)).Else(clientv3.OpGet(key)).Commit()
			if err == nil {
				op.Out = linOutput{Rev: res.Header.Revision, Succeeded: res.Succeeded}
				if !res.Succeeded {
					op.Out.KVs = kvs((*clientv3.GetResponse)(res.Responses[0].GetResponseRange()))
				}
			}
		}
		cancel()
		op.Return = rec.now()
		rec.add(op, err)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // s0 is restarting
		}
	}
}

func kvs(res *clientv3.GetResponse) []linKV {
	var out []linKV
	for _, kv := range res.Kvs {
		out = append(out, linKV{Key: string(kv.Key), Value: string(kv.Value), ModRev: kv.ModRevision})
	}
	return out
}

// remoteWriter writes the shared keys at another site until done.
func remoteWriter(ctx context.Context, c *clientv3.Client, rng *rand.Rand, site string, done <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-done:
			return
		case <-time.After(time.Duration(rng.IntN(20)) * time.Millisecond):
		}
		key := linKeys[rng.IntN(len(linKeys))]
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if rng.IntN(5) == 0 {
			c.Delete(rctx, key)
		} else {
			c.Put(rctx, key, fmt.Sprintf("%s-%d", site, n))
		}
		cancel()
	}
}

// history builds the porcupine history: the local operations, a failed one
// given the revision of its event if its (unique) value was committed, and every
// other revision in the log as a remote operation.
func history(rec *recorder, log []wEvent, startRev int64) linHistory {
	claimed := map[int64]bool{}
	for _, op := range rec.ops {
		if !op.Out.Unknown && op.Out.Rev > startRev && writes(op) {
			claimed[op.Out.Rev] = true
		}
	}
	ops := slices.Clone(rec.ops)
	for i, op := range ops {
		if !op.Out.Unknown || op.In.Value == "" {
			continue
		}
		for _, e := range log {
			if !claimed[e.Rev] && e.Put && e.Key == op.In.Key && e.Value == op.In.Value {
				ops[i].Out.Rev, claimed[e.Rev] = e.Rev, true
				break
			}
		}
	}
	byRev := map[int64][]linKV{}
	for _, e := range log {
		if !claimed[e.Rev] {
			byRev[e.Rev] = append(byRev[e.Rev], linKV{Key: e.Key, Value: e.Value, Deleted: !e.Put})
		}
	}
	for _, rev := range slices.Sorted(maps.Keys(byRev)) {
		ops = append(ops, linOp{Client: linClients, Call: 0, Return: math.MaxInt64, In: linInput{Kind: opRemote, Rev: rev, Events: byRev[rev]}})
	}
	return linHistory{Start: linState{Rev: startRev, KVs: map[string]linKV{}}, Ops: ops}
}

// writes reports whether a successful operation committed a revision.
func writes(op linOp) bool {
	switch op.In.Kind {
	case opPut:
		return true
	case opDelete, opPurge:
		return op.Out.Deleted > 0
	case opCAS:
		return op.Out.Succeeded
	}
	return false
}
