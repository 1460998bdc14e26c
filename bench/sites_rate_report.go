package bench

import (
	"fmt"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

// rateTable writes the fixed-rate Put cells: offered and achieved rate,
// Rhizome's worst site against etcd's best and worst, per delay.
func (r *SitesReport) rateTable(b *strings.Builder) {
	if !r.hasRate() {
		return
	}
	fmt.Fprintf(b, "\n## Put at a fixed rate\n\nOpen loop, the same offered load for both systems: %g Puts/s at every site (%s arrivals, the same schedule for both), each request started at its scheduled time whatever the others' latency, its latency measured from that time (no coordinated omission). The targets' latency ratios use these cells. req/s = all sites together; Rhizome's worst site against etcd's best / worst; achieved = requests that succeeded per second of the schedule; failed counts requests not started because too many were outstanding; send lag = the worst site's p99 of how late the load generator sent a request after its scheduled time (its own delay on a busy machine, included in every latency).\n\n", r.Rate, r.Arrivals)
	b.WriteString("| delay | offered rz / etcd | achieved rz / etcd | rhizome p50 | etcd p50 | p50 etcd best/rz | rhizome p99 | etcd p99 | p99 etcd best/rz | failed rz / etcd | send lag p99 rz / etcd |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, d := range r.DelaysMs {
		rzRows, etRows := r.results(SystemRhizome, "load", WorkloadPutRate, d), r.results(SystemEtcd, "load", WorkloadPutRate, d)
		rz, ok1 := worst(rzRows)
		et, ok2 := worst(etRows)
		if !ok1 && !ok2 {
			continue
		}
		best := bestP(etRows)
		fmt.Fprintf(b, "| %g ms | %.1f / %.1f | %.1f / %.1f | %s | %s / %s | %.1fx | %s | %s / %s | %.1fx | %d / %d | %s / %s |\n", d,
			offered(rzRows), offered(etRows), rz.Throughput, et.Throughput,
			fmtMs(rz.P50Ms), fmtMs(best.P50Ms), fmtMs(et.P50Ms), ratio(best.P50Ms, rz.P50Ms),
			fmtMs(rz.P99Ms), fmtMs(best.P99Ms), fmtMs(et.P99Ms), ratio(best.P99Ms, rz.P99Ms), rz.Errors, et.Errors,
			fmtMs(sendLag(rzRows)), fmtMs(sendLag(etRows)))
	}
}

// hasRate reports whether the sweep ran the fixed-rate Put.
func (r *SitesReport) hasRate() bool {
	for _, x := range r.Results {
		if x.Phase == "load" && x.Workload == WorkloadPutRate {
			return true
		}
	}
	return false
}

// sendLag is the sites' highest p99 send lag.
func sendLag(rows []SiteResult) float64 {
	var lag float64
	for _, x := range rows {
		lag = max(lag, x.StartLagP99Ms)
	}
	return lag
}

// offered sums the sites' offered rates.
func offered(rows []SiteResult) float64 {
	var sum float64
	for _, x := range rows {
		sum += x.OfferedRate
	}
	return sum
}

// delaySeries adds each system's worst-site p99 and p50 of workload w
// against the one-way delay to p (solid p99, dashed p50) and returns how
// many lines it drew.
func (r *SitesReport) delaySeries(p *plot.Plot, w string) (int, error) {
	drawn := 0
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		for _, q := range []string{"p99", "p50"} {
			var xys plotter.XYs
			for _, d := range r.DelaysMs {
				s, ok := worst(r.results(sys, "load", w, d))
				v := s.P99Ms
				if q == "p50" {
					v = s.P50Ms
				}
				if ok && v > 0 {
					xys = append(xys, plotter.XY{X: d, Y: v})
				}
			}
			if err := addSeries(p, xys, sys+" "+q, systemColour(sys), q == "p50", 2); err != nil {
				return drawn, err
			}
			if len(xys) > 0 {
				drawn++
			}
		}
	}
	return drawn, nil
}

// ratePanel plots the fixed-rate Put latency against the one-way delay,
// log scale, or returns nil when the run had no fixed-rate cells.
func (r *SitesReport) ratePanel() (*plot.Plot, error) {
	if !r.hasRate() {
		return nil, nil
	}
	p := latencyByDelayPlot(fmt.Sprintf("Put at a fixed %g/s per site (%s arrivals; the same offered load for both), latency from each request's scheduled start", r.Rate, r.Arrivals), 12, "Put latency")
	_, err := r.delaySeries(p, WorkloadPutRate)
	return p, err
}
