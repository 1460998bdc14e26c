package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histogram range and precision: 1 µs to one hour, two significant
// digits (a recorded latency is off by under 1% of itself). Longer
// latencies are recorded as one hour.
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(time.Hour)
	histDigits  = 2
)

// histogram counts latencies in an HDR histogram: constant memory however
// long a cell runs, and two histograms merge by adding counts. The zero
// value is empty and ready. It is not safe for concurrent use; each client
// has its own.
type histogram struct {
	h *hdrhistogram.Histogram // nil until the first record or merge
}

func (h *histogram) init() *hdrhistogram.Histogram {
	if h.h == nil {
		h.h = hdrhistogram.New(histLowest, histHighest, histDigits)
	}
	return h.h
}

func (h *histogram) record(d time.Duration) {
	// The value is clamped into the trackable range, so it never fails.
	_ = h.init().RecordValue(min(max(int64(d), 0), histHighest))
}

func (h *histogram) merge(o *histogram) {
	if o.h != nil {
		h.init().Merge(o.h)
	}
}

// count is how many latencies were recorded.
func (h *histogram) count() int64 {
	if h.h == nil {
		return 0
	}
	return h.h.TotalCount()
}

// quantile returns the latency below which a fraction q of the recorded ones
// fall, or 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.h == nil {
		return 0
	}
	return time.Duration(h.h.ValueAtQuantile(100 * q))
}

func (h *histogram) mean() time.Duration {
	if h.h == nil {
		return 0
	}
	return time.Duration(h.h.Mean())
}

func (h *histogram) max() time.Duration {
	if h.h == nil {
		return 0
	}
	return time.Duration(h.h.Max())
}
