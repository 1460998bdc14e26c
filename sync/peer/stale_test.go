package peer

import (
	"context"
	"fmt"
	"maps"
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

// lagging is a site's store whose durable vector stays where it was frozen, as
// when its committer has applied changes it has not yet made durable.
type lagging struct {
	*store.Store
	frozen map[string]uint64 // nil: not frozen
}

func (l *lagging) DurableVersionVector() map[string]uint64 {
	if l.frozen != nil {
		return maps.Clone(l.frozen)
	}
	return l.Store.DurableVersionVector()
}

// TestAnswerAckedOnceDurable: a Pull says what is durable, so it acks an answer
// only once the changes that answer brought are durable. A Pull that left
// while they were applied but not yet durable does not ack it, and the answering
// site does not take them for lost and send them all again.
func TestAnswerAckedOnceDurable(t *testing.T) {
	ctx := context.Background()
	a, b := openStore(t, "a"), openStore(t, "b")
	lb := &lagging{Store: b}
	ea, eb := NewEngine(a, 50), NewEngine(lb, 50)
	for i := range 300 {
		if _, err := a.Update(ctx, func(tx *store.WriteTxn) error {
			return tx.Put(fmt.Appendf(nil, "/a/%d", i), []byte("v"), 0)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// pull sends b's Pull to a, delivers a's answer to b, and returns the Pull
	// and how many changes the answer brought.
	pull := func() (Message, int) {
		t.Helper()
		p := eb.Pull("a").Msg
		out, err := ea.Handle(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range out {
			n += len(e.Msg.Changes)
			if _, err := eb.Handle(ctx, e.Msg); err != nil {
				t.Fatal(err)
			}
		}
		return p, n
	}
	lb.frozen = b.DurableVersionVector()
	if _, n := pull(); n != 300 {
		t.Fatalf("the first Pull was answered with %d changes, want 300", n)
	}
	// A Pull while those changes are not durable does not ack the answer.
	if p, n := pull(); p.Acked != 0 || n != 0 {
		t.Fatalf("a Pull whose vector lacks an answer's changes acked %d and was sent %d changes again, want no ack and 0", p.Acked, n)
	}
	lb.frozen = nil
	last, _ := pull()
	if p, n := pull(); p.Acked != last.PullID || n != 0 {
		t.Fatalf("once durable: a Pull acked %d (want the last answer's, %d) and was sent %d changes, want 0", p.Acked, last.PullID, n)
	}
	if st := eb.Stats(); st.Merged != 300 || st.Duplicates != 0 {
		t.Fatalf("b merged %d, duplicates %d; want 300 and 0", st.Merged, st.Duplicates)
	}
}
