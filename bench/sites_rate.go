package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WorkloadPutRate is Put at a fixed rate (SitesConfig.Rate per site, open
// loop): both systems get the same offered load whatever their latency, so
// their latencies compare at equal load. The closed-loop workloads measure
// throughput instead.
const WorkloadPutRate = "put-rate"

// rateStream separates the fixed-rate arrival streams' seeds from the
// other users of SitesConfig.Seed.
const rateStream = 0x7a7e << 16

// loadSitesRate offers cfg.Rate Puts per second to every site of c at once
// for d (openLoop), each site's requests spread round-robin over its
// cfg.Clients connections, printing progress, and returns one result per
// site for phase: OfferedRate is the rate requests were due at, Throughput
// the achieved rate (the requests that succeeded per second of the
// schedule: every due request has succeeded or failed when it returns).
// With a timeline, every request is also recorded in it at its
// intended start.
func loadSitesRate(ctx context.Context, cfg SitesConfig, c *cluster, phase string, delay, d time.Duration, progress io.Writer, tl *timeline) ([]SiteResult, error) {
	conns, closeAll, err := siteClients(cfg, c)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	c.loads++
	runs := make([]openResult, len(c.servers))
	done := make([]atomic.Int64, len(c.servers))
	var wg sync.WaitGroup
	for i := range c.servers {
		loop := cfg.openLoop(i)
		observe := func(intended time.Time, lat time.Duration, err error) {
			done[i].Add(1)
			tl.record(i, intended, lat, err)
		}
		wg.Go(func() { runs[i] = loop.run(ctx, d, ratePut(cfg, i, c.loads, conns[i]), observe) })
	}
	label := fmt.Sprintf("%s %s %s (%g/s per site) at %v", c.system, phase, WorkloadPutRate, cfg.Rate, delay)
	stop := sitesProgress(progress, label, cfg.ProgressEvery, done)
	wg.Wait()
	stop()
	return siteResults(ctx, c, phase, WorkloadPutRate, delay, func(i int, r *SiteResult) {
		o := &runs[i]
		r.fill(o.hist.count(), o.failed+o.notStarted, d, &o.hist, o.lastErr)
		r.OfferedRate, r.NotStarted = ratio(float64(o.offered), d.Seconds()), o.notStarted
		r.StartLagP99Ms = ms(o.lag.quantile(0.99))
	})
}

// openLoop is site i's fixed-rate load generator: its arrivals drawn from
// a generator seeded from Seed and the site (or evenly spaced).
func (c SitesConfig) openLoop(site int) openLoop {
	l := openLoop{rate: c.Rate, maxOutstanding: c.MaxOutstanding, timeout: c.RequestTimeout, clock: c.Clock}
	if c.Arrivals == ArrivalsPoisson {
		l.rng = rand.New(rand.NewPCG(c.Seed, uint64(rateStream|site)))
	}
	return l
}

// ratePut is site i's fixed-rate Put in load number run (see sitePut).
// Safe for concurrent use.
func ratePut(cfg SitesConfig, site, run int, conns []*clientv3.Client) rateOp {
	p := newSitePut(cfg, 'q', site, run)
	return func(ctx context.Context, n int64) error {
		key, value := p.request(n)
		_, err := conns[n%int64(len(conns))].Put(ctx, key, value)
		return err
	}
}

// sitePut is a site's Put workload in one load: request n writes the n-th key
// of the site's own sequence (cycling through KeySpace keys, under a key tag
// of the workload's own, so no other workload's keys are touched). Its value
// is ValueSize bytes drawn afresh for each request (from Seed, the site, the
// load and n) with the load's number and n written over the first ones (as
// far as they fit), so no request rewrites a key with the value it holds
// (a site ships nothing for a value it holds) and no value repeats another
// (a compressing link would send it for almost nothing): every Put is a
// change of ValueSize new bytes, in every load.
type sitePut struct {
	keys      keyer
	space     int64
	size      int
	seed, seq uint64 // the PCG seed of request n is (seed, seq+n)
	run       int
}

func newSitePut(cfg SitesConfig, tag byte, site, run int) sitePut {
	kv := cfg.kv()
	k := keyer{workload: tag, cell: byte("0123456789abcdefghijklmnopqrstuvwxyz"[site]), size: kv.KeySize, digits: kv.keyDigits()}
	seq := uint64(tag)<<56 | uint64(site)<<48 | uint64(run)<<32
	return sitePut{keys: k, space: int64(kv.KeySpace), size: kv.ValueSize, seed: cfg.Seed, seq: seq, run: run}
}

// request returns request n's key and value.
func (p sitePut) request(n int64) (key, value string) {
	rng := rand.New(rand.NewPCG(p.seed, p.seq+uint64(n)))
	v := make([]byte, p.size)
	for j := range v {
		v[j] = byte(rng.Uint32())
	}
	copy(v, fmt.Sprintf("%08x%016x", p.run, n))
	return p.keys.key(int(n % p.space)), string(v)
}
