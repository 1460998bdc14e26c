package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
)

// Arrival processes of the fixed-rate load (SitesConfig.Arrivals).
const (
	// ArrivalsPoisson spaces requests by exponentially distributed gaps of
	// mean 1/rate: independent arrivals, bursts included, as many clients
	// that do not wait for each other make.
	ArrivalsPoisson = "poisson"
	// ArrivalsEven spaces requests exactly 1/rate apart.
	ArrivalsEven = "even"
)

// errNotStarted is the error of a request the fixed-rate load did not start
// because openLoop.maxOutstanding requests were already outstanding. Such a
// request counts as failed; it is never silently dropped.
var errNotStarted = errors.New("bench: not started: too many requests outstanding")

// rateOp sends request n of a fixed-rate load. Requests run concurrently, so
// a rateOp must be safe for concurrent use.
type rateOp func(ctx context.Context, n int64) error

// openLoop issues requests at a fixed rate whatever their latency (an open
// loop): request n is due at its intended start time, the schedule's n-th
// offset from the start, and starts then on its own goroutine. Its latency
// runs from that intended time to its answer, so a server that falls behind
// is charged for the wait of every request it delays (no coordinated
// omission).
type openLoop struct {
	// rate is requests per second; rng draws the Poisson gaps (nil: even
	// spacing). The rng is used by the dispatching goroutine alone.
	rate float64
	rng  *rand.Rand
	// maxOutstanding bounds the requests started and not yet answered; a
	// request due while that many are outstanding is not started and
	// counts as failed (errNotStarted).
	maxOutstanding int
	// timeout bounds each request from its actual start.
	timeout time.Duration
	clock   clockwork.Clock
}

// openResult is what one openLoop run measured.
type openResult struct {
	hist histogram // latency from the intended start, of the requests that succeeded
	// lag is how late each started request was sent after its intended
	// start: the generator's own delay (a busy machine), which hist
	// includes.
	lag histogram
	// offered is how many requests were due; failed how many of them
	// failed after starting, notStarted how many the cap held back.
	offered, failed, notStarted int64
	lastErr                     error
}

// schedule returns the offset from the start of each next request in
// turn: n/rate for even spacing, a running sum of exponential gaps with
// mean 1/rate when rng is set. Offsets never decrease.
func schedule(rate float64, rng *rand.Rand) func() time.Duration {
	gap := float64(time.Second) / rate
	var n int64
	var at float64
	return func() time.Duration {
		if rng == nil {
			at = float64(n) * gap
			n++
		} else if n++; n > 1 {
			at += rng.ExpFloat64() * gap
		}
		return time.Duration(at)
	}
}

// run issues requests through do for d (none is due at or after d), waits
// for every started one to answer, and returns what they measured. observe,
// when not nil, is called once per due request with its intended start, its
// latency and its error (errNotStarted for one the cap held back), from any
// goroutine. run returns early, after the started requests answer, when ctx
// ends.
func (l openLoop) run(ctx context.Context, d time.Duration, do rateOp, observe func(intended time.Time, lat time.Duration, err error)) openResult {
	var (
		r           openResult
		mu          sync.Mutex // guards r's histogram, failed and lastErr
		outstanding atomic.Int64
		wg          sync.WaitGroup
	)
	next := schedule(l.rate, l.rng)
	start := l.clock.Now()
	for n := int64(0); ; n++ {
		off := next()
		if off >= d || l.waitUntil(ctx, start.Add(off)) != nil {
			break
		}
		intended := start.Add(off)
		r.offered++
		if outstanding.Load() >= int64(l.maxOutstanding) {
			r.notStarted++
			if observe != nil {
				observe(intended, 0, errNotStarted)
			}
			continue
		}
		outstanding.Add(1)
		r.lag.record(l.clock.Since(intended))
		wg.Go(func() {
			defer outstanding.Add(-1)
			rctx, cancel := context.WithTimeout(ctx, l.timeout)
			err := do(rctx, n)
			cancel()
			lat := l.clock.Since(intended)
			mu.Lock()
			if err != nil {
				r.failed++
				r.lastErr = err
			} else {
				r.hist.record(lat)
			}
			mu.Unlock()
			if observe != nil {
				observe(intended, lat, err)
			}
		})
	}
	wg.Wait()
	if r.lastErr == nil && r.notStarted > 0 {
		r.lastErr = errNotStarted
	}
	return r
}

// waitUntil blocks until the clock reaches t (at once if it has) or ctx
// ends, and returns ctx's error then.
func (l openLoop) waitUntil(ctx context.Context, t time.Time) error {
	wait := t.Sub(l.clock.Now())
	if wait <= 0 {
		return ctx.Err()
	}
	timer := l.clock.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.Chan():
		return nil
	}
}
