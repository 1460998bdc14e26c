package bench

import (
	"sync"
	"time"
)

// timeline records every site's requests in fixed intervals from its
// start, for the plot of a cut over time. A nil timeline records nothing.
type timeline struct {
	start time.Time
	width time.Duration
	mu    sync.Mutex
	sites [][]timelineBucket // by site, then interval
}

type timelineBucket struct {
	ok, failed int64
	hist       histogram // of the requests that succeeded
}

func newTimeline(sites int, width time.Duration) *timeline {
	return &timeline{start: time.Now(), width: width, sites: make([][]timelineBucket, sites)}
}

// record files one request of site, started at t0, that took d.
func (tl *timeline) record(site int, t0 time.Time, d time.Duration, err error) {
	if tl == nil {
		return
	}
	i := int(t0.Sub(tl.start) / tl.width)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for len(tl.sites[site]) <= i {
		tl.sites[site] = append(tl.sites[site], timelineBucket{})
	}
	b := &tl.sites[site][i]
	if err != nil {
		b.failed++
		return
	}
	b.ok++
	b.hist.record(d)
}

// mark stores the seconds since the timeline's start in *at.
func (tl *timeline) mark(at *float64) { *at = time.Since(tl.start).Seconds() }

// buckets returns every site's intervals as report rows.
func (tl *timeline) buckets(system string) []Bucket {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []Bucket
	for site, bs := range tl.sites {
		for i := range bs {
			b := &bs[i]
			out = append(out, Bucket{System: system, Site: site, Seconds: float64(i) * tl.width.Seconds(),
				Succeeded: b.ok, Failed: b.failed, P99Ms: ms(b.hist.quantile(0.99))})
		}
	}
	return out
}

// window sums every site's requests that started (or were due, at a fixed
// rate) between from and to (seconds since the start; whole intervals
// only) as one result per site of workload w, phase "cut".
func (tl *timeline) window(system, w string, from, to float64) []SiteResult {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	first, last := int(from/tl.width.Seconds())+1, int(to/tl.width.Seconds())
	var out []SiteResult
	for site, bs := range tl.sites {
		var ok, failed int64
		var h histogram
		for i := first; i < min(last, len(bs)); i++ {
			ok, failed = ok+bs[i].ok, failed+bs[i].failed
			h.merge(&bs[i].hist)
		}
		r := SiteResult{System: system, Site: site, Phase: "cut", Workload: w}
		r.fill(ok, failed, time.Duration(max(0, last-first))*tl.width, &h, nil)
		out = append(out, r)
	}
	return out
}
