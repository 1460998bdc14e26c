package checker

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// chunkSize is the size of one block of a compact frontier: large enough that
// workers rarely meet at the shared counter, small enough to balance the end
// of a level between them and to recycle memory as a level is consumed.
const chunkSize = 256 << 10

// chunkPool recycles frontier blocks: the blocks of the level being expanded
// become the blocks of the next level, so a run's memory follows the size of
// its largest two levels and is not handed back and forth to the runtime.
type chunkPool struct {
	mu   sync.Mutex
	free [][]byte
}

func (p *chunkPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return make([]byte, 0, chunkSize)
}

func (p *chunkPool) put(b []byte) {
	if cap(b) != chunkSize {
		return // an oversized block for one huge state: let it go
	}
	p.mu.Lock()
	p.free = append(p.free, b[:0])
	p.mu.Unlock()
}

// chunkWriter appends frontier records to blocks from a pool. A record is
// the state's pending eventually bits and the length of its encoding
// (uvarints), then the encoding. The fingerprint is not kept: the decoded
// state has the same one.
type chunkWriter struct {
	pool *chunkPool
	cur  []byte
	done [][]byte
}

func (w *chunkWriter) add(ebits uint64, enc []byte) {
	need := 2*binary.MaxVarintLen64 + len(enc)
	if cap(w.cur)-len(w.cur) < need {
		if len(w.cur) > 0 {
			w.done = append(w.done, w.cur)
		}
		if need > chunkSize {
			w.cur = make([]byte, 0, need)
		} else {
			w.cur = w.pool.get()
		}
	}
	w.cur = binary.AppendUvarint(w.cur, ebits)
	w.cur = binary.AppendUvarint(w.cur, uint64(len(enc)))
	w.cur = append(w.cur, enc...)
}

func (w *chunkWriter) flush() [][]byte {
	if len(w.cur) > 0 {
		w.done = append(w.done, w.cur)
	}
	w.cur = nil
	return w.done
}

// readRecord decodes the record at b[p:] and returns its parts and the
// position after it.
func readRecord(b []byte, p int) (ebits uint64, enc []byte, next int, err error) {
	ebits, k := binary.Uvarint(b[p:])
	if k <= 0 {
		return 0, nil, 0, fmt.Errorf("checker: frontier record at %d: bad bits", p)
	}
	p += k
	l, k := binary.Uvarint(b[p:])
	if k <= 0 || uint64(len(b)-p-k) < l {
		return 0, nil, 0, fmt.Errorf("checker: frontier record at %d: bad length", p)
	}
	p += k
	return ebits, b[p : p+int(l)], p + int(l), nil
}

// bfsCompact is bfs for models that implement Compact: each level is a list
// of blocks of encoded states, the workers take whole blocks and decode one
// state at a time, and what a worker emits is encoded straight into its own
// blocks. It explores exactly the states bfs explores.
func (r *run[S, A]) bfsCompact(c Compact[S]) (bool, error) {
	threads := r.cfg.threads()
	pool := &chunkPool{}
	coders := make([]Coder[S], threads)
	for i := range coders {
		coders[i] = c.NewCoder()
	}
	roots := chunkWriter{pool: pool}
	var enc []byte
	for _, n := range r.roots() {
		enc = coders[0].Append(enc[:0], n.s)
		roots.add(n.ebits, enc)
	}
	frontier := roots.flush()
	var (
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		r.stop.Store(true)
	}
	for depth := int32(0); len(frontier) > 0; depth++ {
		if r.stop.Load() {
			return false, firstErr
		}
		r.noteDepth(int(depth))
		var next atomic.Int64
		outs := make([][][]byte, threads)
		var wg sync.WaitGroup
		for w := range threads {
			wg.Go(func() {
				coder := coders[w]
				exp, _ := coder.(Expander[S, A])
				out := chunkWriter{pool: pool}
				var enc []byte
				wk := newWorker(r, exp, func(n node[S]) {
					enc = coder.Append(enc[:0], n.s)
					out.add(n.ebits, enc)
				})
				for !r.stop.Load() {
					i := int(next.Add(1)) - 1
					if i >= len(frontier) {
						break
					}
					block := frontier[i]
					for p := 0; p < len(block) && !r.stop.Load(); {
						ebits, rec, np, err := readRecord(block, p)
						if err != nil {
							fail(err)
							break
						}
						p = np
						s, err := coder.Decode(rec)
						if err != nil {
							fail(fmt.Errorf("checker: decode state: %w", err))
							break
						}
						wk.expand(node[S]{s: s, fp: r.fingerprint(s), ebits: ebits, depth: depth})
					}
					frontier[i] = nil
					pool.put(block)
					wk.flush()
				}
				outs[w] = out.flush()
			})
		}
		wg.Wait()
		frontier = frontier[:0]
		for _, o := range outs {
			frontier = append(frontier, o...)
		}
	}
	return !r.stop.Load(), firstErr
}
