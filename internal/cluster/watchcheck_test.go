package cluster

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/store"
)

// The watch guarantees of etcd's tests/robustness (watch.go), checked against a
// site's own event log (store.Events, what its revisions committed):
//
//   - ordered: events arrive in revision order;
//   - unique: no event arrives twice;
//   - atomic: a revision's events arrive in one response;
//   - reliable: a watcher gets every event from its start revision on, with no gap;
//   - resumable: a watcher re-opened from the revision after the last it got
//     continues with exactly the events that follow (clients re-open their
//     watches after a site restarts; one watcher also does it by hand);
//   - bookmarkable: a progress notification at revision R comes only after every
//     event up to R;
//   - prev_kv right: an event's prev_kv is the key's state at the previous
//     revision, as etcd reads it (a key changed twice in one revision has the
//     same prev_kv in both events);
//   - create right: a put is a create (create_revision == mod_revision,
//     version 1) exactly when the key did not exist before it.

// wEvent is a watch event or a log event, compared field by field.
type wEvent struct {
	Rev          int64
	Put          bool
	Key, Value   string
	Create, Ver  int64
	Prev         string
	HasPrev      bool
	PrevModRev   int64
	PrevExisting bool // the log's view: the key existed before the event
}

func (e wEvent) String() string {
	kind := "delete"
	if e.Put {
		kind = "put"
	}
	return fmt.Sprintf("rev %d %s %q=%q create %d version %d prev %v:%q", e.Rev, kind, e.Key, e.Value, e.Create, e.Ver, e.HasPrev, e.Prev)
}

// sameEvent compares what a watcher got with the log.
func sameEvent(got, want wEvent) bool {
	got.PrevExisting, want.PrevExisting = false, false
	return got == want
}

func logEvent(rev int64, ev store.Event) wEvent {
	e := wEvent{Rev: rev, Put: ev.Type == store.EventPut, Key: string(ev.KV.Key), Value: string(ev.KV.Value), Create: ev.KV.CreateRevision, Ver: ev.KV.Version}
	if ev.PrevKV != nil {
		e.HasPrev, e.Prev, e.PrevModRev, e.PrevExisting = true, string(ev.PrevKV.Value), ev.PrevKV.ModRevision, true
	}
	return e
}

// siteLog reads a site's whole event log from revision from on, and checks that
// every revision made at least one event (a committed change always does).
func siteLog(st *store.Store, from int64) ([]wEvent, error) {
	to := st.Rev()
	evs, err := st.Events(from, to, 1<<30)
	if err != nil {
		return nil, err
	}
	out := make([]wEvent, len(evs))
	next := from
	for i, ev := range evs {
		out[i] = logEvent(ev.KV.ModRevision, ev)
		switch rev := out[i].Rev; {
		case rev == next:
			next++
		case rev != next-1:
			return nil, fmt.Errorf("log: revision %d has no event (next event at %d)", next, rev)
		}
	}
	if next <= to {
		return nil, fmt.Errorf("log: revisions %d..%d have no event", next, to)
	}
	return out, nil
}

// watchResp is one watch response as a watcher got it.
type watchResp struct {
	Rev      int64 // header revision
	Progress bool
	Created  bool
	Events   []wEvent
}

// watcher records the responses of watches at one site.
type watcher struct {
	name string
	from int64 // the revision it started at
	// now is the revision a watch opened without one was created at: clientv3
	// resumes such a watch from there (not the next one) if its stream breaks
	// before the first event, so that event may come too (etcd's own client
	// rule, as with etcd).
	now  int64
	mu   sync.Mutex
	resp []watchResp
	got  int64 // the newest revision of an event it got
	err  error
}

// watch opens a watch of every key from revision from (0: from now on, with the
// start revision taken from the created notification) with prev_kv and progress
// notifications, and records it until ctx ends or stop reports true.
func (w *watcher) watch(ctx context.Context, c *clientv3.Client, from int64, stop func(*watcher) bool) {
	opts := []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithPrevKV(), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify()}
	if from > 0 {
		opts = append(opts, clientv3.WithRev(from))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for r := range c.Watch(clientv3.WithRequireLeader(ctx), "\x00", opts...) {
		if err := r.Err(); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		w.mu.Lock()
		if r.Created {
			if w.from == 0 {
				w.from, w.now = r.Header.Revision+1, r.Header.Revision
			}
			w.resp = append(w.resp, watchResp{Rev: r.Header.Revision, Created: true})
			w.mu.Unlock()
			continue
		}
		wr := watchResp{Rev: r.Header.Revision, Progress: r.IsProgressNotify()}
		for _, ev := range r.Events {
			e := wEvent{Rev: ev.Kv.ModRevision, Put: ev.Type == clientv3.EventTypePut, Key: string(ev.Kv.Key), Value: string(ev.Kv.Value),
				Create: ev.Kv.CreateRevision, Ver: ev.Kv.Version}
			if ev.PrevKv != nil {
				e.HasPrev, e.Prev, e.PrevModRev = true, string(ev.PrevKv.Value), ev.PrevKv.ModRevision
			}
			wr.Events = append(wr.Events, e)
			w.got = max(w.got, e.Rev)
		}
		w.resp = append(w.resp, wr)
		done := stop != nil && stop(w)
		w.mu.Unlock()
		if done {
			return
		}
	}
}

// reached reports whether the watcher has got an event at rev or later.
func (w *watcher) reached(rev int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got >= rev || w.err != nil
}

// check checks the watcher's responses against the site's log (which starts at
// revision logFrom) and the guarantees above.
func (w *watcher) check(log []wEvent, logFrom int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("watcher %s: %w", w.name, w.err)
	}
	from := w.from
	if first := w.firstEvent(); w.now > 0 && first == w.now {
		from = w.now
	}
	want := log
	for len(want) > 0 && want[0].Rev < from {
		want = want[1:]
	}
	i := 0 // the next log event the watcher should get
	last := int64(0)
	for n, r := range w.resp {
		if err := w.checkResp(r, want[i:], last); err != nil {
			return fmt.Errorf("%w; responses before: %s", err, transcript(w.resp[max(0, n-8):n+1]))
		}
		for _, e := range r.Events {
			last = e.Rev
			i++
		}
	}
	if i < len(want) {
		return fmt.Errorf("watcher %s: reliable: stopped before %v (%d of %d events)", w.name, want[i], i, len(want))
	}
	return nil
}

// firstEvent returns the revision of the first event the watcher got (0: none).
func (w *watcher) firstEvent() int64 {
	for _, r := range w.resp {
		if len(r.Events) > 0 {
			return r.Events[0].Rev
		}
	}
	return 0
}

// transcript describes responses briefly: c for created, p for progress, and
// the events' revisions, with their header revisions.
func transcript(resps []watchResp) string {
	var b strings.Builder
	for _, r := range resps {
		switch {
		case r.Created:
			fmt.Fprintf(&b, " created@%d", r.Rev)
		case r.Progress:
			fmt.Fprintf(&b, " progress@%d", r.Rev)
		default:
			revs := make([]int64, len(r.Events))
			for i, e := range r.Events {
				revs[i] = e.Rev
			}
			fmt.Fprintf(&b, " events%v@%d", revs, r.Rev)
		}
	}
	return b.String()
}

// checkResp checks one response, given the log events the watcher has yet to
// get and the revision of the last event it got.
func (w *watcher) checkResp(r watchResp, want []wEvent, last int64) error {
	switch {
	case r.Created:
		return nil
	case r.Progress && r.Rev < last:
		// bookmarkable: a client resumes after a progress notification's revision.
		return fmt.Errorf("watcher %s: bookmarkable: progress at revision %d after an event at %d", w.name, r.Rev, last)
	case r.Progress && len(want) > 0 && want[0].Rev <= r.Rev:
		return fmt.Errorf("watcher %s: bookmarkable: progress at revision %d before the event %v", w.name, r.Rev, want[0])
	case r.Progress:
		return nil
	}
	i := 0
	for j, e := range r.Events {
		switch {
		case j == 0 && e.Rev == last && i < len(want) && want[i].Rev == last:
			return fmt.Errorf("watcher %s: atomic: revision %d split across responses", w.name, last)
		case e.Rev < last:
			return fmt.Errorf("watcher %s: ordered: %v after revision %d", w.name, e, last)
		case i >= len(want):
			return fmt.Errorf("watcher %s: unique: %v is past the log's end or a repeat", w.name, e)
		case e.Rev < want[i].Rev:
			return fmt.Errorf("watcher %s: unique: %v again (next expected %v)", w.name, e, want[i])
		case e.Rev > want[i].Rev || e.Key != want[i].Key:
			return fmt.Errorf("watcher %s: reliable: got %v, missed %v", w.name, e, want[i])
		case !sameEvent(e, want[i]):
			return fmt.Errorf("watcher %s: event %v, the log has %v", w.name, e, want[i])
		}
		if err := createRight(e, want[i]); err != nil {
			return fmt.Errorf("watcher %s: %w", w.name, err)
		}
		last = e.Rev
		i++
	}
	return nil
}

// createRight checks an event's create flag and prev_kv against the log's view of
// whether the key existed.
func createRight(got, want wEvent) error {
	create := got.Put && got.Create == got.Rev
	switch {
	case create != (got.Put && !want.PrevExisting):
		return fmt.Errorf("create right: %v (the key existed before: %v)", got, want.PrevExisting)
	case got.Put && create != (got.Ver == 1):
		return fmt.Errorf("create right: %v has version %d", got, got.Ver)
	case got.HasPrev != want.PrevExisting:
		return fmt.Errorf("prev_kv right: %v (the key existed before: %v)", got, want.PrevExisting)
	}
	return nil
}

// prevRight checks the log itself: an event's prev_kv is the key's state at the
// previous revision (its last event in an earlier revision).
func prevRight(log []wEvent) error {
	lastOf := map[string]wEvent{}  // each key's last event before the revision at hand
	thisRev := map[string]wEvent{} // events of the revision at hand
	rev := int64(0)
	for _, e := range log {
		if e.Rev != rev {
			maps.Copy(lastOf, thisRev)
			clear(thisRev)
			rev = e.Rev
		}
		prev, seen := lastOf[e.Key]
		live := seen && prev.Put
		_, again := thisRev[e.Key]
		switch {
		case seen && live != e.HasPrev:
			return fmt.Errorf("log: prev_kv right: %v after %v", e, prev)
		case live && (e.Prev != prev.Value || e.PrevModRev != prev.Rev):
			return fmt.Errorf("log: prev_kv right: %v, previous event %v", e, prev)
		case !e.Put && !e.HasPrev && !again:
			return fmt.Errorf("log: a delete of an absent key: %v", e)
		}
		thisRev[e.Key] = e
	}
	return nil
}
