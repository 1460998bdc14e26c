package crdt

import "testing"

// TestArrive pins the incarnation rule change by change (the model checker
// calls the same function state by state).
func TestArrive(t *testing.T) {
	zero, old, held, newer := Stamp{}, Stamp{1, "b"}, Stamp{2, "a"}, Stamp{2, "b"}
	for _, tc := range []struct {
		name     string
		held     Stamp
		ended    bool
		op       Op
		inc      Stamp
		fate     Fate
		conflict bool
	}{
		{"first create", zero, false, OpCreate, held, Replaces, false},
		{"edit before create", zero, false, OpUpdate, held, Early, false},
		{"concurrent create wins", held, false, OpCreate, newer, Replaces, true},
		{"create after delete", held, true, OpCreate, newer, Replaces, false},
		{"concurrent create loses", held, false, OpCreate, old, Dropped, true},
		{"losing create of an ended incarnation", held, true, OpCreate, old, Dropped, true},
		{"edit of an older incarnation", held, false, OpUpdate, old, Dropped, false},
		{"delete of an older incarnation", held, false, OpDelete, old, Dropped, false},
		{"edit of a newer incarnation", held, false, OpUpdate, newer, Early, false},
		{"edit", held, false, OpUpdate, held, Edits, false},
		{"delete", held, false, OpDelete, held, Edits, false},
		{"duplicate create", held, false, OpCreate, held, Edits, false},
		{"edit after delete", held, true, OpUpdate, held, Dropped, false},
		{"delete after delete", held, true, OpDelete, held, Dropped, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fate, conflict := Arrive(tc.held, tc.ended, tc.op, tc.inc)
			if fate != tc.fate || conflict != tc.conflict {
				t.Errorf("Arrive(%v, ended=%v, op %d, %v) = %d, %v; want %d, %v", tc.held, tc.ended, tc.op, tc.inc, fate, conflict, tc.fate, tc.conflict)
			}
		})
	}
}

// TestEqualConcurrentCreatesNoConflict: two sites that create a key with the
// same value (a deterministic repair written at both) record no conflict;
// different values do, at both sites.
func TestEqualConcurrentCreatesNoConflict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		va, vb string
		want   uint64
	}{
		{"equal documents", `{"spec":{"x":1}}`, `{"spec":{"x":1}}`, 0},
		{"equal registers", "opaque", "opaque", 0},
		{"different documents", `{"spec":{"x":1}}`, `{"spec":{"x":2}}`, 1},
		{"different registers", "opaque", "other", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a, b Doc
			ca, _, err := a.Put([]byte(tc.va), Stamp{Counter: 1, Site: "a"})
			if err != nil {
				t.Fatal(err)
			}
			cb, _, err := b.Put([]byte(tc.vb), Stamp{Counter: 1, Site: "b"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Apply(cb); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Apply(ca); err != nil {
				t.Fatal(err)
			}
			if a.ConflictCount() != tc.want || b.ConflictCount() != tc.want {
				t.Errorf("conflicts a %v, b %v; want %d each", a.ConflictLog(), b.ConflictLog(), tc.want)
			}
			if a.Digest() != b.Digest() || a.Incarnation() != (Stamp{Counter: 1, Site: "b"}) {
				t.Errorf("replicas differ or the wrong incarnation stands: %v %v", a.Incarnation(), b.Incarnation())
			}
		})
	}
}
