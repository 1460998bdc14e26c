// Package watch fans committed events out to watchers. It is fed only by the store's
// commit path (Hub.Publish runs after an event is durable), so a watcher never sees
// an event a reader could not.
//
// Each watcher delivers at its own pace from a shared window of recent events, or
// from the store's event log when it falls behind that window. A slow watcher holds
// no buffer of its own, so it cannot grow memory; it only reads further back.
// A publish wakes only the watchers whose keys its events touch (as etcd's
// watchable store notifies the watchers of a key); a caught-up watcher it does
// not concern is moved past it without waking, and still counts as caught up
// for progress notifications.
// Events reach a watcher in revision order, exactly once, with nothing skipped;
// a watcher whose next revision has been compacted is cancelled with the compacted
// revision, as etcd does. A watcher that asks for prev_kv gets the key's state at
// the revision before each event; the stream reads it as it sends the event when
// the store published the event without it (Source.PrevKV), as etcd's watch server
// reads it, and leaves it out once that revision is compacted.
//
// With a Registerer in its Config the hub reports gauges under etcd's names where
// the meaning is etcd's: etcd_debugging_mvcc_watcher_total (and its alias
// rhizome_watch_watchers), etcd_debugging_mvcc_slow_watcher_total (watchers behind
// the window, reading the event log: etcd's unsynced watchers) and
// etcd_debugging_mvcc_watch_stream_total.
package watch
