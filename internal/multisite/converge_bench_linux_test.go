package multisite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// BenchmarkConvergeAfterPartition cuts three sites apart, writes 10,000 changes
// at each (set RHIZOME_MULTISITE_CHANGES for another count), heals every link at
// once and measures until every site holds every change. Each change creates its
// own key, so a site holds all 30,000 changes (its version vector equals the
// others') exactly when its watch has delivered the 20,000 remote creates; after
// that the benchmark also checks that `get --prefix` is identical everywhere.
//
// The sites run the defaults users get: WAN gossip timing, under which a cut as
// long as the writes (about ten seconds) goes unnoticed by membership, so the open
// sync streams resume when TCP next retransmits; and a 2s anti-entropy interval.
//
// Metrics: heal-ms is healing to convergence (the timed section), first-ms is
// healing to the first remote change arriving at the slowest site, apply-ms is
// that first arrival to the last, cut-s how long the cut lasted and writes/s the
// client write rate during it. Set RHIZOME_MULTISITE_PERF to a file name to
// record the sites' CPU profile from healing to convergence with perf.
func BenchmarkConvergeAfterPartition(b *testing.B) {
	changes := 10000
	if v := os.Getenv("RHIZOME_MULTISITE_CHANGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RHIZOME_MULTISITE_CHANGES=%q: want a positive count", v)
		}
		changes = n
	}
	var sum convergeResult
	for range b.N {
		r := convergeOnce(b, changes)
		sum.heal += r.heal
		sum.first += r.first
		sum.apply += r.apply
		sum.cut += r.cut
		sum.writeRate += r.writeRate
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((sum.heal / n).Milliseconds()), "heal-ms")
	b.ReportMetric(float64((sum.first / n).Milliseconds()), "first-ms")
	b.ReportMetric(float64((sum.apply / n).Milliseconds()), "apply-ms")
	b.ReportMetric((sum.cut / n).Seconds(), "cut-s")
	b.ReportMetric(sum.writeRate/float64(b.N), "writes/s")
	b.Logf("anti-entropy interval %v, %d changes per site, load: %s", antiEntropy, changes, loadAvg())
}

// antiEntropy is the interval the benchmarks run sites with: the default.
const antiEntropy = 2 * time.Second

type convergeResult struct {
	heal, first, apply, cut time.Duration
	writeRate               float64
}

func convergeOnce(b *testing.B, changes int) convergeResult {
	b.StopTimer()
	const sites = 3
	c := startCluster(b, clusterConfig{Sites: sites, AntiEntropyInterval: antiEntropy})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var watches []*watchLog
	for _, s := range c.Sites {
		w, err := startWatch(ctx, s.Client, "/conv/")
		if err != nil {
			b.Fatal(err)
		}
		watches = append(watches, w)
	}

	for i := range sites {
		c.Net.Cut(i)
	}
	cutAt := time.Now()
	if err := writeAll(ctx, c, changes); err != nil {
		b.Fatal(err)
	}
	var r convergeResult
	r.writeRate = float64(sites*changes) / time.Since(cutAt).Seconds()
	for i, s := range c.Sites {
		res, err := s.Client.Get(ctx, "/conv/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			b.Fatal(err)
		}
		if res.Count != int64(changes) {
			b.Fatalf("s%d holds %d keys while cut off, want its own %d", i, res.Count, changes)
		}
	}
	detected := "undetected"
	if names, err := c.Members(ctx, 0); err == nil && len(names) < sites {
		detected = "detected"
	}

	stopProfile := profileSites(b, c)
	healAt := time.Now()
	r.cut = healAt.Sub(cutAt)
	b.StartTimer()
	for i := range sites {
		c.Net.Heal(i)
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 2*time.Minute)
	err := poll(waitCtx, 10*time.Millisecond, func() (bool, string) {
		var state []string
		done := true
		for j, w := range watches {
			n, err := w.Len() // the watch covers /conv/ only
			if err != nil {
				return false, err.Error()
			}
			done = done && n == sites*changes
			state = append(state, fmt.Sprintf("s%d holds %d/%d", j, n, sites*changes))
		}
		return done, strings.Join(state, ", ")
	})
	cancelWait()
	b.StopTimer()
	stopProfile()
	if err != nil {
		members := ""
		for i := range sites {
			names, _ := c.Members(ctx, i)
			members += fmt.Sprintf(" s%d sees %v;", i, names)
		}
		b.Fatalf("no convergence within 2 minutes of healing (cut %v, %s by gossip);%s %v", r.cut.Round(time.Second), detected, members, err)
	}
	var last time.Time
	for j, w := range watches {
		events, _ := w.Events("/conv/")
		own := fmt.Sprintf("/conv/s%d/", j)
		var firstRemote time.Time
		for _, e := range events {
			if !strings.HasPrefix(e.Key, own) && !e.At.Before(healAt) {
				firstRemote = e.At
				break
			}
		}
		if firstRemote.IsZero() {
			b.Fatalf("s%d: no remote change arrived after healing", j)
		}
		r.first = max(r.first, firstRemote.Sub(healAt))
		last = maxTime(last, events[len(events)-1].At)
	}
	r.heal = last.Sub(healAt)
	r.apply = r.heal - r.first

	// Converged means identical data, not only every change delivered.
	var ref map[string]string
	for i, s := range c.Sites {
		st, err := getState(ctx, s.Client, "/conv/")
		if err != nil {
			b.Fatal(err)
		}
		if len(st) != sites*changes {
			b.Fatalf("s%d holds %d keys, want %d", i, len(st), sites*changes)
		}
		if i == 0 {
			ref = st
		} else if !maps.Equal(st, ref) {
			b.Fatalf("s%d differs from s0: %s", i, diff(ref, st))
		}
	}
	b.Logf("cut %v (%s by gossip), %.0f writes/s; healed: first remote change after %v, all %d after %v",
		r.cut.Round(time.Millisecond), detected, r.writeRate, r.first.Round(time.Millisecond), sites*changes, r.heal.Round(time.Millisecond))
	return r
}

// profileSites records the sites' CPU profile with perf until the returned
// function is called, when RHIZOME_MULTISITE_PERF names an output file (read it
// with `perf report -i FILE --no-children --sort symbol`).
func profileSites(b *testing.B, c *cluster) func() {
	out := os.Getenv("RHIZOME_MULTISITE_PERF")
	if out == "" {
		return func() {}
	}
	var pids []string
	for _, s := range c.Sites {
		pids = append(pids, strconv.Itoa(s.proc.PID())) // ip netns exec execs rhizome in place
	}
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path = "perf", "perf"
	cfg.Args = []string{"record", "-F", "999", "-g", "-o", out, "-p", strings.Join(pids, ",")}
	cfg.LogPath = filepath.Join(b.TempDir(), "perf.log")
	perf, err := testbin.StartProcess(cfg)
	if err != nil {
		b.Fatalf("multisite: %v", err)
	}
	return func() {
		// perf writes its file on SIGTERM; the file tells whether it worked.
		if err := perf.Stop(); err != nil {
			b.Logf("multisite: %v", err)
		}
	}
}

// writeAll writes changes new keys at every site at once, a few clients' worth
// of concurrency per site.
func writeAll(ctx context.Context, c *cluster, changes int) error {
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, len(c.Sites)*writers)
	for i, s := range c.Sites {
		for w := range writers {
			wg.Go(func() {
				for n := w; n < changes; n += writers {
					key := fmt.Sprintf("/conv/s%d/%05d", i, n)
					val := fmt.Sprintf(`{"metadata":{"name":"obj-%05d","site":"s%d"},"spec":{"replicas":%d,"image":"registry.example/app:v1"}}`, n, i, n%5)
					if _, err := s.Client.Put(ctx, key, val); err != nil {
						errs <- fmt.Errorf("put %s at s%d: %w", key, i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// loadAvg returns the machine's 1, 5 and 15 minute load averages, as uptime
// prints them: the machine is shared, and figures mean little without it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
