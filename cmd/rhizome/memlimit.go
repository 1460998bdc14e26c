package main

import (
	"context"
	"log/slog"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The soft limit `rhizome serve` sets on Go's memory (runtime/debug's
// SetMemoryLimit, --memory-limit).
//
// Go's collector lets the heap grow to twice what its last collection found
// live (GOGC=100) before it collects again. A writing site's live heap is
// mostly badger's table-builder buffers and memtables, so its heap, and its
// resident memory with it, is about twice what it keeps. A soft limit makes
// the collector run earlier instead. But a limit at or below what the site
// keeps live would have it collect without pause (Go then caps the collector
// at half the CPU, which would still halve the site's throughput). So the
// limit in force is never below one and a half times the live heap plus the
// runtime's memory outside the heap, read again every second: past the
// configured limit, the collector runs as if GOGC were 50, never more often.

// minMemoryLimit is the least --memory-limit accepted.
const minMemoryLimit = 32 << 20

// memoryLimitPeriod is how often the limit in force follows the live heap.
const memoryLimitPeriod = time.Second

// defaultMemoryLimit is --memory-limit's default for a memory budget of b
// bytes (store.Config.MemoryBudget): one budget (badger's memtables, index
// cache and table-builder buffers take about half of it) plus 64 MiB for the
// rest (the document cache, the watch window, the key index, gRPC buffers):
// 128 MiB at the default budget of 64 MiB. A site updating 50,000 pods keeps
// 55-65 MiB live, and its Go heap stays within the limit where the collector
// alone would let it reach twice that, at no more collector CPU than at a
// limit of 192 MiB (bench/results/NOTES.md, session 17). The limiter raises
// the limit when more is live (memoryLimiter).
func defaultMemoryLimit(b int64) int64 { return b + 64<<20 }

// memoryLimiter keeps the limit in force at max(the configured limit, 1.5 x
// the live heap + the runtime's other memory).
type memoryLimiter struct {
	limit int64                      // configured
	set   func(int64) int64          // debug.SetMemoryLimit
	read  func() (live, other int64) // readRuntimeMemory
	inUse int64                      // the limit in force (0: none set yet)
	gauge prometheus.Gauge
	log   *slog.Logger
}

func newMemoryLimiter(limit int64, set func(int64) int64, reg prometheus.Registerer, log *slog.Logger) *memoryLimiter {
	m := &memoryLimiter{limit: limit, set: set, read: readRuntimeMemory, log: log,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rhizome_memory_limit_bytes",
			Help: "Soft limit on Go's memory in force (--memory-limit, raised to 1.5x the live heap plus the runtime's other memory when that is more)."})}
	reg.MustRegister(m.gauge)
	return m
}

// adjust sets the limit in force from the live heap read now.
func (m *memoryLimiter) adjust() {
	live, other := m.read()
	want := max(m.limit, live+live/2+other)
	if want == m.inUse {
		return
	}
	if (want > m.limit) != (m.inUse > m.limit) && m.inUse != 0 {
		m.log.Info("memory limit follows the live heap", "limit", want, "configured", m.limit, "live_heap", live)
	}
	m.set(want)
	m.inUse = want
	m.gauge.Set(float64(want))
}

// run adjusts the limit at every tick until ctx ends. It blocks.
func (m *memoryLimiter) run(ctx context.Context, tick <-chan time.Time) {
	m.adjust()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			m.adjust()
		}
	}
}

// readRuntimeMemory returns the live heap (as the last collection found it)
// and the memory the runtime holds outside the heap (stacks, metadata,
// buffers), from runtime/metrics.
func readRuntimeMemory() (live, other int64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	return v(0), max(0, v(1)-v(2)-v(3)-v(4)-v(5))
}
