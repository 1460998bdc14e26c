package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	crashWriters = 16 // concurrent clients
	// minAcks is how many writes must be acknowledged before the kill can
	// come, so that every cycle kills a loaded server.
	minAcks = 100
	// maxKillDelay bounds the seeded random time between minAcks and the kill.
	maxKillDelay = 1500 * time.Millisecond
	opTimeout    = 10 * time.Second
)

// crashCycles is how many SIGKILLs TestCrashSafety makes on one data
// directory: RHIZOME_CRASH_CYCLES (the long mode: 100), else 3.
func crashCycles(t *testing.T) int {
	s := os.Getenv("RHIZOME_CRASH_CYCLES")
	if s == "" {
		return 3
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("RHIZOME_CRASH_CYCLES=%q: want a positive number", s)
	}
	return n
}

// TestCrashSafety SIGKILLs `rhizome serve` (fsync on, the default) under
// concurrent write load, restarts it on the same data directory, and checks
// against the acknowledged writes:
//
//   - every acknowledged write is in the history at its revision, with its
//     exact changes, and every revision since the last check is there;
//   - a revision no write was acknowledged for holds exactly the changes of
//     one write that was in flight at the kill (which may or may not
//     survive, but all of a Txn or nothing);
//   - the keys hold exactly the acknowledged state plus the surviving
//     in-flight writes, with their mod revisions;
//   - the restarted server gives the next write the next revision;
//   - a physical compaction acknowledged under load survived too, and so
//     did a lease with its key.
//
// Each writer owns its keys, so it knows their values, and at most its last
// write (the one the kill interrupted) is in doubt. RHIZOME_CRASH_CYCLES=100
// is the long mode; each restart's time (start to first answer, recovery
// included) is reported.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	cycles := crashCycles(t)
	kill := func(p *proc) string {
		// The kill point is the seeded random part; it is not waiting for
		// anything.
		delay := time.Duration(rng.Int64N(int64(maxKillDelay)))
		time.Sleep(delay)
		p.kill()
		return fmt.Sprintf("SIGKILL %v past %d acks", delay.Round(time.Millisecond), minAcks)
	}
	start := func(t *testing.T, bin, dataDir string, _ int) *proc { return startRhizome(t, bin, dataDir) }
	crashRun{seed: seed, cycles: cycles, start: start, crasher: crasher{crash: kill}}.run(t)
}

// crasher ends a server under load.
type crasher struct {
	// crash ends p once the load is on, and says how. It returns once p is
	// gone.
	crash func(p *proc) string
	// selfInflicted: p ends by itself (a failpoint), so a write failing
	// because p exited is expected even before crash is called.
	selfInflicted bool
}

// crashRun is cycles of: start the server on one data directory, check it
// against the history, load it until crasher ends it.
type crashRun struct {
	seed    uint64
	cycles  int
	start   func(t *testing.T, bin, dataDir string, cycle int) *proc
	crasher crasher
	foreign string // crashHistory.foreign
	// final, if set, runs on the last server started, after its checks.
	final func(t *testing.T, cli *clientv3.Client)
}

// run runs the cycles, logs the restart times and returns them.
func (r crashRun) run(t *testing.T) []time.Duration {
	t.Helper()
	seed, cycles, start, c := r.seed, r.cycles, r.start, r.crasher
	bin := rhizomeBuild.Path(t)
	dataDir := t.TempDir()
	h := &crashHistory{base: 1, foreign: r.foreign} // a fresh store is at revision 1
	for i := range crashWriters {
		h.writers = append(h.writers, newWriter(i, rand.New(rand.NewPCG(seed, uint64(i)+1))))
	}
	h.probe = newWriter(-1, nil)
	var (
		totalAcks int
		restarts  []time.Duration
	)
	for cycle := 0; ; cycle++ {
		began := time.Now()
		p := start(t, bin, dataDir, cycle)
		if cycle > 0 {
			restarts = append(restarts, time.Since(began))
		}
		cli, err := newClient(p.ep)
		if err != nil {
			t.Fatal(err)
		}
		h.verify(t, cli, cycle)
		h.afterRestart(t, cli, cycle)
		if t.Failed() || cycle == cycles {
			if r.final != nil && !t.Failed() {
				r.final(t, cli)
			}
			cli.Close()
			p.stop()
			break
		}
		totalAcks += h.load(t, cli, p, c, cycle+1)
		cli.Close()
	}
	if !t.Failed() {
		t.Logf("seed %d: %d writes acknowledged under load over %d crashes, all found after restart; restart to first answer: %s",
			seed, totalAcks, cycles, durationSummary(restarts))
	}
	return restarts
}

// durationSummary is "min / median / max over n".
func durationSummary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %v, median %v, max %v over %d", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]), len(s))
}

// crashSeed is RHIZOME_E2E_SEED if set, else a new seed, logged for replay.
func crashSeed(t *testing.T) uint64 {
	if s := os.Getenv("RHIZOME_E2E_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RHIZOME_E2E_SEED=%q: %v", s, err)
		}
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (set RHIZOME_E2E_SEED=%d to replay the kill schedule and op mix)", seed, seed)
	return seed
}

// crashHistory is what the clients know the store must hold.
type crashHistory struct {
	writers []*writer
	probe   *writer // the writes made right after each restart
	base    int64   // the revision verified last; history is checked after it
	keys    int64   // how many keys there were at base
	// compacted is the last acknowledged compaction's revision, and
	// compactedKeys how many keys there were at it.
	compacted, compactedKeys int64
	// lease was granted after the last restart, with leaseKey attached.
	lease    clientv3.LeaseID
	leaseKey string
	// foreign prefixes the keys another site writes and sync merges in
	// here: their revisions are not the writers' to explain, and their
	// values are checked by convergence instead.
	foreign string
}

// isForeign tells whether every event is of a foreign key.
func (h *crashHistory) isForeign(evs []*mvccpb.Event) bool {
	return h.foreign != "" && len(evs) > 0 && !slices.ContainsFunc(evs, func(ev *mvccpb.Event) bool {
		return !strings.HasPrefix(string(ev.Kv.Key), h.foreign)
	})
}

// load runs the writers until c has ended the server, and returns how many
// writes were acknowledged.
func (h *crashHistory) load(t *testing.T, cli *clientv3.Client, p *proc, c crasher, kill int) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		killed atomic.Bool
		acks   atomic.Int64
		wg     sync.WaitGroup
	)
	// dead tells a writer whose write failed whether the server's end
	// explains it: it was killed, or (selfInflicted) it exited by itself.
	dead := func() bool {
		if killed.Load() {
			return true
		}
		if !c.selfInflicted {
			return false
		}
		select {
		case <-p.Done():
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	start := time.Now()
	for _, w := range h.writers {
		wg.Go(func() { w.run(ctx, t, cli, dead, &acks) })
	}
	for acks.Load() < minAcks && !t.Failed() && time.Since(start) < time.Minute && p.Alive() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if h.base > 1 && p.Alive() == nil {
		// A physical compaction of everything verified so far, under load;
		// once acknowledged it must survive the kill.
		cctx, ccancel := context.WithTimeout(ctx, opTimeout)
		_, err := cli.Compact(cctx, h.base, clientv3.WithCompactPhysical())
		ccancel()
		switch {
		case err == nil:
			h.compacted, h.compactedKeys = h.base, h.keys
			t.Logf("kill %d: compacted at revision %d under load", kill, h.base)
		case !dead():
			t.Errorf("kill %d: compact at %d under load: %v", kill, h.base, err)
		}
	}
	if acks.Load() < minAcks && !c.selfInflicted {
		t.Errorf("kill %d: only %d writes acknowledged in %v", kill, acks.Load(), time.Since(start))
	}
	killed.Store(true) // from here on, a failed write is the crash's
	how := c.crash(p)
	n := acks.Load()
	cancel()
	wg.Wait()
	inFlight := 0
	for _, w := range h.writers {
		if w.pending != nil {
			inFlight++
		}
	}
	t.Logf("kill %d: %s, after %v of load: %d writes acknowledged, %d in flight",
		kill, how, time.Since(start).Round(time.Millisecond), n, inFlight)
	return int(n)
}

// verify checks the restarted server against the history (see
// TestCrashSafety) and makes the state it found the new base.
func (h *crashHistory) verify(t *testing.T, cli *clientv3.Client, cycle int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	state, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("restart %d: read all keys: %v", cycle, err)
	}
	cur := state.Header.Revision
	if h.compacted > 0 {
		h.verifyCompaction(ctx, t, cli, cycle)
	}
	if h.lease != 0 {
		h.verifyLease(ctx, t, cli, cycle)
	}
	byRev, err := history(ctx, cli, h.base, cur)
	if err != nil {
		t.Fatalf("restart %d: %v", cycle, err)
	}
	for r := h.base + 1; r <= cur; r++ {
		if len(byRev[r]) == 0 {
			t.Errorf("restart %d: revision %d (of %d..%d) missing from the history", cycle, r, h.base+1, cur)
		}
	}

	// Each revision must be one acknowledged write, or one in-flight write.
	explained := map[int64]bool{}
	for r, evs := range byRev {
		explained[r] = h.isForeign(evs)
	}
	acked := 0
	all := append(slices.Clone(h.writers), h.probe)
	for _, w := range all {
		for _, o := range w.acked {
			acked++
			switch got := changes(byRev[o.rev]); {
			case explained[o.rev]:
				t.Errorf("restart %d: revision %d acknowledged twice", cycle, o.rev)
			case o.rev > cur:
				t.Errorf("restart %d: LOST acknowledged write at revision %d: server is at %d: %s", cycle, o.rev, cur, o)
			case got != o.changes():
				t.Errorf("restart %d: acknowledged write at revision %d: history holds %q, want %q", cycle, o.rev, got, o.changes())
			}
			explained[o.rev] = true
		}
	}
	applied, lost := 0, 0
	for _, w := range all {
		if w.pending == nil {
			continue
		}
		var at int64
		for r, evs := range byRev {
			if !explained[r] && changes(evs) == w.pending.changes() {
				at = r
				break
			}
		}
		if at == 0 {
			lost++
			w.pending = nil
			continue
		}
		applied++
		explained[at] = true
		w.pending.rev = at
		w.apply(*w.pending)
		w.pending = nil
	}
	for r, evs := range byRev {
		if !explained[r] {
			t.Errorf("restart %d: revision %d holds %q, which no client wrote", cycle, r, changes(evs))
		}
	}

	// The keys must be exactly what the writes left.
	want := map[string]keyState{}
	for _, w := range all {
		for k, s := range w.keys {
			want[k] = s
		}
	}
	for _, kv := range state.Kvs {
		k := string(kv.Key)
		if h.foreign != "" && strings.HasPrefix(k, h.foreign) {
			continue
		}
		s, ok := want[k]
		switch {
		case !ok:
			t.Errorf("restart %d: key %q = %q (mod %d) should not exist", cycle, k, kv.Value, kv.ModRevision)
		case s.value != string(kv.Value) || s.mod != kv.ModRevision:
			t.Errorf("restart %d: key %q = %q (mod %d), want %q (mod %d)", cycle, k, kv.Value, kv.ModRevision, s.value, s.mod)
		}
		delete(want, k)
	}
	for k, s := range want {
		t.Errorf("restart %d: LOST key %q: want %q (mod %d)", cycle, k, s.value, s.mod)
	}
	if cycle > 0 {
		t.Logf("restart %d: revision %d, %d keys; %d acknowledged writes (with those right after the last restart) checked at their revisions; of the writes in flight at the kill %d survived, %d did not",
			cycle, cur, len(state.Kvs), acked, applied, lost)
	}
	for _, w := range all {
		w.acked = nil
	}
	h.base, h.keys = cur, int64(len(state.Kvs))
}

// verifyCompaction checks that the acknowledged compaction survived: reads
// below it fail as compacted, reads at it see the keys there were.
func (h *crashHistory) verifyCompaction(ctx context.Context, t *testing.T, cli *clientv3.Client, cycle int) {
	t.Helper()
	_, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(h.compacted-1))
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("restart %d: read at %d, below the compaction at %d: got error %v, want %v", cycle, h.compacted-1, h.compacted, err, rpctypes.ErrCompacted)
	}
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(h.compacted), clientv3.WithCountOnly())
	switch {
	case err != nil:
		t.Errorf("restart %d: read at the compaction revision %d: %v", cycle, h.compacted, err)
	case resp.Count != h.compactedKeys:
		t.Errorf("restart %d: %d keys at the compaction revision %d, want %d", cycle, resp.Count, h.compacted, h.compactedKeys)
	}
}

// afterRestart checks that a write right after a restart gets the next
// revision, above every acknowledged one. Then it revokes the lease granted
// after the previous restart (deleting its key) and grants a new one with a
// key attached, for the next restart to find.
func (h *crashHistory) afterRestart(t *testing.T, cli *clientv3.Client, cycle int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
	defer cancel()
	o := op{kind: "probe", puts: map[string]string{fmt.Sprintf("probe/%d", cycle): "after restart " + strconv.Itoa(cycle)}}
	resp, err := cli.Txn(ctx).Then(o.ops()...).Commit()
	if err != nil {
		t.Fatalf("restart %d: first write: %v", cycle, err)
	}
	switch o.rev = resp.Header.Revision; {
	case h.foreign == "" && o.rev != h.base+1:
		t.Errorf("restart %d: first write got revision %d, want %d", cycle, o.rev, h.base+1)
	case o.rev <= h.base: // merges from other sites may come first
		t.Errorf("restart %d: first write got revision %d, want more than %d", cycle, o.rev, h.base)
	}
	h.probe.ack(o)

	if h.lease != 0 {
		resp, err := cli.Revoke(ctx, h.lease)
		if err != nil {
			t.Fatalf("restart %d: revoke lease %x: %v", cycle, h.lease, err)
		}
		h.probe.ack(op{kind: "revoke", dels: []string{h.leaseKey}, rev: resp.Header.Revision})
	}
	grant, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatalf("restart %d: grant lease: %v", cycle, err)
	}
	h.lease, h.leaseKey = grant.ID, fmt.Sprintf("lease/%d", cycle)
	put, err := cli.Put(ctx, h.leaseKey, "leased", clientv3.WithLease(grant.ID))
	if err != nil {
		t.Fatalf("restart %d: put with lease: %v", cycle, err)
	}
	h.probe.ack(op{kind: "put", puts: map[string]string{h.leaseKey: "leased"}, rev: put.Header.Revision})
}

// verifyLease checks that the lease granted after the previous restart
// survived the kill with its TTL and key.
func (h *crashHistory) verifyLease(ctx context.Context, t *testing.T, cli *clientv3.Client, cycle int) {
	t.Helper()
	ttl, err := cli.TimeToLive(ctx, h.lease, clientv3.WithAttachedKeys())
	if err != nil {
		t.Errorf("restart %d: lease %x: %v", cycle, h.lease, err)
		return
	}
	var keys []string
	for _, k := range ttl.Keys {
		keys = append(keys, string(k))
	}
	if ttl.GrantedTTL != 600 || ttl.TTL <= 0 || !slices.Equal(keys, []string{h.leaseKey}) {
		t.Errorf("restart %d: lease %x: granted TTL %d, TTL %d, keys %q; want 600, > 0, [%s]",
			cycle, h.lease, ttl.GrantedTTL, ttl.TTL, keys, h.leaseKey)
	}
}

// history returns the events of revisions (from, to], by revision.
func history(ctx context.Context, cli *clientv3.Client, from, to int64) (map[int64][]*mvccpb.Event, error) {
	byRev := map[int64][]*mvccpb.Event{}
	if to <= from {
		return byRev, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(from+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return nil, fmt.Errorf("watch history from %d: %w", from+1, err)
		}
		// A revision's events all come in one response.
		for _, ev := range resp.Events {
			byRev[ev.Kv.ModRevision] = append(byRev[ev.Kv.ModRevision], ev)
		}
		if n := len(resp.Events); n > 0 && resp.Events[n-1].Kv.ModRevision >= to {
			return byRev, nil
		}
	}
	return nil, fmt.Errorf("watch history from %d: ended before revision %d: %w", from+1, to, ctx.Err())
}

// changes renders events the way op.changes renders a write.
func changes(evs []*mvccpb.Event) string {
	var cs []string
	for _, ev := range evs {
		if ev.Type == mvccpb.DELETE {
			cs = append(cs, "del "+string(ev.Kv.Key))
		} else {
			cs = append(cs, "put "+string(ev.Kv.Key)+"="+string(ev.Kv.Value))
		}
	}
	slices.Sort(cs)
	return strings.Join(cs, " ")
}

// op is one write as a client sent it.
type op struct {
	kind string
	puts map[string]string
	dels []string
	rev  int64 // of its acknowledgement, or where the history shows it
}

func (o op) changes() string {
	var cs []string
	for k, v := range o.puts {
		cs = append(cs, "put "+k+"="+v)
	}
	for _, k := range o.dels {
		cs = append(cs, "del "+k)
	}
	slices.Sort(cs)
	return strings.Join(cs, " ")
}

func (o op) String() string { return o.kind + " " + o.changes() }

// ops are the write's operations, as a Txn's Then branch.
func (o op) ops() []clientv3.Op {
	var ops []clientv3.Op
	for k, v := range o.puts {
		ops = append(ops, clientv3.OpPut(k, v))
	}
	for _, k := range o.dels {
		ops = append(ops, clientv3.OpDelete(k))
	}
	return ops
}

type keyState struct {
	value string
	mod   int64
}

// writer is one client goroutine. It alone writes its keys, so it knows
// their values and mod revisions.
type writer struct {
	id      int
	rng     *rand.Rand
	seq     int
	keys    map[string]keyState // live keys, as acknowledged
	live    []string            // the same keys, to pick from
	acked   []op                // acknowledged since the last verify
	pending *op                 // the write a failure interrupted
	lastRev int64
}

func newWriter(id int, rng *rand.Rand) *writer {
	return &writer{id: id, rng: rng, keys: map[string]keyState{}}
}

// run writes until ctx ends or a write fails; a failure before the kill is
// an error.
func (w *writer) run(ctx context.Context, t *testing.T, cli *clientv3.Client, dead func() bool, acks *atomic.Int64) {
	for ctx.Err() == nil {
		o, err := w.write(ctx, cli)
		if err != nil {
			if !dead() {
				t.Errorf("writer %d: %s failed before the kill: %v", w.id, o, err)
			}
			w.pending = &o
			return
		}
		if o.rev <= w.lastRev {
			t.Errorf("writer %d: %s acknowledged at revision %d, after one at %d", w.id, o, o.rev, w.lastRev)
		}
		w.lastRev = o.rev
		w.ack(o)
		acks.Add(1)
	}
}

// write sends one seeded random write: a put of a new key, an overwrite that
// checks the previous value, a Txn guarded by a mod revision that puts two
// keys, or a delete.
func (w *writer) write(ctx context.Context, cli *clientv3.Client) (op, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	w.seq++
	val := fmt.Sprintf("w%d-%d-%s", w.id, w.seq, strings.Repeat("v", w.rng.IntN(200)))
	newKey := fmt.Sprintf("crash/w%02d/%06d", w.id, w.seq)
	n := w.rng.IntN(100)
	if len(w.live) == 0 {
		n = 0
	}
	old := ""
	if len(w.live) > 0 {
		old = w.live[w.rng.IntN(len(w.live))]
	}
	switch {
	case n < 55:
		o := op{kind: "put", puts: map[string]string{newKey: val}}
		resp, err := cli.Put(ctx, newKey, val)
		if err != nil {
			return o, err
		}
		o.rev = resp.Header.Revision
		return o, nil
	case n < 70:
		o := op{kind: "overwrite", puts: map[string]string{old: val}}
		resp, err := cli.Put(ctx, old, val, clientv3.WithPrevKV())
		if err != nil {
			return o, err
		}
		o.rev = resp.Header.Revision
		if s := w.keys[old]; resp.PrevKv == nil || string(resp.PrevKv.Value) != s.value || resp.PrevKv.ModRevision != s.mod {
			return o, fmt.Errorf("previous value %v, want %q at mod revision %d", resp.PrevKv, s.value, s.mod)
		}
		return o, nil
	case n < 85:
		o := op{kind: "txn", puts: map[string]string{old: val, newKey: val}}
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(old), "=", w.keys[old].mod)).
			Then(o.ops()...).
			Commit()
		if err != nil {
			return o, err
		}
		o.rev = resp.Header.Revision
		if !resp.Succeeded {
			return o, fmt.Errorf("compare mod_revision(%s) = %d failed", old, w.keys[old].mod)
		}
		return o, nil
	default:
		o := op{kind: "delete", dels: []string{old}}
		resp, err := cli.Delete(ctx, old)
		if err != nil {
			return o, err
		}
		o.rev = resp.Header.Revision
		if resp.Deleted != 1 {
			return o, fmt.Errorf("deleted %d keys, want 1", resp.Deleted)
		}
		return o, nil
	}
}

// ack records an acknowledged write.
func (w *writer) ack(o op) {
	w.apply(o)
	w.acked = append(w.acked, o)
}

// apply records a write's effect on the writer's keys.
func (w *writer) apply(o op) {
	for k, v := range o.puts {
		if _, ok := w.keys[k]; !ok {
			w.live = append(w.live, k)
		}
		w.keys[k] = keyState{value: v, mod: o.rev}
	}
	for _, k := range o.dels {
		delete(w.keys, k)
		w.live = slices.DeleteFunc(w.live, func(l string) bool { return l == k })
	}
}
