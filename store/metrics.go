package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/crdt"
)

// metrics are the store's Prometheus instruments, registered on the Registerer
// given in Config (none when it is nil). Where etcd measures the same thing the
// name is etcd's (server/storage/mvcc/metrics.go, backend/metrics.go,
// storage/metrics.go), so etcd dashboards and alerts read them; the rest are
// rhizome_store_*, but for rhizome_conflicts_total, which is the cluster's.
type metrics struct {
	commitSeconds prometheus.Histogram
	defragSeconds prometheus.Histogram
	backupSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	docBytes      prometheus.Histogram
	puts, deletes prometheus.Counter
	ranges        prometheus.Counter
	leasesExpired prometheus.Counter
	compactedRevs prometheus.Counter
	opaqueKube    prometheus.Counter
	preparedDocs  prometheus.Counter
	conflicts     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(ns, sub, name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
			Help:    "The latency distributions of commit called by backend: one batch of writes made durable (fsync included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // finer than etcd's, from 0.1 ms
		}),
		defragSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_defrag_duration_seconds",
			Help:    "The latency distribution of backend defragmentation.",
			Buckets: prometheus.ExponentialBuckets(.1, 2, 13),
		}),
		backupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "etcd", Subsystem: "disk", Name: "backend_snapshot_duration_seconds",
			Help:    "The latency distribution of backend snapshots: writing out a backup (Maintenance Snapshot).",
			Buckets: prometheus.ExponentialBuckets(.01, 2, 17),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "commit_batch_requests",
			Help:    "Requests sharing one commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		docBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "rhizome", Subsystem: "store", Name: "document_bytes",
			Help:    "Size of a key's stored document at each write: its value, its CRDT history since the last rebase and any prior history still kept (bounded history keeps this flat for a steadily updated key).",
			Buckets: prometheus.ExponentialBuckets(256, 2, 16),
		}),
		puts:          counter("etcd", "mvcc", "put_total", "Total number of puts seen by this member."),
		deletes:       counter("etcd", "mvcc", "delete_total", "Total number of deletes seen by this member."),
		ranges:        counter("etcd", "mvcc", "range_total", "Total number of ranges seen by this member."),
		leasesExpired: counter("rhizome", "store", "leases_expired_total", "Leases revoked because their TTL ran out."),
		compactedRevs: counter("etcd_debugging", "mvcc", "db_compaction_keys_total", "Total number of db keys compacted."),
		opaqueKube: counter("rhizome", "store", "opaque_kubernetes_values_total",
			"Writes of kube-apiserver protobuf values of types Rhizome cannot decode, kept as opaque registers (merged whole, not field by field)."),
		preparedDocs: counter("rhizome", "store", "prepared_documents_total",
			"Writes whose document was readied in the writer's goroutine, ahead of the commit (prepare.go), and still current when committed."),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "rhizome", Name: "conflicts_total",
			Help: "Conflicts recorded, by how they were resolved: concurrent-create (one incarnation of a key kept whole), validation (a merge the Validator rejected; one side's whole value kept) or allocation (recorded by a caller, e.g. a ClusterIP or NodePort repair)."},
			[]string{"kind"}),
	}
	for _, k := range []crdt.ConflictKind{crdt.ConcurrentCreate, crdt.Validation} {
		m.conflicts.WithLabelValues(k.String()) // listed at 0 before the first
	}
	if reg != nil {
		reg.MustRegister(m.commitSeconds, m.defragSeconds, m.backupSeconds, m.batchSize, m.docBytes, m.puts, m.deletes, m.ranges, m.leasesExpired, m.compactedRevs, m.opaqueKube, m.preparedDocs, m.conflicts)
	}
	return m
}

// registerGauges registers the gauges read from the store when scraped.
func (s *Store) registerGauges(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	gauge := func(ns, sub, name, help string, fn func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, fn)
	}
	size := func() float64 { return float64(s.Size()) }
	reg.MustRegister(
		gauge("etcd", "mvcc", "db_total_size_in_bytes",
			"Total size of the underlying database physically allocated in bytes (badger's files on disk).", size),
		gauge("etcd", "mvcc", "db_total_size_in_use_in_bytes",
			"Total size of the underlying database logically in use in bytes (Rhizome reports the allocated size: badger does not tell them apart).", size),
		gauge("etcd", "server", "quota_backend_bytes",
			"Current backend storage quota size in bytes (0: none).", func() float64 { return float64(s.Quota()) }),
		gauge("etcd_debugging", "mvcc", "current_revision",
			"The current revision of store.", func() float64 { return float64(s.Rev()) }),
		gauge("etcd_debugging", "mvcc", "compact_revision",
			"The revision of the last compaction in store.", func() float64 { return float64(s.CompactRev()) }),
		gauge("rhizome", "store", "document_cache_bytes",
			"Memory the document cache holds (Config.DocCacheBytes bounds it): Go heap plus the estimated C-side memory of loaded automerge documents.",
			func() float64 { return float64(s.docs.heap.Load() + s.docs.native.Load()) }),
		gauge("rhizome", "store", "document_cache_native_bytes",
			"The part of rhizome_store_document_cache_bytes outside Go's heap: automerge documents loaded on its C side (estimated from their saved size).",
			func() float64 { return float64(s.docs.native.Load()) }),
	)
	reg.MustRegister(nativeHeapGauges()...)
}

func (m *metrics) commitDuration() func() { return timer(m.commitSeconds) }

// timer starts timing; calling what it returns observes the time taken.
func timer(h prometheus.Histogram) func() {
	start := time.Now()
	return func() { h.Observe(time.Since(start).Seconds()) }
}

func (m *metrics) batch(n int)                  { m.batchSize.Observe(float64(n)) }
func (m *metrics) document(size int)            { m.docBytes.Observe(float64(size)) }
func (m *metrics) leaseExpired()                { m.leasesExpired.Inc() }
func (m *metrics) compacted(n int)              { m.compactedRevs.Add(float64(n)) }
func (m *metrics) opaqueKubeValue()             { m.opaqueKube.Inc() }
func (m *metrics) conflict(k crdt.ConflictKind) { m.conflicts.WithLabelValues(k.String()).Inc() }
