package store

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Failpoints of the one commit path, besides the staged ones of a commit
// written in parts (commit.go). Config.Failpoint is called with the name as
// the commit passes each point; a crash there (the hook ending the process)
// tests what a crash at that moment leaves, an error fails the commit there
// and stops the store.
const (
	// FailpointBeforeCommit: a batch applied to documents and index in
	// memory, its badger transaction not yet written.
	FailpointBeforeCommit = "commit/before"
	// FailpointAfterCommit: the batch's transaction durable (fsynced), the
	// revision not yet visible to readers nor acknowledged.
	FailpointAfterCommit = "commit/after"
	// FailpointBeforePublish: the batch durable and readable, its events
	// not yet published to watchers, its requests not yet acknowledged.
	FailpointBeforePublish = "commit/before-publish"
	// FailpointSnapshotInstall: mid-install of another site's snapshot,
	// keys this site had and the snapshot lacks dropped in memory, the
	// snapshot's documents not yet taken.
	FailpointSnapshotInstall = "snapshot/install"
	// FailpointApplyRemote: mid-sync, after each change received from
	// another site is merged in memory, before its batch commits.
	FailpointApplyRemote = "sync/apply-remote"
)

// Failpoints lists every failpoint name, for ParseFailpoints.
func Failpoints() []string {
	return []string{
		FailpointBeforeCommit, FailpointAfterCommit, FailpointBeforePublish,
		FailpointSnapshotInstall, FailpointApplyRemote,
		FailpointStagedPart, FailpointStagedRecord, FailpointStagedMove,
	}
}

// ErrFailpoint is the error a failpoint set to "error" returns.
var ErrFailpoint = errors.New("store: failpoint")

// ParseFailpoints builds a Config.Failpoint from a spec of comma-separated
// NAME=ACTION[@N] terms: ACTION is "crash" (call crash, which is expected not
// to return: the caller kills the process) or "error" (fail the commit with
// ErrFailpoint); @N acts on the Nth time the point is passed only (default
// the first). For tests of a real process: nothing in production sets one.
// The returned hook is safe for concurrent use.
func ParseFailpoints(spec string, crash func(name string)) (func(name string) error, error) {
	type rule struct {
		crash bool
		at    int
	}
	rules := map[string]*rule{}
	for term := range strings.SplitSeq(spec, ",") {
		if term = strings.TrimSpace(term); term == "" {
			continue
		}
		name, action, ok := strings.Cut(term, "=")
		if !ok || !slices.Contains(Failpoints(), name) {
			return nil, fmt.Errorf("store: failpoint %q: want NAME=crash|error[@N], NAME one of %s", term, strings.Join(Failpoints(), ", "))
		}
		r := &rule{at: 1}
		if a, n, ok := strings.Cut(action, "@"); ok {
			at, err := strconv.Atoi(n)
			if err != nil || at < 1 {
				return nil, fmt.Errorf("store: failpoint %q: @N wants a positive count", term)
			}
			action, r.at = a, at
		}
		switch action {
		case "crash":
			r.crash = true
		case "error":
		default:
			return nil, fmt.Errorf("store: failpoint %q: action %q: want crash or error", term, action)
		}
		rules[name] = r
	}
	var (
		mu   sync.Mutex
		hits = map[string]int{}
	)
	return func(name string) error {
		r := rules[name]
		if r == nil {
			return nil
		}
		mu.Lock()
		hits[name]++
		now := hits[name] == r.at
		mu.Unlock()
		switch {
		case !now:
			return nil
		case r.crash:
			crash(name)
		}
		return fmt.Errorf("%w %s", ErrFailpoint, name)
	}, nil
}
