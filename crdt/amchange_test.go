package crdt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestChangeBytesAlike compares the changes written in Go (a body, a
// never-edited body's first edit) with those automerge writes for the same
// fields, byte for byte, over pods and random field sets: small and large
// values, runs of equal lengths, edits by the body's own site and another's,
// edits that only add fields or only delete them.
func TestChangeBytesAlike(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		body := randomFields(rnd)
		if i == 0 {
			body, _ = flatten(benchPod(t, 0), nil)
		}
		site := []string{"a", "b"}[rnd.IntN(2)]
		want, err := newDocAM(body, "a")
		if err != nil {
			t.Fatal(err)
		}
		wantBody := want.SaveIncremental()
		got, hash := bodyChange(body, "a").encode()
		if !bytes.Equal(got, wantBody) {
			t.Fatalf("case %d: body\n got %x\nwant %x", i, got, wantBody)
		}
		next := randomEdit(rnd, body)
		if i == 0 {
			next, _ = flatten(benchPod(t, 1), nil)
		}
		set, del := diffFields(body, next)
		if len(set)+len(del) == 0 {
			continue
		}
		msg := fmt.Sprintf("%d@%s", i+2, site)
		if err := want.SetActorID(actorID(site)); err != nil {
			t.Fatal(err)
		}
		if err := writeFields(want, set, del); err != nil {
			t.Fatal(err)
		}
		h, err := want.Commit(msg, commitOptions())
		if err != nil {
			t.Fatal(err)
		}
		ch, err := want.Change(h)
		if err != nil {
			t.Fatal(err)
		}
		gotEdit, gotHash := firstEdit(body, "a", hash, set, del, site, msg).encode()
		if gotHash != h || !bytes.Equal(gotEdit, want.SaveIncremental()) {
			t.Fatalf("case %d: edit (set %d, del %d)\n got %x\nwant %x (saved %x)", i, len(set), len(del), gotEdit, ch.Save(), want.SaveIncremental())
		}
	}
}

// randomFields returns a few fields with short and long values, often of
// equal lengths, and keys that sort in runs.
func randomFields(rnd *rand.Rand) map[string]string {
	n := 1 + rnd.IntN(40)
	fields := make(map[string]string, n)
	for range n {
		k := fmt.Sprintf("=/f%d", rnd.IntN(60))
		fields[k] = randomValue(rnd)
	}
	return fields
}

func randomValue(rnd *rand.Rand) string {
	switch rnd.IntN(4) {
	case 0:
		return strings.Repeat("s", 1+rnd.IntN(2))
	case 1:
		return strings.Repeat("é", 100+rnd.IntN(900))
	}
	return fmt.Sprintf("%q", strings.Repeat("v", rnd.IntN(8)))
}

// randomEdit returns fields with some values changed, some removed and some
// added.
func randomEdit(rnd *rand.Rand, fields map[string]string) map[string]string {
	next := make(map[string]string, len(fields))
	mode := rnd.IntN(4) // 0: mixed, 1: only sets, 2: only deletes, 3: only additions
	for k, v := range fields {
		switch r := rnd.IntN(4); {
		case r == 0 && (mode == 0 || mode == 1):
			next[k] = randomValue(rnd)
		case r == 1 && (mode == 0 || mode == 2):
		default:
			next[k] = v
		}
	}
	if mode == 0 || mode == 3 {
		for range rnd.IntN(4) {
			next[fmt.Sprintf("=/g%d", rnd.IntN(10))] = randomValue(rnd)
		}
	}
	return next
}
