package store

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/crdt"
)

// nativeHeapGauges report the C allocator's memory, which holds automerge's
// documents and which Go's runtime metrics do not see: what is allocated, and
// what its arenas keep freed (resident until the reclaimer trims it). Empty
// where the allocator cannot tell (crdt.NativeHeap).
func nativeHeapGauges() []prometheus.Collector {
	if _, _, ok := crdt.NativeHeap(); !ok {
		return nil
	}
	gauge := func(name, help string, pick func(inUse, free int64) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "rhizome", Subsystem: "native", Name: name, Help: help},
			func() float64 {
				inUse, free, _ := crdt.NativeHeap()
				return float64(pick(inUse, free))
			})
	}
	return []prometheus.Collector{
		gauge("heap_inuse_bytes", "C memory allocated (glibc's mallinfo2): automerge's loaded documents and other C code's memory.",
			func(inUse, _ int64) int64 { return inUse }),
		gauge("heap_free_bytes", "C memory freed but kept by the allocator's arenas (glibc's mallinfo2), resident until trimmed.",
			func(_, free int64) int64 { return free }),
	}
}
