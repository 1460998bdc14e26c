// Package site wires one Rhizome site together: the store, its watch hub and the
// etcd API on the client listeners. It is what `rhizome serve` runs and what tests
// embed to get a real server on a real socket.
package site
