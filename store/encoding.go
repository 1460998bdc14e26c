package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Badger key layout. Prefixes are single bytes so each family sorts together.
const (
	prefixRev        = 'r' // r | main(8) | sub(4)        -> revision record
	prefixDoc        = 'd' // d | key                      -> crdt.Doc
	prefixChange     = 'c' // c | len(site) | site | seq(8) -> change-log entry
	prefixVV         = 'v' // v | site                      -> highest contiguous seq
	prefixLease      = 'l' // l | id(8)                     -> lease record
	prefixMeta       = 'm' // m | name                      -> meta value
	prefixConflict   = 'x' // x | key                       -> a key's latest concurrent create (old stores; read only)
	prefixConflicts  = 'y' // y | seq(8)                    -> a conflict recorded (conflict.go)
	prefixCollected  = 'g' // g | site                      -> change log collected up to this seq
	prefixStaged     = 's' // s | rev(8) | key              -> document of a commit written in parts
	prefixDefrag     = 'z' // z                             -> written and dropped by Defragment
	prefixForgetting = 'f' // f | len(origin) | origin | by -> a forgetting decision (forget.go)
)

var (
	metaRev     = []byte("mrev")
	metaCompact = []byte("mcompact")
	metaClock   = []byte("mclock")
	metaSite    = []byte("msite") // the site whose data this is
	// metaIncarnation names this data directory among the site's (incarnation.go);
	// empty: to be chosen at the next Open (a restored backup).
	metaIncarnation = []byte("mincarnation")
	// metaDocless marks a store that keeps no documents (alone.go).
	metaDocless = []byte("mdocless")
)

var errCorrupt = errors.New("store: corrupt record")

func revKey(main int64, sub int32) []byte {
	b := make([]byte, 13)
	b[0] = prefixRev
	binary.BigEndian.PutUint64(b[1:], uint64(main))
	binary.BigEndian.PutUint32(b[9:], uint32(sub))
	return b
}

func parseRevKey(b []byte) (int64, int32) {
	return int64(binary.BigEndian.Uint64(b[1:9])), int32(binary.BigEndian.Uint32(b[9:13]))
}

func docKey(key []byte) []byte { return append([]byte{prefixDoc}, key...) }

func changeKey(site string, seq uint64) []byte {
	b := append([]byte{prefixChange, byte(len(site))}, site...)
	return binary.BigEndian.AppendUint64(b, seq)
}

func vvKey(site string) []byte { return append([]byte{prefixVV}, site...) }

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLease}, uint64(id))
}

func int64Bytes(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func bytesInt64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// record is what a revision record holds: the event and where the previous
// state of its key lives, so watchers replaying history can be given prev_kv.
type record struct {
	typ     EventType
	kv      KeyValue
	prevRev revision // zero when the key did not exist before
}

func (r record) encode() []byte {
	b := make([]byte, 0, 64+len(r.kv.Key)+len(r.kv.Value))
	b = append(b, 1, byte(r.typ))
	b = binary.AppendUvarint(b, uint64(len(r.kv.Key)))
	b = append(b, r.kv.Key...)
	b = binary.AppendUvarint(b, uint64(len(r.kv.Value)))
	b = append(b, r.kv.Value...)
	b = binary.AppendVarint(b, r.kv.CreateRevision)
	b = binary.AppendVarint(b, r.kv.Version)
	b = binary.AppendVarint(b, r.kv.Lease)
	b = binary.AppendVarint(b, r.prevRev.main)
	return binary.AppendVarint(b, int64(r.prevRev.sub))
}

func decodeRecord(k, b []byte) (record, error) {
	var r record
	if len(b) < 2 || b[0] != 1 {
		return r, fmt.Errorf("store: revision record: %w", errCorrupt)
	}
	r.typ = EventType(b[1])
	b = b[2:]
	next := func() []byte {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			b = nil
			return nil
		}
		v := b[w : w+int(n) : w+int(n)]
		b = b[w+int(n):]
		return v
	}
	num := func() int64 {
		v, w := binary.Varint(b)
		if w <= 0 {
			b = nil
			return 0
		}
		b = b[w:]
		return v
	}
	r.kv.Key = next()
	r.kv.Value = next()
	r.kv.CreateRevision = num()
	r.kv.Version = num()
	r.kv.Lease = num()
	r.prevRev.main = num()
	r.prevRev.sub = int32(num())
	if b == nil || r.kv.Key == nil {
		return r, fmt.Errorf("store: revision record: %w", errCorrupt)
	}
	r.kv.ModRevision, _ = parseRevKey(k)
	if r.typ == EventDelete {
		r.kv.Value = nil
	}
	return r, nil
}
