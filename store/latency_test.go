package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutLatency measures one Put's latency (Write, fsync on) at a low,
// fixed rate, as a client of a site sees it less the network: a Put of 256
// random bytes to one of 50 keys every 20 ms, alone and beside another writer
// committing every 10 ms (what a site merging two other sites' Puts at the
// same rate does), and a Put editing a JSON document beside that writer.
// Besides latency it reports the process's CPU time and voluntary context
// switches per Put. Run with -benchtime=500x or so: each Put takes 20 ms.
//
//	go test -run - -bench PutLatency -benchtime 500x ./store
func BenchmarkPutLatency(b *testing.B) {
	for _, c := range []struct {
		name        string
		beside, doc bool
	}{{"alone", false, false}, {"beside-writer", true, false}, {"doc-beside-writer", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchStore(b, "bench")
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			if c.beside {
				wg.Go(func() { writeEvery(ctx, s, "/other/", 10*time.Millisecond) })
			}
			before := usage(b)
			lat := putEvery(ctx, b, s, b.N, c.doc)
			after := usage(b)
			stop()
			wg.Wait()
			slices.Sort(lat)
			q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))].Seconds() * 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.9), "p90-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			cpu := (after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()) / int64(b.N)
			b.ReportMetric(float64(cpu)/1000, "cpu-us/op")
			b.ReportMetric(float64(after.Nvcsw-before.Nvcsw)/float64(b.N), "sleeps/op")
		})
	}
}

// usage is the process's CPU time and context switches so far.
func usage(b *testing.B) syscall.Rusage {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return u
}

// putEvery makes n Puts through Write, one every 20 ms, and returns their
// latencies. With doc, each value is a JSON object of 8 fields, one of them
// changed: an edit of the stored document.
func putEvery(ctx context.Context, b *testing.B, s *Store, n int, doc bool) []time.Duration {
	lat := make([]time.Duration, 0, n)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := range n {
		<-tick.C
		value := make([]byte, 256)
		for j := range value {
			value[j] = byte(rand.Uint32())
		}
		if doc {
			value = fmt.Appendf(nil, `{"a":"%x","b":"1","c":"2","d":"3","e":"4","f":"5","g":"6","h":%d}`, value[:16], i)
		}
		key := []byte(fmt.Sprintf("/bench/%02d", i%50))
		start := time.Now()
		if _, err := s.Write(ctx, func(tx TxnWrite) error { return tx.Put(key, value, 0) }); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	return lat
}

// writeEvery puts under prefix every interval until ctx ends.
func writeEvery(ctx context.Context, s *Store, prefix string, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	value := make([]byte, 256)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		value[i%len(value)]++
		key := []byte(fmt.Sprintf("%s%02d", prefix, i%50))
		if _, err := s.Update(ctx, func(tx *WriteTxn) error { return tx.Put(key, value, 0) }); err != nil {
			return
		}
	}
}
