package peer

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// historySamples bounds the samples of this site's vector kept for lags.
	historySamples = 4096
	// historyMerge is the resolution of lags.
	historyMerge = 100 * time.Millisecond
)

// registerMetrics makes the byte counters and registers them, with the gauges and
// counters read from the engine at each scrape, on the configured Registerer.
func (r *Runner) registerMetrics() error {
	r.sentBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rhizome_peer_sent_bytes_total",
		Help: "Bytes of sync messages sent to a peer, as sent (compressed where the stream is; gRPC framing and TLS aside).",
	}, []string{"peer"})
	r.receivedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rhizome_peer_received_bytes_total",
		Help: "Bytes of sync messages received from a peer, as received (compressed where the stream is; gRPC framing and TLS aside).",
	}, []string{"peer"})
	if r.cfg.Registerer == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{r.sentBytes, r.receivedBytes, newCollector(r)} {
		if err := r.cfg.Registerer.Register(c); err != nil {
			return fmt.Errorf("peer: metrics: %w", err)
		}
	}
	return nil
}

// collector reports, at each scrape, the per-site sync state and the engine's
// counters.
type collector struct {
	r                                                     *Runner
	pending, lag, merges, dups, snapsSent, snapsInstalled *prometheus.Desc
}

func newCollector(r *Runner) *collector {
	return &collector{r: r,
		pending: prometheus.NewDesc("rhizome_peer_changes_pending",
			"Changes held here that a site is not known to hold (as of its newest report).", []string{"peer"}, nil),
		lag: prometheus.NewDesc("rhizome_peer_sync_lag_seconds",
			"How long this site has held the oldest change a site is not known to hold (0 when it holds all).", []string{"peer"}, nil),
		merges: prometheus.NewDesc("rhizome_merges_applied_total",
			"Changes of other sites merged into this site's store.", nil, nil),
		dups: prometheus.NewDesc("rhizome_peer_duplicate_changes_total",
			"Changes received from other sites that this site already held (sent for nothing).", nil, nil),
		snapsSent: prometheus.NewDesc("rhizome_snapshots_sent_total",
			"Whole-state snapshots sent to sites that lacked changes collected from the change log.", nil, nil),
		snapsInstalled: prometheus.NewDesc("rhizome_snapshots_installed_total",
			"Whole-state snapshots received and installed.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.lag, c.merges, c.dups, c.snapsSent, c.snapsInstalled} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.r.Sites() {
		if !s.Reported {
			continue // nothing known of what it holds yet
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.TheyLack), s.Site)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, s.Lag.Seconds(), s.Site)
	}
	st := c.r.Stats()
	ch <- prometheus.MustNewConstMetric(c.merges, prometheus.CounterValue, float64(st.Merged))
	ch <- prometheus.MustNewConstMetric(c.dups, prometheus.CounterValue, float64(st.Duplicates))
	ch <- prometheus.MustNewConstMetric(c.snapsSent, prometheus.CounterValue, float64(st.SnapshotsSent))
	ch <- prometheus.MustNewConstMetric(c.snapsInstalled, prometheus.CounterValue, float64(st.SnapshotsInstalled))
}
