package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The linearizability model of one site's etcd API, in the style of etcd's
// tests/robustness: the state is the site's revision and its keys, and every
// response must carry exactly the revision the model is at, so a history is
// linearizable only if the site's revisions, values and mod revisions all fit one
// order that respects real time. Changes merged from other sites are writes by a
// "remote" client, pinned by the revision they committed at, with no time bounds.

// opKind names an operation of the model.
type opKind string

const (
	opGet    opKind = "get"    // Range of one key
	opList   opKind = "list"   // Range of a prefix
	opPut    opKind = "put"    // Put
	opDelete opKind = "delete" // DeleteRange of one key
	opPurge  opKind = "purge"  // DeleteRange of a prefix: one revision, several events
	// opCAS is Kubernetes' optimistic update: Txn If mod_revision(key) == Rev
	// Then Put Else Get.
	opCAS opKind = "cas"
	// opRemote is a revision committed by a merge: the events it made.
	opRemote opKind = "remote"
)

// linInput is an operation's request.
type linInput struct {
	Kind  opKind
	Key   string // a key; a prefix for list
	Value string
	Rev   int64 // cas: the expected mod revision; remote: the revision committed
	// Remote's events: the key's value after it, or deleted.
	Events []linKV
}

// linKV is a key's value as read or written.
type linKV struct {
	Key     string
	Value   string
	ModRev  int64
	Deleted bool // a remote event that deleted the key
}

// linOutput is an operation's response.
type linOutput struct {
	Rev       int64   // the response header's revision
	KVs       []linKV // get, list, and a failed cas: what was read
	Deleted   int64   // delete: keys deleted
	Succeeded bool    // cas
	// Unknown says the request failed: it may or may not have taken effect
	// (an op that did is given the revision its event committed at).
	Unknown bool
}

// linState is the model's state. It is never mutated: steps copy it.
type linState struct {
	Rev int64
	KVs map[string]linKV
}

func (s linState) get(key string) []linKV {
	if kv, ok := s.KVs[key]; ok {
		return []linKV{kv}
	}
	return nil
}

func (s linState) list(prefix string) []linKV {
	var out []linKV
	for _, k := range slices.Sorted(maps.Keys(s.KVs)) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, s.KVs[k])
		}
	}
	return out
}

// with returns the state after a write of kv at the next revision.
func (s linState) with(kvs ...linKV) linState {
	next := linState{Rev: s.Rev + 1, KVs: maps.Clone(s.KVs)}
	for _, kv := range kvs {
		if kv.Deleted {
			delete(next.KVs, kv.Key)
			continue
		}
		kv.ModRev = next.Rev
		next.KVs[kv.Key] = kv
	}
	return next
}

// step is the model's Step: whether out can answer in at s, and the next state.
func step(s linState, in linInput, out linOutput) (bool, linState) {
	if out.Unknown {
		// Only known to have happened when its event was found (it then has
		// a revision); otherwise it may have done nothing.
		if out.Rev == 0 {
			return true, s
		}
		return out.Rev == s.Rev+1, s.with(linKV{Key: in.Key, Value: in.Value, Deleted: in.Kind == opDelete})
	}
	switch in.Kind {
	case opGet:
		return out.Rev == s.Rev && slices.Equal(out.KVs, s.get(in.Key)), s
	case opList:
		return out.Rev == s.Rev && slices.Equal(out.KVs, s.list(in.Key)), s
	case opPut:
		return out.Rev == s.Rev+1, s.with(linKV{Key: in.Key, Value: in.Value})
	case opDelete:
		if _, ok := s.KVs[in.Key]; !ok {
			return out.Rev == s.Rev && out.Deleted == 0, s
		}
		return out.Rev == s.Rev+1 && out.Deleted == 1, s.with(linKV{Key: in.Key, Deleted: true})
	case opPurge:
		var gone []linKV
		for _, kv := range s.list(in.Key) {
			gone = append(gone, linKV{Key: kv.Key, Deleted: true})
		}
		if len(gone) == 0 {
			return out.Rev == s.Rev && out.Deleted == 0, s
		}
		return out.Rev == s.Rev+1 && out.Deleted == int64(len(gone)), s.with(gone...)
	case opCAS:
		cur, ok := s.KVs[in.Key]
		if ok && cur.ModRev == in.Rev || !ok && in.Rev == 0 {
			return out.Succeeded && out.Rev == s.Rev+1, s.with(linKV{Key: in.Key, Value: in.Value})
		}
		return !out.Succeeded && out.Rev == s.Rev && slices.Equal(out.KVs, s.get(in.Key)), s
	case opRemote:
		return in.Rev == s.Rev+1, s.with(in.Events...)
	}
	return false, s
}

// model is the porcupine model of one site, starting at revision startRev with
// the keys in start.
func model(start linState) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return start },
		Step: func(state, input, output any) (bool, any) {
			return step(state.(linState), input.(linInput), output.(linOutput))
		},
		Equal: func(a, b any) bool {
			x, y := a.(linState), b.(linState)
			return x.Rev == y.Rev && maps.Equal(x.KVs, y.KVs)
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linInput), output.(linOutput)
			return fmt.Sprintf("%s %s %q rev %d -> %+v", in.Kind, in.Key, in.Value, in.Rev, out)
		},
		DescribeState: func(state any) string {
			s := state.(linState)
			return fmt.Sprintf("rev %d %v", s.Rev, s.list(""))
		},
	}
}

// linHistory is a history as saved to a file when it fails, so that
// TestReplayHistories checks it again.
type linHistory struct {
	Start linState
	Ops   []linOp
}

type linOp struct {
	Client       int
	Call, Return int64
	In           linInput
	Out          linOutput
}

func (h linHistory) operations() []porcupine.Operation {
	ops := make([]porcupine.Operation, len(h.Ops))
	for i, o := range h.Ops {
		ops[i] = porcupine.Operation{ClientId: o.Client, Input: o.In, Call: o.Call, Output: o.Out, Return: o.Return}
	}
	return ops
}

// check tells whether h is linearizable; if not, it saves h and a porcupine
// visualisation next to each other under dir and names them in the error.
func (h linHistory) check(dir string) error {
	m := model(h.Start)
	res, info := porcupine.CheckOperationsVerbose(m, h.operations(), 0)
	if res == porcupine.Ok {
		return nil
	}
	f, err := os.CreateTemp(dir, "history-*.json")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := json.NewEncoder(f).Encode(h); err != nil {
		return err
	}
	html := strings.TrimSuffix(f.Name(), ".json") + ".html"
	if err := porcupine.VisualizePath(m, info, html); err != nil {
		return err
	}
	return fmt.Errorf("history of %d operations is %s: saved as %s (replay: copy it to testdata/histories), drawn in %s", len(h.Ops), res, f.Name(), html)
}
