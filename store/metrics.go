package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus instruments, registered on the Registerer
// given in Config (none when it is nil).
type metrics struct {
	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	leasesExpired prometheus.Counter
	compactedRevs prometheus.Counter
	opaqueKube    prometheus.Counter
	conflicts     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "commit_seconds",
			Help:    "Time to make one batch of writes durable (fsync included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "commit_batch_requests",
			Help:    "Requests sharing one commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		leasesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "leases_expired_total",
			Help: "Leases revoked because their TTL ran out.",
		}),
		compactedRevs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "compacted_records_total",
			Help: "Revision records removed by compaction.",
		}),
		opaqueKube: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "opaque_kubernetes_values_total",
			Help: "Writes of kube-apiserver protobuf values of types Rhizome cannot decode, kept as opaque registers (merged whole, not field by field).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "conflicts_total",
			Help: "Concurrent creates of one key resolved by keeping one incarnation whole.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commitSeconds, m.batchSize, m.leasesExpired, m.compactedRevs, m.opaqueKube, m.conflicts)
	}
	return m
}

func (m *metrics) commitDuration() func() {
	start := time.Now()
	return func() { m.commitSeconds.Observe(time.Since(start).Seconds()) }
}

func (m *metrics) batch(n int)      { m.batchSize.Observe(float64(n)) }
func (m *metrics) leaseExpired()    { m.leasesExpired.Inc() }
func (m *metrics) compacted(n int)  { m.compactedRevs.Add(float64(n)) }
func (m *metrics) opaqueKubeValue() { m.opaqueKube.Inc() }
func (m *metrics) conflict()        { m.conflicts.Inc() }
