package crdt

import (
	"bytes"
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

// TestEditedFields checks editedFields against what it stands for: whenever
// it answers, its fields are flatten's of the new value, exactly; values
// that are not a document, or change the root's members, are left to
// flatten. New values are the pod with one or two leaves rewritten (a
// scalar, an object or a list kept whole, or text that is no value), with an
// annotation added or a container's image changed (members added, a list
// cut by keys), and with bytes inserted, removed or replaced anywhere (most
// of them no document); a status update, the write it exists for, and the
// others above must take the fast path.
func TestEditedFields(t *testing.T) {
	for _, newline := range []bool{false, true} {
		pod, _ := bytes.CutSuffix(benchPod(t, 0), []byte("\n"))
		if newline {
			pod = append(slices.Clip(pod), '\n')
		}
		fields, ok := flattenValid(pod, nil)
		if !ok {
			t.Fatal("pod is not a document")
		}
		var leaves []string
		for k, v := range fields {
			if strings.HasPrefix(k, leafPrefix) && strings.Count(string(pod), v) == 1 {
				leaves = append(leaves, k)
			}
		}
		slices.Sort(leaves)
		texts := []string{`"x"`, `"y\"z"`, `12`, `-1.5e3`, `true`, `null`, `{"a":1}`, `{"a":"}"}`, `{}`, `[1,2]`, `[]`,
			`1 `, `"open`, `{"a":1`, `{"a":1}}`, `1,2`, `"a"b`, ``, `,"x":1`, `"`, `}`, `{`, `\"`, `:`, ` `, `0`}
		rng := rand.New(rand.NewPCG(3, 4))
		taken, kinds := 0, map[string]int{}
		for i := range 9000 {
			value := string(pod)
			rewrite := func(leaf, text string) { value = strings.Replace(value, fields[leaf], text, 1) }
			kind := ""
			switch i % 6 {
			case 0:
				kind = "status"
				rewrite(leafPrefix+"/status", fmt.Sprintf(`{"phase":"Running","message":"%d"}`, i))
			case 1:
				kind = "leaf"
				rewrite(leaves[rng.IntN(len(leaves))], texts[rng.IntN(len(texts))])
			case 2:
				kind = "two leaves"
				a, b := rng.IntN(len(leaves)), rng.IntN(len(leaves))
				rewrite(leaves[a], texts[rng.IntN(len(texts))])
				if b != a {
					rewrite(leaves[b], texts[rng.IntN(len(texts))])
				}
			case 3:
				kind = "members"
				value = strings.Replace(value, `"annotations":{`, fmt.Sprintf(`"annotations":{"a%d":%s,`, i, texts[rng.IntN(len(texts))]), 1)
				value = strings.Replace(value, `"image":"`, fmt.Sprintf(`"image":"%d`, i), 1+rng.IntN(2))
			default: // bytes changed anywhere
				from := rng.IntN(len(value))
				to := min(len(value), from+rng.IntN(4))
				value = value[:from] + texts[rng.IntN(len(texts))] + value[to:]
			}
			d := &Doc{kind: Document, value: pod, fields: maps.Clone(fields), clean: true}
			got, ok := d.editedFields([]byte(value), false)
			if !ok {
				continue
			}
			taken++
			kinds[kind]++
			want, isDoc := flatten([]byte(value), nil)
			if !isDoc || !maps.Equal(got, want) {
				t.Fatalf("new value %q: editedFields' fields differ from flatten's (a document: %v)", value, isDoc)
			}
			if !maps.Equal(d.fields, fields) {
				t.Fatal("editedFields changed the Doc's own fields")
			}
		}
		if kinds["status"] != 1500 || kinds["two leaves"] == 0 || kinds["members"] < 500 || taken < 3000 {
			t.Fatalf("fast path taken for %d of 9000 new values: %v", taken, kinds)
		}
		t.Logf("newline %v: fast path taken for %d of 9000 new values: %v", newline, taken, kinds)
	}
	// A list flatten cuts by its elements' keys is kept whole while they are
	// not distinct, and cut once they are: its new text is cut, not taken as
	// a leaf.
	old := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","annotations":{"a":"` + strings.Repeat("x", 400) +
		`"}},"spec":{"containers":[{"image":"x"},{"image":"x"}]}}`)
	fields, _ := flattenValid(old, nil)
	if _, whole := fields[leafPrefix+"/spec/containers"]; !whole {
		t.Fatal("a list of containers of one name is cut")
	}
	d := &Doc{kind: Document, value: old, fields: fields, clean: true}
	value := bytes.Replace(old, []byte(`{"image"`), []byte(`{"name":"c","image"`), 1)
	got, ok := d.editedFields(value, true)
	if want, _ := flattenValid(value, nil); !ok || !maps.Equal(got, want) {
		t.Fatalf("containers named: editedFields answers %v (%v), flatten %v", got, ok, want)
	}
}
