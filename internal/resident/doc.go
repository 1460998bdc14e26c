// Package resident reads the process's memory mappings (/proc/self/maps and
// smaps) and tells the kernel which of their pages the process is done with,
// so they stop counting as its resident memory.
//
// Two kinds of pages are released this way, both file pages nothing is lost
// by dropping:
//
//   - badger's table files, which it reads through shared mappings: every
//     page a read or a compaction touched stays mapped (store's table-page
//     reclaimer drops them from the page tables with DontNeed; they stay in
//     the page cache, and a later read maps them again).
//   - the executable itself (ReleaseExecutable). Rhizome is one binary of
//     about 120 MB (the Kubernetes API types and client, gRPC, the benchmark
//     and the model checker), of which a site serving writes runs perhaps a
//     fifth. Linux (6.x, on filesystems with large folios) keeps a file in the
//     page cache in folios of up to 2 MiB and maps a whole folio when one of
//     its pages is first touched, so almost all of the code and read-only
//     data was resident after start: 75 of an idle site's 88 MiB. PageOut
//     evicts them; the pages used afterwards come back on first touch, one
//     page at a time (read-ahead off): 19 MiB of the binary resident after
//     50,000 pod writes and updates.
//
// Only read-only file mappings are released: a writable private mapping's
// touched pages are the process's own (anonymous) memory, which releasing
// would lose or swap out.
//
// The functions do nothing on systems other than Linux.
package resident
