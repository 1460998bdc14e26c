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
	gaugeMax    []int64
}

func (r *run[S, A]) fingerprint(s S) uint64 {
	if r.sym != nil {
		return normFP(r.sym.CanonicalFingerprint(s))
	}
	return normFP(r.m.Fingerprint(s))
}

// check evaluates the unsettled properties of a newly discovered state and
// returns the eventually bits still pending after it.
func (r *run[S, A]) check(s S, fp, ebits uint64, path func() []uint64) uint64 {
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
		r.measure(s)
	}
	return ebits
}

func (r *run[S, A]) measure(s S) {
	vals := make([]int64, len(r.gaugeNames))
	r.gauge.Measure(s, vals)
	r.mu.Lock()
	for i, v := range vals {
		if v > r.gaugeMax[i] {
			r.gaugeMax[i] = v
		}
	}
	r.mu.Unlock()
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
		r.gaugeMax = make([]int64, len(r.gaugeNames))
		for i := range r.gaugeMax {
			r.gaugeMax[i] = -1 << 63
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
	switch cfg.Mode {
	case BFS:
		complete = r.bfs()
	case DFS:
		complete = r.dfs()
	case Simulation:
		r.simulate()
	}
	timedOut := r.stop.Load() && cfg.Timeout > 0 && time.Since(start) >= cfg.Timeout
	close(done)
	bg.Wait()
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
		eb := r.check(s, fp, r.eventuallyMask, nil)
		out = append(out, node[S]{s: s, fp: fp, ebits: eb})
	}
	return out
}

// expand generates the successors of n, checks the new ones and passes each
// new one below the depth bound to emit; count tallies generated states.
func (r *run[S, A]) expand(n node[S], buf *[]A, emit func(node[S]), count *uint64) {
	acts := r.m.Actions(n.s, (*buf)[:0])
	*buf = acts
	succ := 0
	for _, a := range acts {
		ns, ok := r.m.Next(n.s, a)
		if !ok {
			continue
		}
		succ++
		*count++
		fp := r.fingerprint(ns)
		if !r.vis.insert(fp, n.fp) {
			continue
		}
		eb := r.check(ns, fp, n.ebits, nil)
		d := n.depth + 1
		if r.cfg.MaxDepth == 0 || int(d) < r.cfg.MaxDepth {
			emit(node[S]{s: ns, fp: fp, ebits: eb, depth: d})
		} else {
			r.noteDepth(int(d))
		}
	}
	if succ == 0 && n.ebits != 0 {
		r.terminal(n.fp, n.ebits, nil)
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
				var buf []A
				var out []node[S]
				var count uint64
				emit := func(n node[S]) { out = append(out, n) }
				for !r.stop.Load() {
					lo := int(next.Add(chunk)) - chunk
					if lo >= len(frontier) {
						break
					}
					hi := min(lo+chunk, len(frontier))
					for i := lo; i < hi; i++ {
						r.expand(frontier[i], &buf, emit, &count)
						// Let the collector take expanded states: a BFS
						// level can hold millions of them.
						frontier[i] = node[S]{}
					}
					r.states.Add(count)
					count = 0
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
			var buf []A
			var stack []node[S]
			var count uint64
			emit := func(n node[S]) { stack = append(stack, n) }
			for {
				if len(stack) == 0 {
					r.states.Add(count)
					count = 0
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
					r.expand(n, &buf, emit, &count)
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
				if count >= 1024 {
					r.states.Add(count)
					count = 0
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
				eb := r.check(s, fp, r.eventuallyMask, getPath)
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
					eb = r.check(s, fp, eb, getPath)
				}
			}
		})
	}
	wg.Wait()
}
