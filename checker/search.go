package checker

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// node is a state waiting to be expanded.
type node[S any] struct {
	s     S
	fp    uint64
	ebits uint64 // eventually properties not yet satisfied on this path
	depth int32
}

// discovery records the first state found for a property: a violation for
// always/eventually, a witness for sometimes.
type discovery struct {
	fp   uint64
	path []uint64 // set directly by simulation; BFS/DFS rebuild it from parents
}

type run[S, A any] struct {
	m     Model[S, A]
	sym   Symmetric[S]
	gauge Gauged[S]
	cfg   Config
	props []Property
	vis   *visited

	alwaysMask, eventuallyMask, sometimesMask, allMask uint64

	settled atomic.Uint64 // properties whose outcome is known
	stop    atomic.Bool
	states  atomic.Uint64
	depth   atomic.Int64

	mu          sync.Mutex
	discoveries map[int]discovery
	gaugeNames  []string
	gaugeMax    []atomic.Int64
}

func (r *run[S, A]) fingerprint(s S) uint64 {
	if r.sym != nil {
		return normFP(r.sym.CanonicalFingerprint(s))
	}
	return normFP(r.m.Fingerprint(s))
}

// check evaluates the unsettled properties of a newly discovered state and
// returns the eventually bits still pending after it. gauges is the
// caller's scratch space for the model's measurements.
func (r *run[S, A]) check(s S, fp, ebits uint64, path func() []uint64, gauges []int64) uint64 {
	settled := r.settled.Load()
	mask := (r.alwaysMask|r.sometimesMask)&^settled | ebits
	if mask != 0 {
		holds := r.m.Evaluate(s, mask)
		ebits &^= holds
		found := (r.alwaysMask&^holds | r.sometimesMask&holds) & mask &^ settled
		for found != 0 {
			i := bits.TrailingZeros64(found)
			found &^= 1 << i
			r.discover(i, fp, path)
		}
	}
	if r.gauge != nil {
		r.measure(s, gauges)
	}
	return ebits
}

// newGauges returns scratch space for check.
func (r *run[S, A]) newGauges() []int64 { return make([]int64, len(r.gaugeNames)) }

func (r *run[S, A]) measure(s S, vals []int64) {
	clear(vals)
	r.gauge.Measure(s, vals)
	for i, v := range vals {
		for {
			cur := r.gaugeMax[i].Load()
			if v <= cur || r.gaugeMax[i].CompareAndSwap(cur, v) {
				break
			}
		}
	}
}

// terminal reports eventually properties still pending at a state without
// successors.
func (r *run[S, A]) terminal(fp, ebits uint64, path func() []uint64) {
	pending := ebits &^ r.settled.Load()
	for pending != 0 {
		i := bits.TrailingZeros64(pending)
		pending &^= 1 << i
		r.discover(i, fp, path)
	}
}

func (r *run[S, A]) discover(i int, fp uint64, path func() []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.discoveries[i]; ok {
		return
	}
	d := discovery{fp: fp}
	if path != nil {
		d.path = path()
	}
	r.discoveries[i] = d
	s := r.settled.Or(1 << i)
	if s|1<<i == r.allMask && !r.cfg.KeepGoing {
		r.stop.Store(true)
	}
}

func (r *run[S, A]) noteDepth(d int) {
	for {
		cur := r.depth.Load()
		if int64(d) <= cur || r.depth.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// Run explores m as cfg says and returns what it found.
func Run[S, A any](m Model[S, A], cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	props := m.Properties()
	if len(props) > MaxProperties {
		return nil, fmt.Errorf("%w: %d properties, at most %d", ErrInvalidConfig, len(props), MaxProperties)
	}
	r := &run[S, A]{m: m, cfg: cfg, props: props, vis: newVisited(), discoveries: map[int]discovery{}}
	if cfg.Symmetry {
		if sym, ok := m.(Symmetric[S]); ok {
			r.sym = sym
		}
	}
	if g, ok := m.(Gauged[S]); ok {
		r.gauge = g
		r.gaugeNames = g.Gauges()
		r.gaugeMax = make([]atomic.Int64, len(r.gaugeNames))
		for i := range r.gaugeMax {
			r.gaugeMax[i].Store(-1 << 63)
		}
	}
	for i, p := range props {
		switch p.Expect {
		case Always:
			r.alwaysMask |= 1 << i
		case Eventually:
			r.eventuallyMask |= 1 << i
		case Sometimes:
			r.sometimesMask |= 1 << i
		}
	}
	r.allMask = r.alwaysMask | r.eventuallyMask | r.sometimesMask

	start := time.Now()
	done := make(chan struct{})
	var bg sync.WaitGroup
	if cfg.Timeout > 0 {
		bg.Go(func() {
			t := time.NewTimer(cfg.Timeout)
			defer t.Stop()
			select {
			case <-t.C:
				r.stop.Store(true)
			case <-done:
			}
		})
	}
	if cfg.Progress != nil {
		bg.Go(func() { r.progress(start, done) })
	}

	var complete bool
	var runErr error
	switch cfg.Mode {
	case BFS:
		if c, ok := m.(Compact[S]); ok && !cfg.NoCompact {
			complete, runErr = r.bfsCompact(c)
		} else {
			complete = r.bfs()
		}
	case DFS:
		complete = r.dfs()
	case Simulation:
		r.simulate()
	}
	timedOut := r.stop.Load() && cfg.Timeout > 0 && time.Since(start) >= cfg.Timeout
	close(done)
	bg.Wait()
	if runErr != nil {
		return nil, runErr
	}
	return r.report(start, complete, timedOut)
}

func (r *run[S, A]) progress(start time.Time, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	var last uint64
	lastT := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			n := r.states.Load()
			rate := float64(n-last) / now.Sub(lastT).Seconds()
			last, lastT = n, now
			fmt.Fprintf(r.cfg.Progress, "checker: %6.1fs states=%d unique=%d states/s=%.0f depth=%d\n",
				now.Sub(start).Seconds(), n, r.vis.len(), rate, r.depth.Load())
		}
	}
}

// roots inserts the initial states and returns them as nodes.
func (r *run[S, A]) roots() []node[S] {
	var out []node[S]
	for _, s := range r.m.InitStates() {
		fp := r.fingerprint(s)
		r.states.Add(1)
		if !r.vis.insert(fp, 0) {
			continue
		}
		eb := r.check(s, fp, r.eventuallyMask, nil, r.newGauges())
		out = append(out, node[S]{s: s, fp: fp, ebits: eb})
	}
	return out
}

// worker expands states for one goroutine of a search.
type worker[S, A any] struct {
	r      *run[S, A]
	exp    Expander[S, A] // the model's, when it offers one
	emit   func(node[S])  // takes each new state below the depth bound
	count  uint64         // generated states not yet added to r.states
	buf    []A
	visit  func(A, S) // w.successor, bound once
	gauges []int64

	n    node[S] // the state being expanded
	succ int
	// Successors of one state often coincide (interchangeable controllers
	// taking the same step); those after the first are known to be in the
	// visited set already, so they skip its lookup.
	local  [16]uint64
	nlocal int
}

func newWorker[S, A any](r *run[S, A], exp Expander[S, A], emit func(node[S])) *worker[S, A] {
	w := &worker[S, A]{r: r, exp: exp, emit: emit, gauges: r.newGauges()}
	w.visit = w.successor
	return w
}

// flush adds the generated states counted so far to the run's total.
func (w *worker[S, A]) flush() {
	w.r.states.Add(w.count)
	w.count = 0
}

// expand generates the successors of n, checks the new ones and passes each
// new one below the depth bound to emit. A model's Expander, when given,
// generates the successors instead of Actions and Next.
func (w *worker[S, A]) expand(n node[S]) {
	r := w.r
	w.n, w.succ, w.nlocal = n, 0, 0
	if w.exp != nil {
		w.buf = w.exp.Expand(n.s, w.buf[:0], w.visit)
	} else {
		w.buf = r.m.Actions(n.s, w.buf[:0])
		for _, a := range w.buf {
			if ns, ok := r.m.Next(n.s, a); ok {
				w.successor(a, ns)
			}
		}
	}
	if w.succ == 0 && n.ebits != 0 {
		r.terminal(n.fp, n.ebits, nil)
	}
	w.n = node[S]{}
}

func (w *worker[S, A]) successor(_ A, ns S) {
	r, n := w.r, &w.n
	w.succ++
	w.count++
	fp := r.fingerprint(ns)
	for _, f := range w.local[:w.nlocal] {
		if f == fp {
			return
		}
	}
	if w.nlocal < len(w.local) {
		w.local[w.nlocal] = fp
		w.nlocal++
	}
	if !r.vis.insert(fp, n.fp) {
		return
	}
	eb := r.check(ns, fp, n.ebits, nil, w.gauges)
	d := n.depth + 1
	if r.cfg.MaxDepth == 0 || int(d) < r.cfg.MaxDepth {
		w.emit(node[S]{s: ns, fp: fp, ebits: eb, depth: d})
	} else {
		r.noteDepth(int(d))
	}
}

// bfs explores level by level; each level's frontier is split between the
// workers in small chunks. It reports whether the space was exhausted.
func (r *run[S, A]) bfs() bool {
	frontier := r.roots()
	threads := r.cfg.threads()
	const chunk = 64
	for len(frontier) > 0 {
		if r.stop.Load() {
			return false
		}
		r.noteDepth(int(frontier[0].depth))
		var next atomic.Int64
		outs := make([][]node[S], threads)
		var wg sync.WaitGroup
		for w := range threads {
			wg.Go(func() {
				var out []node[S]
				wk := newWorker(r, nil, func(n node[S]) { out = append(out, n) })
				for !r.stop.Load() {
					lo := int(next.Add(chunk)) - chunk
					if lo >= len(frontier) {
						break
					}
					hi := min(lo+chunk, len(frontier))
					for i := lo; i < hi; i++ {
						wk.expand(frontier[i])
						// Let the collector take expanded states: a BFS
						// level can hold millions of them.
						frontier[i] = node[S]{}
					}
					wk.flush()
				}
				outs[w] = out
			})
		}
		wg.Wait()
		total := 0
		for _, o := range outs {
			total += len(o)
		}
		frontier = make([]node[S], 0, total)
		for _, o := range outs {
			frontier = append(frontier, o...)
		}
	}
	return !r.stop.Load()
}

// dfs gives each worker its own stack; workers share surplus work through a
// pool so that all cores stay busy. It reports whether the space was exhausted.
func (r *run[S, A]) dfs() bool {
	threads := r.cfg.threads()
	const chunk = 32
	var (
		mu    sync.Mutex
		cond  = sync.NewCond(&mu)
		pool  = r.roots()
		idle  int
		done  bool
		plen  atomic.Int64
		wg    sync.WaitGroup
		limit = r.cfg.MaxDepth
	)
	plen.Store(int64(len(pool)))
	take := func() []node[S] {
		mu.Lock()
		defer mu.Unlock()
		for len(pool) == 0 && !done {
			idle++
			if idle == threads {
				done = true
				cond.Broadcast()
				return nil
			}
			cond.Wait()
			idle--
		}
		if done && len(pool) == 0 {
			return nil
		}
		k := min(chunk, len(pool))
		got := append([]node[S](nil), pool[len(pool)-k:]...)
		pool = pool[:len(pool)-k]
		plen.Store(int64(len(pool)))
		return got
	}
	for range threads {
		wg.Go(func() {
			var stack []node[S]
			wk := newWorker(r, nil, func(n node[S]) { stack = append(stack, n) })
			for {
				if len(stack) == 0 {
					wk.flush()
					stack = take()
					if stack == nil {
						return
					}
				}
				if r.stop.Load() {
					mu.Lock()
					done = true
					cond.Broadcast()
					mu.Unlock()
					return
				}
				n := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if limit == 0 || int(n.depth) < limit {
					r.noteDepth(int(n.depth))
					wk.expand(n)
				}
				// Share the oldest (shallowest) half when others may be starving.
				if len(stack) > 2*chunk && plen.Load() < int64(chunk) {
					half := len(stack) / 2
					mu.Lock()
					pool = append(pool, stack[:half]...)
					plen.Store(int64(len(pool)))
					cond.Broadcast()
					mu.Unlock()
					stack = append(stack[:0], stack[half:]...)
				}
				if wk.count >= 1024 {
					wk.flush()
				}
			}
		})
	}
	wg.Wait()
	return !r.stop.Load()
}

// simulate runs seeded random walks from random initial states until a
// bound is reached. Walks never dedupe; the visited set only counts unique
// states.
func (r *run[S, A]) simulate() {
	inits := r.m.InitStates()
	if len(inits) == 0 {
		return
	}
	threads := r.cfg.threads()
	var walks atomic.Int64
	var wg sync.WaitGroup
	for w := range threads {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(r.cfg.Seed+uint64(w), 0x9e3779b97f4a7c15))
			var buf []A
			var succ []S
			var path []uint64
			gauges := r.newGauges()
			for !r.stop.Load() {
				if r.cfg.Walks > 0 && walks.Add(1) > int64(r.cfg.Walks) {
					return
				}
				s := inits[rng.IntN(len(inits))]
				fp := r.fingerprint(s)
				path = append(path[:0], fp)
				getPath := func() []uint64 { return append([]uint64(nil), path...) }
				r.states.Add(1)
				r.vis.insert(fp, 0)
				eb := r.check(s, fp, r.eventuallyMask, getPath, gauges)
				for depth := 0; !r.stop.Load(); depth++ {
					if r.cfg.MaxDepth > 0 && depth >= r.cfg.MaxDepth {
						break
					}
					buf = r.m.Actions(s, buf[:0])
					succ = succ[:0]
					for _, a := range buf {
						if ns, ok := r.m.Next(s, a); ok {
							succ = append(succ, ns)
						}
					}
					if len(succ) == 0 {
						if eb != 0 {
							r.terminal(fp, eb, getPath)
						}
						break
					}
					ns := succ[rng.IntN(len(succ))]
					nfp := r.fingerprint(ns)
					r.states.Add(1)
					r.vis.insert(nfp, fp)
					s, fp = ns, nfp
					path = append(path, fp)
					r.noteDepth(depth + 1)
					eb = r.check(s, fp, eb, getPath, gauges)
				}
			}
		})
	}
	wg.Wait()
}
