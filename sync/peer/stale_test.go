package peer

import (
	"context"
	"fmt"
	"testing"

	"github.com/rhizome-kv/rhizome/store"
)

// TestStalePullsAnsweredOnce: Pulls that left before the answer to an earlier
// one arrived (queued behind a cut, all with the same vector) are not each
// answered with the same changes again; an answer that is lost is sent again
// by the answer to the Pull after next.
func TestStalePullsAnsweredOnce(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t, "a"), openStore(t, "b")
	ea, eb := NewEngine(a, 50), NewEngine(b, 50)
	write := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := a.Update(ctx, func(tx *store.WriteTxn) error {
				return tx.Put(fmt.Appendf(nil, "/a/%d", i), []byte("v"), 0)
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// answer hands b's Pull to a and returns a's answer.
	answer := func(pull Envelope) []Envelope {
		t.Helper()
		out, err := ea.Handle(ctx, pull.Msg)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	changes := func(envs []Envelope) (n int) {
		for _, e := range envs {
			n += len(e.Msg.Changes)
		}
		return n
	}
	deliver := func(envs []Envelope) {
		t.Helper()
		for _, e := range envs {
			if _, err := eb.Handle(ctx, e.Msg); err != nil {
				t.Fatal(err)
			}
		}
	}

	write(0, 300)
	stale := []Envelope{eb.Pull("a"), eb.Pull("a"), eb.Pull("a")}
	var answers [][]Envelope
	for _, p := range stale {
		answers = append(answers, answer(p))
	}
	if got := []int{changes(answers[0]), changes(answers[1]), changes(answers[2])}; got[0] != 300 || got[1] != 0 || got[2] != 0 {
		t.Fatalf("three Pulls with one vector answered with %v changes, want [300 0 0]", got)
	}
	for _, envs := range answers {
		deliver(envs)
	}
	if st := eb.Stats(); st.Merged != 300 || st.Duplicates != 0 {
		t.Fatalf("b merged %d, duplicates %d; want 300 and 0", st.Merged, st.Duplicates)
	}

	// An answer lost: the next Pull left before anything of it could arrive
	// (in flight, not sent again); the one after acks that Pull's answer and
	// still lacks what the lost one brought: sent again.
	write(300, 310)
	if n := changes(answer(eb.Pull("a"))); n != 10 {
		t.Fatalf("answered with %d changes, want the 10 new ones", n)
	}
	next := answer(eb.Pull("a"))
	if n := changes(next); n != 0 {
		t.Fatalf("a Pull that left before the last answer arrived got %d changes again", n)
	}
	deliver(next)
	again := answer(eb.Pull("a"))
	if n := changes(again); n != 10 {
		t.Fatalf("after the lost answer, the Pull after next got %d changes, want 10", n)
	}
	deliver(again)
	if st := eb.Stats(); st.Merged != 310 || st.Duplicates != 0 {
		t.Fatalf("b merged %d, duplicates %d; want 310 and 0", st.Merged, st.Duplicates)
	}
}
