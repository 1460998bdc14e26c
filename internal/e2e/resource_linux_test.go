package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The bounds TestResourceBounds asserts. They are on the site's live Go heap
// (go_gc_heap_live_bytes, what each garbage collection found reachable: where
// the site would buffer what a client does not read — watch events, gRPC
// sends, sync batches), not on the heap in use, which also counts garbage and
// so follows the collector's pacing (a CI run saw an unpaged list "cost" 11x
// its values in use, 4x of it live). The live heap grows from phase to phase
// of the same load anyway (caches, the key index), so a bad client's cost is
// the growth with it beyond the growth of the phase before. A reader that stops reading may cost at most a quarter
// of what was written meanwhile (a site buffering it would cost all of it),
// or heapNoise, what the heap's peak varies by between phases of the same
// load (the garbage collector's timing) on a shared 2-core machine;
// an unpaged list at most listFactor times the values it returns. The median
// latency of a well-behaved client may grow at most by latencyFactor, plus
// latencySlack for the scheduling noise of a shared machine. Resident memory
// is reported, not bounded: it counts badger's mapped files.
const (
	heapNoise     = 128 << 20 // the heap in use exceeded 64 MiB by noise alone (88 MiB, stalled watchers, in CI)
	listFactor    = 8
	latencyFactor = 3
	latencySlack  = 25 * time.Millisecond
	phase         = 8 * time.Second // each measured phase of load
	loadWriters   = 8
	loadValue     = 4 << 10 // bytes a write of the load puts: a Kubernetes object
)

// TestResourceBounds runs `rhizome serve` under a steady write load and
// adds one misbehaving client at a time, measuring the site's resident
// memory (/proc/PID/status) and a well-behaved client's latency against the
// same load without it:
//
//   - watchers that stop reading (gRPC watch streams never received from,
//     on clientv3's connections): the written volume is several times the
//     bound, so a site that buffered their events would exceed it;
//   - clients listing everything unpaged, over and over;
//   - a peer site that stops reading (SIGSTOPped): afterwards it resumes and
//     the two converge.
func TestResourceBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	bin := rhizomeBuild.Path(t)
	t.Run("stalled-watchers", func(t *testing.T) {
		p := startRhizome(t, bin, t.TempDir())
		measureBadClient(t, p, stalledBound(4), func(t *testing.T) func() {
			for i := range 4 {
				stallWatcher(t, p.ep, i)
			}
			return func() {}
		})
	})
	t.Run("unpaged-lists", func(t *testing.T) {
		p := startRhizome(t, bin, t.TempDir())
		listBytes := fillForList(t, p.ep, 10000, 2<<10)
		measureBadClient(t, p, func(phaseResult) int64 { return listFactor * listBytes }, func(t *testing.T) func() {
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			var lists atomic.Int64
			for range 1 {
				cli := mustClient(t, p.ep)
				wg.Go(func() {
					for ctx.Err() == nil {
						if resp, err := cli.Get(ctx, "", clientv3.WithPrefix()); err == nil && resp.Count > 0 {
							lists.Add(1)
						}
					}
				})
			}
			return func() {
				cancel()
				wg.Wait()
				t.Logf("%d unpaged lists of everything (%d MiB of values each) during the phase", lists.Load(), listBytes>>20)
				if lists.Load() == 0 {
					t.Error("no unpaged list completed")
				}
			}
		})
	})
	t.Run("stalled-peer", func(t *testing.T) {
		a := newPeerSite(t, "a", "")
		pa := startRhizome(t, bin, t.TempDir(), a.args()...)
		b := newPeerSite(t, "b", a.gossip)
		pb := startRhizome(t, bin, t.TempDir(), b.args()...)
		measureBadClient(t, pa, stalledBound(1), func(t *testing.T) func() {
			if err := syscall.Kill(pb.PID(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			return func() {}
		})
		if err := syscall.Kill(pb.PID(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		keys := sameState(t, 2*time.Minute, mustClient(t, pa.ep), mustClient(t, pb.ep))
		t.Logf("resumed, the peer converged on %d keys", keys)
	})
}

// stalledBound is the heap a phase may cost for n readers that stopped
// reading: a quarter of what they would buffer, or heapNoise.
func stalledBound(n int) func(phaseResult) int64 {
	return func(r phaseResult) int64 { return max(heapNoise, r.written*int64(n)/4) }
}

// measureBadClient runs the write load on p three times for a phase each:
// to warm up, as the baseline, and with the bad client that bad starts (it
// returns its stop). It asserts the bounds on the live Go heap (bound, of the
// phase with the bad client) and on latency.
func measureBadClient(t *testing.T, p *proc, bound func(phaseResult) int64, bad func(t *testing.T) func()) {
	t.Helper()
	warm := runPhase(t, p)
	base := runPhase(t, p)
	stop := bad(t)
	with := runPhase(t, p)
	stop()
	t.Logf("warm-up: %s", warm)
	t.Logf("baseline: %s", base)
	t.Logf("with the bad client: %s", with)
	natural := max(0, base.peakLive-warm.peakLive)
	extra := with.peakLive - base.peakLive - natural
	limit := bound(with)
	t.Logf("live Go heap the bad client cost: %d MiB (bound %d MiB; heap in use: %d MiB)", extra>>20, limit>>20, (with.peakHeap-base.peakHeap)>>20)
	if extra > limit {
		t.Errorf("the bad client cost %d MiB of live Go heap beyond the load's own growth (%d MiB), above the bound %d MiB", extra>>20, natural>>20, limit>>20)
	}
	if limit := latencyFactor*base.p50 + latencySlack; with.p50 > limit {
		t.Errorf("well-behaved client's median latency %v with the bad client, above %d × %v + %v", with.p50, latencyFactor, base.p50, latencySlack)
	}
}

// phaseResult is what one phase of load measured.
type phaseResult struct {
	peakRSS  int64 // bytes
	peakHeap int64 // bytes of Go heap in use
	peakLive int64 // bytes of Go heap live at a garbage collection
	written  int64 // bytes of values acknowledged
	p50, p99 time.Duration
	probes   int
}

func (r phaseResult) String() string {
	return fmt.Sprintf("peak RSS %d MiB, peak Go heap %d MiB in use, %d MiB live, %d MiB written, well-behaved client's latency median %v, p99 %v over %d requests",
		r.peakRSS>>20, r.peakHeap>>20, r.peakLive>>20, r.written>>20, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.probes)
}

// runPhase writes for a phase with loadWriters clients (new keys of
// loadValue bytes, overwritten round a keyspace), while a probe client times
// a small put and get in turn and the site's RSS is sampled.
func runPhase(t *testing.T, p *proc) phaseResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), phase)
	defer cancel()
	var (
		wg      sync.WaitGroup
		written atomic.Int64
		res     phaseResult
	)
	value := strings.Repeat("x", loadValue)
	for w := range loadWriters {
		cli := mustClient(t, p.ep)
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := cli.Put(ctx, fmt.Sprintf("load/%d/%04d", w, i%500), value); err == nil {
					written.Add(loadValue)
				} else if ctx.Err() == nil {
					t.Errorf("load writer %d: %v", w, err)
					return
				}
			}
		})
	}
	var lat []time.Duration
	wg.Go(func() {
		cli := mustClient(t, p.ep)
		for i := 0; ctx.Err() == nil; i++ {
			began := time.Now()
			_, err := cli.Put(ctx, "probe", strconv.Itoa(i))
			if err == nil {
				_, err = cli.Get(ctx, "probe")
			}
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("probe: %v", err)
				}
				return
			}
			lat = append(lat, time.Since(began))
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := processRSS(p.PID()); err == nil {
				res.peakRSS = max(res.peakRSS, rss)
			}
			if inuse, live, err := goHeap(ctx, p.ep); err == nil {
				res.peakHeap = max(res.peakHeap, inuse)
				res.peakLive = max(res.peakLive, live)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatal("the probe completed no request in the phase")
	}
	res.written, res.probes = written.Load(), len(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return res
}

// processRSS reads a process's resident set size from /proc.
func processRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// goHeap reads the Go heap in use and live from the site's /metrics
// (go_memstats_heap_inuse_bytes, go_gc_heap_live_bytes).
func goHeap(ctx context.Context, ep string) (inuse, live int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ep+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		var into *int64
		switch {
		case !ok:
			continue
		case name == "go_memstats_heap_inuse_bytes":
			into = &inuse
		case name == "go_gc_heap_live_bytes":
			into = &live
		default:
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/metrics: %s: %w", name, err)
		}
		*into = int64(f)
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("/metrics: no go_memstats_heap_inuse_bytes or go_gc_heap_live_bytes")
	}
	return inuse, live, sc.Err()
}

// stallWatcher opens a watch of every key on its own clientv3 connection
// and never reads it: the site's sends to it block once gRPC's flow-control
// windows are full.
func stallWatcher(t *testing.T, ep string, i int) {
	t.Helper()
	cli := mustClient(t, ep)
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(t.Context())
	if err != nil {
		t.Fatalf("stalled watcher %d: %v", i, err)
	}
	req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte{0}, RangeEnd: []byte{0}, PrevKv: true, ProgressNotify: true,
	}}}
	if err := stream.Send(req); err != nil {
		t.Fatalf("stalled watcher %d: create: %v", i, err)
	}
	// Nothing is ever received: the stream ends with the test's context.
}

// fillForList writes n keys of size bytes (in Txns of 100 puts) and
// returns the bytes of values a list of everything returns.
func fillForList(t *testing.T, ep string, n, size int) int64 {
	t.Helper()
	cli := mustClient(t, ep)
	value := strings.Repeat("l", size)
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("list/%06d", j), value))
		}
		ctx, cancel := context.WithTimeout(t.Context(), opTimeout)
		_, err := cli.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			t.Fatalf("fill for the list: %v", err)
		}
	}
	return int64(n) * int64(size)
}
