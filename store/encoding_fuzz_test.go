package store

import (
	"bytes"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/crdt"
)

// The record encodings FuzzRecords decodes, by its kind argument.
const (
	fuzzRevisionRecord = iota
	fuzzLeaseRecord
	fuzzConflictRecord
	fuzzChangeEntry
	fuzzRecordKinds
)

// FuzzRecords decodes arbitrary bytes as each of the store's own record
// encodings (revision records, lease records, conflict records, change-log
// entries), as a damaged data file would hand them over: a decoder returns a
// value or an error, never panics, and what it decodes encodes to bytes that
// decode to the same value. The corpus is testdata/fuzz/FuzzRecords.
func FuzzRecords(f *testing.F) {
	rec := record{typ: EventPut, kv: KeyValue{Key: []byte("/registry/pods/default/web"), Value: []byte(`{"kind":"Pod"}`), CreateRevision: 5, Version: 2, Lease: 7}, prevRev: revision{main: 5}}
	f.Add(uint8(fuzzRevisionRecord), rec.encode())
	f.Add(uint8(fuzzLeaseRecord), encodeLeaseRecord(leaseGrant, &lease{id: 7, ttl: 60, owner: "a"}))
	f.Add(uint8(fuzzConflictRecord), Conflict{Kind: crdt.ConcurrentCreate, Key: []byte("/k"), Winner: crdt.Stamp{Counter: 3, Site: "a"}, Loser: crdt.Stamp{Counter: 2, Site: "b"}, Time: time.Unix(1, 0), Detail: "d"}.encode())
	f.Add(uint8(fuzzChangeEntry), appendChangeEntry(nil, []byte("/k"), 7, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		switch kind % fuzzRecordKinds {
		case fuzzRevisionRecord:
			k := revKey(9, 0)
			if r, err := decodeRecord(k, b); err == nil {
				again, err := decodeRecord(k, r.encode())
				if err != nil || !bytes.Equal(again.encode(), r.encode()) {
					t.Fatalf("revision record %+v: round trip gives %+v, %v", r, again, err)
				}
			}
		case fuzzLeaseRecord:
			if op, l, err := decodeLeaseRecord(b); err == nil && !bytes.Equal(encodeLeaseRecord(op, l), b) {
				t.Fatalf("lease record %x: encodes back as %x", b, encodeLeaseRecord(op, l))
			}
		case fuzzConflictRecord:
			if c, err := decodeConflict(b); err == nil {
				again, err := decodeConflict(c.encode())
				if err != nil || !bytes.Equal(again.encode(), c.encode()) {
					t.Fatalf("conflict record %+v: round trip gives %+v, %v", c, again, err)
				}
			}
		case fuzzChangeEntry:
			if key, lease, body, err := parseChangeEntry(b); err == nil && !bytes.Equal(appendChangeEntry(nil, key, lease, body), b) {
				t.Fatalf("change entry %x: encodes back differently", b)
			}
		}
	})
}
