package crdt

import "unsafe"

// What a Doc costs in memory. Its value, flat fields and saved automerge form
// live in Go's heap. An automerge document loaded to edit or merge it lives on
// automerge's C side, which Go's garbage collector neither sees nor paces itself
// by: the C memory is freed only when the collector finalizes the Go object that
// wraps it, and automerge-go has no call to free it earlier. So a caller that
// keeps many Docs, or loads many, counts both sides (HeapBytes, NativeBytes) and
// lets go of the C side deliberately (Unload), collecting Go's garbage when the C
// garbage it made grows large.

// nativePerSavedByte estimates a loaded automerge document's C-side memory from
// the length of its saved form: measured for pod-shaped objects at 27 (a 2.3 KB
// save takes about 63 KB once loaded; a 3.3 KB one with 30 edits of history,
// about 87 KB).
const nativePerSavedByte = 27

// heapPerField estimates the Go heap a flat field costs beyond its key and
// value: the map entry and the two string headers.
const heapPerField = 64

// HeapBytes estimates the Go heap the Doc holds: itself, value, fields, saved
// forms, history and conflict records. (Itself: for a small register, the
// Doc is more than its value.)
func (d *Doc) HeapBytes() int {
	n := int(unsafe.Sizeof(*d)) + len(d.value) + len(d.amBytes) + len(d.storedHist) + len(d.conflicts)*64
	for k, v := range d.fields {
		n += len(k) + len(v) + heapPerField
	}
	if d.prior != nil {
		n += len(d.prior.amBytes) + len(d.prior.moved)*64
	}
	if d.built != nil {
		n += len(d.built.saved)
	}
	if h := d.hist; h != nil {
		n += len(h.body) + len(h.at)*heapPerField + cap(h.keys)*int(unsafe.Sizeof(""))
	}
	return n
}

// NativeBytes estimates the C-side memory of the automerge documents the Doc
// has loaded (0 when none is).
func (d *Doc) NativeBytes() int {
	n := 0
	if d.am != nil {
		// A body never edited is not saved (newBody); its value's length
		// stands in for the save's.
		n += max(len(d.amBytes), len(d.value)) * nativePerSavedByte
	}
	if d.prior != nil && d.prior.am != nil {
		n += len(d.prior.amBytes) * nativePerSavedByte
	}
	return n
}

// Unload drops the automerge documents the Doc has loaded; their saved forms are
// always current, so the Doc stays whole and a later edit or merge loads them
// again. It returns the C-side bytes let go (NativeBytes before): garbage until
// Go's collector next runs.
func (d *Doc) Unload() int {
	n := d.NativeBytes()
	d.am, d.built = nil, nil
	if d.prior != nil {
		d.prior.am = nil
	}
	return n
}

// TakeChurn returns the C-side bytes of the automerge documents the Doc made and
// dropped (new bodies, rebases) since the last call: garbage until Go's
// collector next runs.
func (d *Doc) TakeChurn() int {
	n := d.churn
	d.churn = 0
	return n
}
