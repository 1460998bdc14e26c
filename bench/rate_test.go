package bench

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// Even spacing puts request n at n/rate; Poisson arrivals are reproducible
// from the seed, never go back, and average 1/rate apart.
func TestRateSchedule(t *testing.T) {
	even := schedule(100, nil)
	for n := range 5 {
		if got, want := even(), time.Duration(n)*10*time.Millisecond; got != want {
			t.Fatalf("even: request %d at %v, want %v", n, got, want)
		}
	}
	draw := func(seed uint64, n int) []time.Duration {
		next := schedule(100, rand.New(rand.NewPCG(seed, 1)))
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = next()
		}
		return out
	}
	a, b, c := draw(1, 20000), draw(1, 20000), draw(2, 20000)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("poisson: the same seed must give the same schedule, another seed another")
	}
	if a[0] != 0 || !slices.IsSorted(a) {
		t.Fatalf("poisson: the schedule must start at 0 and never go back: %v", a[:5])
	}
	if mean := a[len(a)-1] / time.Duration(len(a)-1); math.Abs(float64(mean-10*time.Millisecond)) > 0.05*float64(10*time.Millisecond) {
		t.Fatalf("poisson: mean gap %v, want 10ms ±5%%", mean)
	}
}

// observation is one request as openLoop.run reported it.
type observation struct {
	at, lat time.Duration // intended start from the run's start; latency
	err     error
}

// A fixed-rate run on a fake clock: 100 requests are due in a second; the
// first three start and hang, so the cap of three holds back the other 97,
// each counted. When the three answer at 1.5 s, their latencies run from
// their intended starts (0, 10 and 20 ms), not from when they were sent,
// and the one that failed is counted as failed.
func TestOpenLoopCapAndLatency(t *testing.T) {
	fc := clockwork.NewFakeClock()
	start := fc.Now()
	l := openLoop{rate: 100, maxOutstanding: 3, timeout: time.Minute, clock: fc}
	release := make(chan struct{})
	var mu sync.Mutex
	var started []int64
	var seen []observation
	held := make(chan struct{}, 100)
	do := func(ctx context.Context, n int64) error {
		mu.Lock()
		started = append(started, n)
		mu.Unlock()
		<-release
		if n == 1 {
			return errors.New("refused")
		}
		return nil
	}
	observe := func(intended time.Time, lat time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, observation{intended.Sub(start), lat, err})
		if errors.Is(err, errNotStarted) {
			held <- struct{}{}
		}
	}
	done := make(chan openResult)
	go func() { done <- l.run(t.Context(), time.Second, do, observe) }()
	for range 99 {
		if err := fc.BlockUntilContext(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		fc.Advance(10 * time.Millisecond)
	}
	// Every request has been dispatched before the first answers.
	for range 97 {
		<-held
	}
	fc.Advance(510 * time.Millisecond)
	close(release)
	r := <-done
	if r.offered != 100 || r.notStarted != 97 || r.failed != 1 || r.hist.count() != 2 {
		t.Fatalf("offered %d, not started %d, failed %d, succeeded %d; want 100, 97, 1, 2", r.offered, r.notStarted, r.failed, r.hist.count())
	}
	slices.Sort(started)
	if !slices.Equal(started, []int64{0, 1, 2}) {
		t.Fatalf("started %v, want the first three", started)
	}
	if r.lag.count() != 3 || r.lag.max() >= time.Microsecond { // the histogram resolves 1 µs
		t.Fatalf("%d start lags up to %v, want 3, all 0 (each sent when due)", r.lag.count(), r.lag.max())
	}
	// Request 0 was due at 0 and request 2 at 20 ms; both answered at 1.5 s.
	if lo, hi := r.hist.quantile(0), r.hist.max(); !near(lo, 1480*time.Millisecond) || !near(hi, 1500*time.Millisecond) {
		t.Fatalf("latencies %v..%v, want 1.48s..1.5s from the intended starts", lo, hi)
	}
	checkObserved(t, seen)
}

// checkObserved: every due request was reported once, at its intended start
// (n × 10 ms); the held-back ones with errNotStarted.
func checkObserved(t *testing.T, seen []observation) {
	t.Helper()
	if len(seen) != 100 {
		t.Fatalf("%d requests observed, want 100", len(seen))
	}
	slices.SortFunc(seen, func(a, b observation) int { return int(a.at - b.at) })
	for n, o := range seen {
		if o.at != time.Duration(n)*10*time.Millisecond {
			t.Fatalf("request %d reported as due at %v", n, o.at)
		}
		if held := n >= 3; held != errors.Is(o.err, errNotStarted) {
			t.Fatalf("request %d: error %v", n, o.err)
		}
		if n == 0 && o.lat != 1500*time.Millisecond {
			t.Fatalf("request 0: latency %v, want 1.5s", o.lat)
		}
	}
}

// near reports whether d is within the histogram's 1% of want.
func near(d, want time.Duration) bool { return math.Abs(float64(d-want)) <= 0.01*float64(want) }
