package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// op sends one request. Each client goroutine has its own op and calls it
// sequentially, so an op may keep state without locks.
type op func(ctx context.Context) error

// keyer makes fixed-size keys: a workload tag byte, a cell tag byte, then a
// hex index padded to the key size, so cells never touch each other's keys.
type keyer struct {
	workload, cell byte
	size, digits   int
}

func (k keyer) key(i int) string {
	b := make([]byte, k.size)
	b[0], b[1] = k.workload, k.cell
	for j := 1 + k.digits; j >= 2; j-- {
		b[j] = "0123456789abcdef"[i&15]
		i >>= 4
	}
	for j := 2 + k.digits; j < k.size; j++ {
		b[j] = '_'
	}
	return string(b)
}

// cell is one workload at one concurrency level against one system, with
// what its clients share.
type cell struct {
	workload string
	clients  int
	level    int // index of clients in Config.Clients
	conns    []*clientv3.Client
	cfg      Config

	putSeq    atomic.Int64 // next Put key index, shared like etcd's sequential keys
	conflicts atomic.Int64 // Txn compares that failed
}

func (c *cell) keyer(tag byte) keyer {
	return keyer{workload: tag, cell: byte("0123456789abcdefghijklmnopqrstuvwxyz"[c.level]), size: c.cfg.KeySize, digits: c.cfg.keyDigits()}
}

// rangeKeys are written before the Range cells and read by both of them.
func rangeKeys(cfg Config) keyer {
	return keyer{workload: 'r', cell: '0', size: cfg.KeySize, digits: cfg.keyDigits()}
}

// newOp returns client i's request function. Clients use the connections
// round-robin, as etcd's benchmark does.
func (c *cell) newOp(i int) op {
	cli := c.conns[i%len(c.conns)]
	rng := rand.New(rand.NewPCG(c.cfg.Seed, uint64(i)))
	value := make([]byte, c.cfg.ValueSize)
	for j := range value {
		value[j] = byte(rng.Uint32())
	}
	val := string(value)
	switch c.workload {
	case WorkloadPut:
		k := c.keyer('p')
		space := int64(c.cfg.KeySpace)
		return func(ctx context.Context) error {
			_, err := cli.Put(ctx, k.key(int((c.putSeq.Add(1)-1)%space)), val)
			return err
		}
	case WorkloadRangeSerializable, WorkloadRangeLinearizable:
		k := rangeKeys(c.cfg)
		var opts []clientv3.OpOption
		if c.workload == WorkloadRangeSerializable {
			opts = append(opts, clientv3.WithSerializable())
		}
		return func(ctx context.Context) error {
			resp, err := cli.Get(ctx, k.key(rng.IntN(c.cfg.RangeKeys)), opts...)
			if err == nil && len(resp.Kvs) != 1 {
				err = errors.New("bench: range: preloaded key missing")
			}
			return err
		}
	case WorkloadTxnCompareAndPut:
		// kube-apiserver's GuaranteedUpdate: compare the mod revision it last
		// saw, put on success, read the current value otherwise. A key's first
		// request compares with 0 (absent): the create.
		k := c.keyer('t')
		n := c.cfg.TxnKeysPerClient
		keys, revs := make([]string, n), make([]int64, n)
		for j := range keys {
			keys[j] = k.key(i*n + j)
		}
		next := 0
		return func(ctx context.Context) error {
			j := next
			next = (next + 1) % n
			resp, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(keys[j]), "=", revs[j])).
				Then(clientv3.OpPut(keys[j], val)).
				Else(clientv3.OpGet(keys[j])).
				Commit()
			switch {
			case err != nil:
				return err
			case resp.Succeeded:
				revs[j] = resp.Header.Revision
			default:
				c.conflicts.Add(1)
				revs[j] = 0
				if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
					revs[j] = rr.Kvs[0].ModRevision
				}
			}
			return nil
		}
	}
	panic("bench: unknown workload " + c.workload) // Validate rejects these
}

// phaseResult is what one phase of a cell measured.
type phaseResult struct {
	hist    histogram
	errors  int64
	elapsed time.Duration
	lastErr error
}

// runPhase runs every client's op in its own goroutine until the deadline
// passes (no new request starts after it) or, when budget is non-nil, until
// the shared budget of requests is spent. Latency is the time one op call
// takes; elapsed runs from the start until the last client has finished.
func runPhase(ctx context.Context, ops []op, deadline time.Time, budget *atomic.Int64) phaseResult {
	hists := make([]histogram, len(ops))
	errs := make([]int64, len(ops))
	lastErrs := make([]error, len(ops))
	var wg sync.WaitGroup
	start := time.Now()
	for i, o := range ops {
		wg.Go(func() {
			h := &hists[i]
			for ctx.Err() == nil {
				if budget != nil {
					if budget.Add(-1) < 0 {
						return
					}
				} else if !time.Now().Before(deadline) {
					return
				}
				t0 := time.Now()
				err := o(ctx)
				d := time.Since(t0)
				if err != nil {
					errs[i]++
					lastErrs[i] = err
					// A dead server fails fast; do not spin on it.
					if errs[i] > 1000 && h.count() == 0 {
						return
					}
					continue
				}
				h.record(d)
			}
		})
	}
	wg.Wait()
	var r phaseResult
	r.elapsed = time.Since(start)
	for i := range hists {
		r.hist.merge(&hists[i])
		r.errors += errs[i]
		if lastErrs[i] != nil {
			r.lastErr = lastErrs[i]
		}
	}
	return r
}

// preloadRange writes the keys the Range cells read, with many clients at
// once so fsync latency does not make it slow.
func preloadRange(ctx context.Context, conns []*clientv3.Client, cfg Config) error {
	k := rangeKeys(cfg)
	value := strings.Repeat("v", cfg.ValueSize)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 10*len(conns))
	for w := range errs {
		wg.Go(func() {
			cli := conns[w%len(conns)]
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.RangeKeys || ctx.Err() != nil {
					return
				}
				if _, err := cli.Put(ctx, k.key(i), value); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: preloading range keys: %w", err)
	}
	return ctx.Err()
}
