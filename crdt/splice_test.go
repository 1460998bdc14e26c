package crdt

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSpliceLeaves checks spliceLeaves against what it stands for: whenever
// it splices, the value is materialize's of the edited fields, byte for byte,
// and cuts back into exactly those fields; and a pod's status update, the
// edit it exists for, is spliced (the status is one leaf: kube keeps it whole).
func TestSpliceLeaves(t *testing.T) {
	pod := benchPod(t, 0)
	fields, ok := flattenValid(pod, nil)
	if !ok {
		t.Fatal("pod is not a document")
	}
	var leaves []string
	for k := range fields {
		if strings.HasPrefix(k, leafPrefix) {
			leaves = append(leaves, k)
		}
	}
	slices.Sort(leaves)
	texts := []string{`"x"`, `"y\"z"`, `12`, `-1.5e3`, `true`, `null`, `{"a":1}`, `{"a":"}"}`, `{}`, `[1,2]`, `[]`,
		`1 `, `"open`, `{"a":1`, `{"a":1}}`, `1,2`, `"a"b`, ``}
	rng := rand.New(rand.NewPCG(1, 2))
	spliced, status := 0, false
	for i := range 3000 {
		d := &Doc{kind: Document, value: pod, fields: maps.Clone(fields), clean: true}
		set := map[string]string{}
		for range 1 + rng.IntN(3) {
			set[leaves[rng.IntN(len(leaves))]] = texts[rng.IntN(len(texts))]
		}
		if i%3 == 0 { // a status update alone
			clear(set)
			set[leafPrefix+"/status"] = fmt.Sprintf(`{"phase":"Running","message":"%d"}`, i)
		}
		var del []string
		if i%50 == 0 {
			del = []string{leaves[rng.IntN(len(leaves))]}
		}
		value, ok := d.spliceLeaves(set, del)
		if !ok {
			continue
		}
		spliced++
		status = status || len(set) == 1 && set[leafPrefix+"/status"] != ""
		want := maps.Clone(fields)
		maps.Copy(want, set)
		if m := materialize(want, nil); string(m) != string(value) {
			t.Fatalf("edit %v: spliced\n%s\nmaterialized\n%s", set, value, m)
		}
		if back, _ := flattenValid(value, nil); !maps.Equal(back, want) {
			t.Fatalf("edit %v: the spliced value cuts into other fields than the edit's", set)
		}
	}
	if spliced < 1000 || !status {
		t.Fatalf("%d of 3000 edits spliced (a status alone: %v): the fast path is not taken", spliced, status)
	}
	t.Logf("%d of 3000 edits spliced", spliced)
}
