package multisite

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// event is a watch event as recorded, with when it arrived.
type event struct {
	Put     bool
	Key     string
	Value   string
	ModRev  int64
	Version int64
	HasPrev bool
	Prev    string
	PrevRev int64
	At      time.Time
}

// watchLog records everything one watch stream delivers.
type watchLog struct {
	mu     sync.Mutex
	events []event
	err    error // the stream's end, if it ended
}

// startWatch opens a watch with prev_kv on prefix at one site and records it
// until ctx ends. It returns once the server has confirmed the watch, so every
// later write is in it.
func startWatch(ctx context.Context, cli *clientv3.Client, prefix string) (*watchLog, error) {
	wc := cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	select {
	case resp, ok := <-wc:
		if !ok || !resp.Created {
			return nil, fmt.Errorf("multisite: watch %s not created: %v", prefix, resp.Err())
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w := &watchLog{}
	go func() {
		for resp := range wc {
			now := time.Now()
			w.mu.Lock()
			if err := resp.Err(); err != nil {
				w.err = err
			}
			for _, ev := range resp.Events {
				e := event{Put: ev.Type == mvccpb.PUT, Key: string(ev.Kv.Key), Value: string(ev.Kv.Value),
					ModRev: ev.Kv.ModRevision, Version: ev.Kv.Version, At: now}
				if ev.PrevKv != nil {
					e.HasPrev, e.Prev, e.PrevRev = true, string(ev.PrevKv.Value), ev.PrevKv.ModRevision
				}
				w.events = append(w.events, e)
			}
			w.mu.Unlock()
		}
		w.mu.Lock()
		if w.err == nil && ctx.Err() == nil {
			w.err = fmt.Errorf("multisite: watch %s closed", prefix)
		}
		w.mu.Unlock()
	}()
	return w, nil
}

// Events returns the events so far whose keys start with prefix.
func (w *watchLog) Events(prefix string) ([]event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []event
	for _, e := range w.events {
		if strings.HasPrefix(e.Key, prefix) {
			out = append(out, e)
		}
	}
	return out, w.err
}

// Len returns how many events the watch has delivered so far, cheaply enough to
// poll while thousands arrive.
func (w *watchLog) Len() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events), w.err
}

// Replay applies the events under prefix in order: the key/value state a
// watcher that started empty would hold.
func Replay(events []event) map[string]string {
	state := map[string]string{}
	for _, e := range events {
		if e.Put {
			state[e.Key] = e.Value
		} else {
			delete(state, e.Key)
		}
	}
	return state
}

// checkStream reports the first way the events break etcd's watch guarantees
// that do not depend on timing: revisions strictly increase, and with prev_kv
// every update and delete carries the previous value, from an earlier revision.
func checkStream(events []event) error {
	var last int64
	for _, e := range events {
		if e.ModRev <= last {
			return fmt.Errorf("event %s at revision %d follows revision %d", e.Key, e.ModRev, last)
		}
		last = e.ModRev
		updates := !e.Put || e.Version > 1
		if updates && !e.HasPrev {
			return fmt.Errorf("%s event of %s at revision %d (version %d) has no prev_kv", kind(e), e.Key, e.ModRev, e.Version)
		}
		if e.HasPrev && e.PrevRev >= e.ModRev {
			return fmt.Errorf("%s event of %s at revision %d has prev_kv from revision %d", kind(e), e.Key, e.ModRev, e.PrevRev)
		}
	}
	return nil
}

func kind(e event) string {
	if e.Put {
		return "PUT"
	}
	return "DELETE"
}
