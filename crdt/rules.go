package crdt

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/automerge/automerge-go"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Validator tells whether a materialised value is one the value's API accepts
// (for Kubernetes objects, what kube-apiserver's validation would say). It must be
// pure and deterministic, and the same at every replica: the value a document
// shows is a function of the changes it holds and of this answer.
type Validator func(value []byte) error

// SetValidator gives the document the validator its merges are checked by (nil:
// none). It is not part of the document's state: the caller sets it on every Doc
// it creates or decodes, before applying changes to it.
func (d *Doc) SetValidator(v Validator) { d.validate = v }

// Schemas finds the merge units of a Kubernetes object by its apiVersion and
// kind (ok false: it merges by JSON path). kube.Object knows the built-in
// kinds; (*kube.CustomResources).Object adds the kinds of the CRDs it was fed.
// Like a Validator it must be deterministic and, for a given set of stored
// CRDs, the same at every replica.
type Schemas func(apiVersion, kind string) (kube.Node, bool)

// SetSchemas gives the document the schemas its fields follow (nil: the
// built-in kinds'). It is not part of the document's state: the caller sets it
// on every Doc it creates, before applying changes to it, and passes it to
// DecodeDoc.
func (d *Doc) SetSchemas(s Schemas) { d.schemas = s }

// ConflictKind is how a conflict was resolved.
type ConflictKind uint8

const (
	// ConcurrentCreate: two incarnations of the key were created concurrently;
	// the Winner's stands whole, the Loser's is dropped.
	ConcurrentCreate ConflictKind = iota + 1
	// Validation: merging concurrent edits gave a value the Validator rejected;
	// the value shown is the Winner's write whole, the Loser's write is not seen
	// until a later write builds on it.
	Validation
	// Allocation: two objects hold a value Kubernetes allocates once cluster-wide
	// (a Service's ClusterIP or NodePort); the Winner keeps it and the Loser is
	// given another or flagged. Recorded by the store's caller
	// (store.WriteTxn.RecordConflict), never by a merge: Winner and Loser are
	// the two objects' incarnations.
	Allocation
)

func (k ConflictKind) String() string {
	switch k {
	case ConcurrentCreate:
		return "concurrent-create"
	case Validation:
		return "validation"
	case Allocation:
		return "allocation"
	}
	return fmt.Sprintf("conflict-kind-%d", uint8(k))
}

// Conflict records one resolved conflict of a key. Winner and Loser name writes
// (their Stamps carry the writing sites): incarnations for ConcurrentCreate, the
// concurrent edits at the document's heads for Validation.
type Conflict struct {
	Kind          ConflictKind
	Winner, Loser Stamp
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s: %s won over %s", c.Kind, c.Winner, c.Loser)
}

// ConflictLog returns the conflicts this replica has seen, oldest first (the
// latest maxConflicts of them). Which replica records a conflict, and when,
// depends on the order changes arrive; the value never does.
func (d *Doc) ConflictLog() []Conflict { return slices.Clone(d.conflicts) }

// ConflictCount returns how many conflicts this replica has recorded for the key,
// ever: compare it before and after Apply to learn of new ones.
func (d *Doc) ConflictCount() uint64 { return d.recorded }

// Conflicts returns the losing incarnations of concurrent creates this replica has
// seen, oldest first.
func (d *Doc) Conflicts() []Stamp {
	var out []Stamp
	for _, c := range d.conflicts {
		if c.Kind == ConcurrentCreate {
			out = append(out, c.Loser)
		}
	}
	return out
}

func (d *Doc) recordConflict(c Conflict) {
	if slices.Contains(d.conflicts, c) {
		return
	}
	d.recorded++
	d.conflicts = append(d.conflicts, c)
	if len(d.conflicts) > maxConflicts {
		d.conflicts = d.conflicts[len(d.conflicts)-maxConflicts:]
	}
}

// head is one of the concurrent edits a merged document holds: the write that
// made it and the fields as that writer left them.
type head struct {
	stamp  Stamp
	hash   automerge.ChangeHash
	fields map[string]string
}

// heads returns the document's concurrent edits, ordered by their writes' stamps
// (then hashes): the last is the Lamport-latest write.
func (d *Doc) heads(hs []automerge.ChangeHash, known map[automerge.ChangeHash]map[string]string) ([]head, error) {
	out := make([]head, 0, len(hs))
	for _, h := range hs {
		ch, err := d.am.Change(h)
		if err != nil {
			return nil, fmt.Errorf("crdt: read head: %w", err)
		}
		f, ok := known[h]
		if !ok {
			if f, err = fieldsAt(d.am, []automerge.ChangeHash{h}); err != nil {
				return nil, err
			}
		}
		out = append(out, head{stamp: parseStamp(ch.Message()), hash: h, fields: f})
	}
	slices.SortFunc(out, func(a, b head) int {
		if c := a.stamp.Compare(b.stamp); c != 0 {
			return c
		}
		return bytes.Compare(a.hash[:], b.hash[:])
	})
	return out, nil
}

// mergeRules materialises a document whose history ends in concurrent edits
// (hs, more than one head) by the rules a field-by-field merge alone does not
// keep (kube.Concurrent): a Kubernetes object's generation moves when the
// merged spec is not the spec every side saw, and a merge the validator
// rejects shows the Lamport-latest edit's whole value instead, recording the
// others as conflicts. Everything here is a function of the changes held, so
// every replica decides alike.
func (d *Doc) mergeRules(hs []automerge.ChangeHash, known map[automerge.ChangeHash]map[string]string) error {
	var tips []head
	tip := func(i int) (map[string]string, error) {
		if tips == nil {
			var err error
			if tips, err = d.heads(hs, known); err != nil {
				return nil, err
			}
		}
		return tips[i].fields, nil
	}
	ops := fieldOps{d: d}
	_, win, err := kube.Concurrent(d.fields, len(hs), tip, ops.rules())
	if err != nil {
		return err
	}
	if win < 0 {
		d.value = ops.value
		return nil
	}
	d.value = materialize(tips[win].fields, d.schemas)
	for _, lost := range tips[:win] {
		d.recordConflict(Conflict{Kind: Validation, Winner: tips[win].stamp, Loser: lost.stamp})
	}
	return nil
}

const (
	generationField = leafPrefix + "/metadata/generation"
	specPath        = "/spec"
)

// fieldOps gives kube.Concurrent its operations on a document's flat fields,
// under the document's schemas and validator, materialising the merge once:
// d.value already holds the merged fields' value, and only a moved generation
// makes another.
type fieldOps struct {
	d      *Doc
	bumped bool   // WithGeneration was called
	value  []byte // the value of the fields Valid was given
}

func (o *fieldOps) rules() *kube.HeadRules[map[string]string] {
	return &kube.HeadRules[map[string]string]{
		Generation: func(f map[string]string) (int64, bool) {
			g, _ := strconv.ParseInt(f[generationField], 10, 64)
			return g, needsGeneration(f, o.d.schemas)
		},
		WithGeneration: func(f map[string]string, g int64) map[string]string {
			o.bumped = true
			out := maps.Clone(f)
			out[generationField] = strconv.FormatInt(g, 10)
			return out
		},
		SameSpec: func(a, b map[string]string) bool { return sameSubtree(a, b, specPath) },
		Valid: func(f map[string]string) bool {
			o.value = o.d.value
			if o.bumped {
				o.value = materialize(f, o.d.schemas)
			}
			return o.d.validate == nil || o.d.validate(o.value) == nil
		},
	}
}

// needsGeneration reports whether fields are a built-in Kubernetes object with a
// generation and a spec, whose generation a merge may have to move.
func needsGeneration(fields map[string]string, schemas Schemas) bool {
	if _, ok := fields[generationField]; !ok {
		return false
	}
	if !fieldsNode(schemas, fields).Known() {
		return false
	}
	for k := range fields {
		if inSubtree(k, specPath) {
			return true
		}
	}
	return false
}

// inSubtree reports whether the field named k lies at path or below it.
func inSubtree(k, path string) bool {
	p := k[1:]
	return p == path || strings.HasPrefix(p, path+"/")
}

// sameSubtree reports whether a and b hold the same fields at path and below.
func sameSubtree(a, b map[string]string, path string) bool {
	n := 0
	for k, v := range a {
		if k == newlineField || !inSubtree(k, path) {
			continue
		}
		n++
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	for k := range b {
		if k != newlineField && inSubtree(k, path) {
			n--
		}
	}
	return n == 0
}

// parseStamp reads the stamp a change carries as its message (zero for changes
// that carry none: bodies, and changes made before stamps were recorded).
func parseStamp(msg string) Stamp {
	counter, site, ok := strings.Cut(msg, "@")
	n, err := strconv.ParseUint(counter, 10, 64)
	if !ok || err != nil {
		return Stamp{}
	}
	return Stamp{Counter: n, Site: site}
}
