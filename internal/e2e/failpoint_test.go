package e2e

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/testbin"
	"github.com/rhizome-kv/rhizome/store"
)

// failpointCycles is how many failpoint crashes each point gets on one data
// directory.
const failpointCycles = 2

// failpointEnv arms point to crash the process on its Nth pass.
func failpointEnv(point string, n int) []string {
	return []string{fmt.Sprintf("RHIZOME_FAILPOINTS=%s=crash@%d", point, n)}
}

// awaitFailpoint is a crasher's crash for a process armed with a failpoint:
// it waits for the process to end by itself and checks that the failpoint
// ended it.
func awaitFailpoint(t *testing.T, point string) func(p *proc) string {
	return func(p *proc) string {
		select {
		case <-p.Done():
		case <-time.After(2 * time.Minute):
			t.Errorf("failpoint %s: not reached in 2 minutes of load", point)
			p.kill()
			return "killed: failpoint not reached"
		}
		if log, _ := p.Log(); !strings.Contains(log, "failpoint "+point+": crashing") {
			t.Errorf("the process ended, but not at failpoint %s:\n%s", point, p.LogTail(20))
		}
		return "crashed at failpoint " + point
	}
}

// seedFor derives a sub-test's seed from the run's seed and a name.
func seedFor(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return seed ^ h.Sum64()
}

// TestFailpointCrash crashes the real `rhizome serve` process under
// concurrent write load at each point of the commit path a single site
// passes (store.Failpoint*: before and after the badger commit, before the
// events are published to watchers), restarts it on the same data
// directory, and checks as TestCrashSafety does: no acknowledged write lost,
// in-flight writes all or nothing, revisions without gaps, the store
// reopened. The crash is the process SIGKILLing itself at the point
// (RHIZOME_FAILPOINTS), on a seeded pass number.
func TestFailpointCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	seed := crashSeed(t)
	for _, point := range []string{store.FailpointBeforeCommit, store.FailpointAfterCommit, store.FailpointBeforePublish} {
		t.Run(strings.ReplaceAll(point, "/", "-"), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seedFor(seed, point), 0))
			start := func(t *testing.T, bin, dataDir string, _ int) *proc {
				// A commit is a batch of writes: a few hundred batches in.
				return startRhizomeEnv(t, bin, dataDir, failpointEnv(point, 150+rng.IntN(300)))
			}
			crashRun{
				seed: seed, cycles: failpointCycles, start: start,
				crasher: crasher{crash: awaitFailpoint(t, point), selfInflicted: true},
			}.run(t)
		})
	}
}

// peerSite is one site of a real two-process cluster: its peer and gossip
// addresses stay the same across restarts, as a real site's do.
type peerSite struct {
	name, peer, gossip, join string
}

func newPeerSite(t *testing.T, name, join string) peerSite {
	return peerSite{name: name, peer: testbin.Addr(t), gossip: testbin.Addr(t), join: join}
}

// args are the site's flags: LAN gossip and fast anti-entropy, so a test's
// sync is quick.
func (s peerSite) args() []string {
	a := []string{"--name", s.name, "--listen-peer-urls", "http://" + s.peer, "--gossip-addr", s.gossip,
		"--gossip-lan", "--anti-entropy-interval", "200ms"}
	if s.join != "" {
		a = append(a, "--join", s.join)
	}
	return a
}

// remoteWriter puts keys under prefix at a site until halted, while not
// paused: the changes another site merges in.
type remoteWriter struct {
	prefix string
	stop   context.CancelFunc
	done   sync.WaitGroup
	gate   sync.Mutex // held across each put
	paused atomic.Bool
	sent   atomic.Int64 // puts sent, acknowledged or not
	acked  atomic.Int64
}

func startRemoteWriter(t *testing.T, cli *clientv3.Client, prefix string) *remoteWriter {
	ctx, cancel := context.WithCancel(t.Context())
	w := &remoteWriter{prefix: prefix, stop: cancel}
	w.done.Go(func() {
		for i := 0; ctx.Err() == nil; {
			if w.paused.Load() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			w.gate.Lock()
			key := fmt.Sprintf("%s%06d", prefix, i%2000) // new keys, then overwrites
			w.sent.Add(1)
			_, err := cli.Put(ctx, key, fmt.Sprintf("v%d", i))
			w.gate.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("remote writer: put %s: %v", key, err)
				}
				return
			}
			w.acked.Add(1)
			i++
		}
	})
	return w
}

// pause stops the writes and waits for the one under way.
func (w *remoteWriter) pause() {
	w.paused.Store(true)
	w.gate.Lock()
	defer w.gate.Unlock()
}

func (w *remoteWriter) resume() { w.paused.Store(false) }

// halt stops the writer and waits for it.
func (w *remoteWriter) halt() {
	w.stop()
	w.done.Wait()
}

// TestFailpointCrashMidSync crashes a site of a real two-site cluster while
// it merges the other site's changes (store.FailpointApplyRemote), under
// write load at both sites, several times on one data directory: the
// crashed site's own acknowledged writes survive as TestCrashSafety checks
// them, it reopens each time, and both sites converge to the same keys and
// values.
func TestFailpointCrashMidSync(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seedFor(seed, store.FailpointApplyRemote), 0))
	bin := rhizomeBuild.Path(t)
	a := newPeerSite(t, "a", "")
	pa := startRhizome(t, bin, t.TempDir(), a.args()...)
	ca := mustClient(t, pa.ep)
	remote := startRemoteWriter(t, ca, "remote/")
	defer remote.halt()
	for remote.acked.Load() < 200 && !t.Failed() {
		time.Sleep(10 * time.Millisecond)
	}
	b := newPeerSite(t, "b", a.gossip)
	start := func(t *testing.T, bin, dataDir string, cycle int) *proc {
		// The remote writes pause while b starts and is checked: it catches
		// up with at most what a has sent, then crashes a seeded number of
		// merges into the load.
		remote.pause()
		if cycle == failpointCycles {
			return startRhizome(t, bin, dataDir, b.args()...) // the last start: no crash
		}
		n := int(remote.sent.Load()) + 20 + rng.IntN(300)
		return startRhizomeEnv(t, bin, dataDir, failpointEnv(store.FailpointApplyRemote, n), b.args()...)
	}
	await := awaitFailpoint(t, store.FailpointApplyRemote)
	crash := func(p *proc) string {
		remote.resume()
		return await(p)
	}
	converge := func(t *testing.T, cb *clientv3.Client) {
		remote.halt()
		keys := sameState(t, time.Minute, ca, cb)
		t.Logf("the sites converged on %d keys; site a acknowledged %d writes of its own", keys, remote.acked.Load())
	}
	crashRun{
		seed: seed, cycles: failpointCycles, start: start, foreign: "remote/", final: converge,
		crasher: crasher{crash: crash, selfInflicted: true},
	}.run(t)
}

// sameState waits until every client reads the same keys and values, and
// returns how many keys that is. Failing, it reports the last look at which
// every client answered, and the first key where they differ.
func sameState(t *testing.T, timeout time.Duration, clis ...*clientv3.Client) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last [][]string // the last look at which every client answered
	for ctx.Err() == nil {
		var states [][]string
		for _, c := range clis {
			resp, err := c.Get(ctx, "", clientv3.WithPrefix())
			if err != nil {
				break
			}
			var kvs []string // revisions are each site's own
			for _, kv := range resp.Kvs {
				kvs = append(kvs, string(kv.Key)+"="+string(kv.Value))
			}
			states = append(states, kvs)
		}
		if len(states) == len(clis) {
			if !slices.ContainsFunc(states[1:], func(s []string) bool { return !slices.Equal(s, states[0]) }) {
				return len(states[0])
			}
			last = states
		}
		time.Sleep(200 * time.Millisecond)
	}
	if last == nil {
		t.Fatalf("the sites did not converge in %v: no look at which every site answered", timeout)
	}
	var sizes []int
	for _, s := range last {
		sizes = append(sizes, len(s))
	}
	t.Fatalf("the sites did not converge in %v: they hold %v keys; %s", timeout, sizes, firstDifference(last))
	return 0
}

// firstDifference names the first entry (key=value) where a state differs from
// the first one.
func firstDifference(states [][]string) string {
	for i, s := range states[1:] {
		for j := range max(len(s), len(states[0])) {
			a, b := "(none)", "(none)"
			if j < len(states[0]) {
				a = states[0][j]
			}
			if j < len(s) {
				b = s[j]
			}
			if a != b {
				return fmt.Sprintf("entry %d: site 0 holds %.80q, site %d %.80q", j, a, i+1, b)
			}
		}
	}
	return "no difference"
}

// TestFailpointCrashMidSnapshot crashes a new site joining a real two-site
// cluster in the middle of installing the snapshot it bootstraps from (the
// two sites have collected the change log it would need;
// store.FailpointSnapshotInstall), while the others take writes: restarted,
// it reopens, bootstraps again and the three converge.
func TestFailpointCrashMidSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	bin := rhizomeBuild.Path(t)
	a := newPeerSite(t, "a", "")
	b := newPeerSite(t, "b", a.gossip)
	pa := startRhizome(t, bin, t.TempDir(), a.args()...)
	pb := startRhizome(t, bin, t.TempDir(), b.args()...)
	ca, cb := mustClient(t, pa.ep), mustClient(t, pb.ep)
	remote := startRemoteWriter(t, ca, "remote/")
	defer remote.halt()
	for remote.acked.Load() < 2000 && !t.Failed() {
		time.Sleep(10 * time.Millisecond)
	}
	c := newPeerSite(t, "c", a.gossip)
	dataDir := t.TempDir()
	crashing := startCrashing(t, bin, dataDir, failpointEnv(store.FailpointSnapshotInstall, 1), c.args()...)
	awaitFailpoint(t, store.FailpointSnapshotInstall)(crashing)
	if t.Failed() {
		return
	}
	began := time.Now()
	pc := startRhizome(t, bin, dataDir, c.args()...)
	restart := time.Since(began)
	cc := mustClient(t, pc.ep)
	remote.halt()
	keys := sameState(t, time.Minute, ca, cb, cc)
	t.Logf("c crashed mid-install of its first snapshot; restarted in %v, then the three converged on %d keys (site a acknowledged %d writes)",
		restart.Round(time.Millisecond), keys, remote.acked.Load())
}

// startCrashing starts `rhizome serve` for a crash expected before it may
// answer: it does not wait for it to serve, and kills it when the test ends.
func startCrashing(t *testing.T, bin, dataDir string, env []string, extra ...string) *proc {
	t.Helper()
	client := "http://" + testbin.Addr(t)
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path = "rhizome", bin
	cfg.Args = append([]string{"serve", "--data-dir", dataDir, "--listen-client-urls", client, "--advertise-client-urls", client}, extra...)
	cfg.LogPath = filepath.Join(t.TempDir(), "rhizome.log")
	cfg.Env = append(os.Environ(), env...)
	tp, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	t.Cleanup(tp.Kill)
	return &proc{name: "rhizome", ep: strings.TrimPrefix(client, "http://"), Process: tp}
}
