package checker

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
)

// compactGrid is grid with a Compact frontier and an Expander that counts
// its calls.
type compactGrid struct {
	grid
	expanded *atomic.Int64
}

type gridCoder struct {
	g        grid
	expanded *atomic.Int64
}

func (g compactGrid) NewCoder() Coder[pt] { return &gridCoder{g: g.grid, expanded: g.expanded} }

func (c *gridCoder) Append(dst []byte, s pt) []byte {
	dst = binary.AppendUvarint(dst, uint64(s.X))
	dst = binary.AppendUvarint(dst, uint64(s.Y))
	if s.H {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func (c *gridCoder) Decode(src []byte) (pt, error) {
	x, k := binary.Uvarint(src)
	if k <= 0 {
		return pt{}, errors.New("bad x")
	}
	y, k2 := binary.Uvarint(src[k:])
	if k2 <= 0 || len(src) != k+k2+1 {
		return pt{}, errors.New("bad y")
	}
	return pt{X: int(x), Y: int(y), H: src[k+k2] == 1}, nil
}

func (c *gridCoder) Expand(s pt, buf []int, yield func(int, pt)) []int {
	c.expanded.Add(1)
	buf = c.g.Actions(s, buf[:0])
	for _, a := range buf {
		if ns, ok := c.g.Next(s, a); ok {
			yield(a, ns)
		}
	}
	return buf
}

// TestCompactBFS checks that the compact frontier explores exactly what the
// live one does, with every thread count and with symmetry.
func TestCompactBFS(t *testing.T) {
	for _, cfg := range []Config{
		{Mode: BFS, Threads: 1, KeepGoing: true},
		{Mode: BFS, Threads: 3, KeepGoing: true},
		{Mode: BFS, Threads: 2, KeepGoing: true, Symmetry: true},
		{Mode: BFS, Threads: 2, MaxDepth: 4, KeepGoing: true},
		{Mode: BFS, Threads: 2},
	} {
		live := cfg
		live.NoCompact = true
		var ca, cb atomic.Int64
		a, err := Run[pt, int](compactGrid{grid{n: 5}, &ca}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run[pt, int](compactGrid{grid{n: 5}, &cb}, live)
		if err != nil {
			t.Fatal(err)
		}
		if ca.Load() == 0 || cb.Load() != 0 {
			t.Errorf("%+v: Expand called %d times compact, %d live", cfg, ca.Load(), cb.Load())
		}
		if a.States != b.States || a.UniqueStates != b.UniqueStates || a.MaxDepth != b.MaxDepth || a.Complete != b.Complete {
			t.Errorf("%+v: compact %d/%d/%d/%v, live %d/%d/%d/%v", cfg, a.States, a.UniqueStates, a.MaxDepth, a.Complete,
				b.States, b.UniqueStates, b.MaxDepth, b.Complete)
		}
		for i, p := range a.Properties {
			if p != b.Properties[i] {
				t.Errorf("%+v: %s: compact %s, live %s", cfg, p.Name, p.Status, b.Properties[i].Status)
			}
		}
		if len(a.Violations) != len(b.Violations) {
			t.Fatalf("%+v: %d violations, live %d", cfg, len(a.Violations), len(b.Violations))
		}
		for i := range a.Violations {
			if len(a.Violations[i].Steps) != len(b.Violations[i].Steps) {
				t.Errorf("%+v: %s: trace of %d steps, live %d", cfg, a.Violations[i].Property,
					len(a.Violations[i].Steps), len(b.Violations[i].Steps))
			}
		}
	}
}
