package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rhizome-kv/rhizome/store"
)

// TestMemoryLimiterFollowsLiveHeap: the limit in force is the configured one
// while the live heap is small, 1.5x the live heap plus the runtime's other
// memory once that is more (so the collector never runs more often than at
// GOGC=50), and the configured one again when the heap shrinks.
func TestMemoryLimiterFollowsLiveHeap(t *testing.T) {
	const mib = 1 << 20
	var live, other int64 = 100 * mib, 10 * mib
	var set []int64
	reg := prometheus.NewRegistry()
	m := newMemoryLimiter(384*mib, func(l int64) int64 { set = append(set, l); return 0 }, reg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.read = func() (int64, int64) { return live, other }
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx, tick); close(done) }()
	step := func(l int64) { live = l; tick <- time.Time{}; tick <- time.Time{} } // the second send waits for the first adjust
	step(100 * mib)
	step(300 * mib)
	step(300 * mib)
	step(50 * mib)
	cancel()
	<-done
	want := []int64{384 * mib, 460 * mib, 384 * mib}
	if len(set) != len(want) {
		t.Fatalf("limits set %v, want %v (no repeats)", set, want)
	}
	for i := range want {
		if set[i] != want[i] {
			t.Fatalf("limits set %v, want %v", set, want)
		}
	}
	if g := testutil.ToFloat64(m.gauge); g != 384*mib {
		t.Fatalf("rhizome_memory_limit_bytes %v, want %d", g, 384*mib)
	}
}

// TestMemoryLimitOf: the default follows the memory budget, a flag sets it,
// a negative flag or GOMEMLIMIT turns it off.
func TestMemoryLimitOf(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	withEnv := func(k string) (string, bool) { return "400MiB", k == "GOMEMLIMIT" }
	cases := []struct {
		flag, budget, want int64
		env                func(string) (string, bool)
		ok                 bool
	}{
		{0, 0, store.DefaultMemoryBudget + 64<<20, noEnv, true},
		{0, 32 << 20, 96 << 20, noEnv, true},
		{1 << 30, 0, 1 << 30, noEnv, true},
		{-1, 0, 0, noEnv, false},
		{0, 0, 0, withEnv, false},
		{1 << 30, 0, 0, withEnv, false},
	}
	for _, c := range cases {
		got, ok := memoryLimitOf(c.flag, c.budget, c.env)
		if got != c.want || ok != c.ok {
			t.Errorf("memoryLimitOf(%d, %d): %d %t, want %d %t", c.flag, c.budget, got, ok, c.want, c.ok)
		}
	}
}
