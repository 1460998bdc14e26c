package consistency

import (
	"math/rand/v2"
	"testing"
)

func vals(v ...int32) [MaxFields]int32 {
	var out [MaxFields]int32
	copy(out[:], v)
	return out
}

func TestRules(t *testing.T) {
	s := func(c uint32, site uint8) Stamp { return Stamp{Counter: c, Site: site} }
	base := Create(Doc{Key: 7}, vals(1, 1, 1), s(1, 0))
	tests := []struct {
		name     string
		a, b     Doc
		live     bool
		want     [MaxFields]int32
		conflict bool
	}{
		{
			name: "concurrent-field-edits-both-survive",
			a:    Update(base, vals(2, 1, 1), 0),
			b:    Update(base, vals(1, 3, 1), 1),
			live: true, want: vals(2, 3, 1),
		},
		{
			name: "same-field-concurrent-greater-operation-wins",
			a:    Update(base, vals(5, 1, 1), 0),
			b:    Update(base, vals(9, 1, 1), 1),
			live: true, want: vals(9, 1, 1),
		},
		{
			name: "causally-later-write-wins",
			a:    Update(Update(base, vals(5, 1, 1), 1), vals(6, 1, 1), 0),
			b:    Update(base, vals(5, 1, 1), 1),
			live: true, want: vals(6, 1, 1),
		},
		{
			// Operation ids order concurrent writes of a field, as in
			// automerge: site 0's write of three fields numbers them 15-17,
			// so its third field beats site 1's single write (op 15).
			name: "more-operations-win-concurrent-field",
			a:    Update(base, vals(2, 2, 2), 0),
			b:    Update(base, vals(1, 1, 7), 1),
			live: true, want: vals(2, 2, 2),
		},
		{
			name: "delete-beats-concurrent-update",
			a:    Delete(base),
			b:    Update(base, vals(4, 4, 4), 1),
			live: false,
		},
		{
			name: "concurrent-creates-greater-wins-whole",
			a:    Create(Doc{Key: 7}, vals(1, 2, 3), s(1, 0)),
			b:    Create(Doc{Key: 7}, vals(7, 8, 0), s(1, 1)),
			live: true, want: vals(7, 8, 0), conflict: true,
		},
		{
			name: "create-after-delete-stands",
			a:    Create(Delete(base), vals(3, 3, 3), s(4, 0)),
			b:    Update(base, vals(1, 9, 1), 1),
			live: true, want: vals(3, 3, 3),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range [][2]Doc{{tc.a, tc.b}, {tc.b, tc.a}} {
				m, c := Merge(order[0], order[1])
				if m.Live() != tc.live {
					t.Fatalf("live = %v, want %v", m.Live(), tc.live)
				}
				if tc.live && m.Vals != tc.want {
					t.Errorf("vals = %v, want %v", m.Vals[:3], tc.want[:3])
				}
				if c != tc.conflict {
					t.Errorf("conflict = %v, want %v", c, tc.conflict)
				}
			}
		})
	}
}

// replica simulates one site writing one key, for the algebraic tests.
type replica struct {
	site  uint8
	clock uint32
	doc   Doc
}

func (r *replica) write(rng *rand.Rand) {
	r.clock++
	st := Stamp{Counter: r.clock, Site: r.site}
	switch {
	case !r.doc.Live():
		r.doc = Create(r.doc, vals(int32(rng.IntN(4)), int32(rng.IntN(4))), st)
	case rng.IntN(5) == 0:
		r.doc = Delete(r.doc)
	default:
		v := r.doc.Vals
		v[rng.IntN(3)] = int32(rng.IntN(4))
		r.doc = Update(r.doc, v, r.site)
	}
}

func (r *replica) receive(o Doc) {
	r.doc, _ = Merge(r.doc, o)
	r.clock = max(r.clock, o.Inc.Counter)
}

// TestAlgebra drives three sites through seeded random writes and merges and
// checks commutativity, associativity, idempotence and convergence.
func TestAlgebra(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		rs := []*replica{{site: 0}, {site: 1}, {site: 2}}
		for step := 0; step < 30; step++ {
			r := rs[rng.IntN(3)]
			if rng.IntN(3) == 0 {
				r.receive(rs[rng.IntN(3)].doc)
			} else {
				r.write(rng)
			}
			a, b, c := rs[0].doc, rs[1].doc, rs[2].doc
			ab, _ := Merge(a, b)
			ba, _ := Merge(b, a)
			if ab != ba {
				t.Fatalf("seed %d: not commutative:\n%+v\n%+v", seed, ab, ba)
			}
			abc1, _ := Merge(ab, c)
			bc, _ := Merge(b, c)
			abc2, _ := Merge(a, bc)
			if abc1 != abc2 {
				t.Fatalf("seed %d: not associative:\na=%+v\nb=%+v\nc=%+v\n1=%+v\n2=%+v", seed, a, b, c, abc1, abc2)
			}
			if aa, _ := Merge(a, a); aa != a {
				t.Fatalf("seed %d: not idempotent", seed)
			}
		}
		// Full exchange converges.
		var all Doc
		for _, r := range rs {
			all, _ = Merge(all, r.doc)
		}
		for _, r := range rs {
			r.receive(all)
			if r.doc != all {
				t.Fatalf("seed %d: site %d did not converge", seed, r.site)
			}
		}
	}
}
