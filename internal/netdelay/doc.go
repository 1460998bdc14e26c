// Package netdelay puts a slow, breakable network between processes on one
// machine: a TCP proxy (Proxy) and a UDP relay (Relay) that add a one-way
// delay with jitter to the data they carry, can cut the link and heal it,
// and count the bytes that crossed each way. It exists because the kernels
// Rhizome is benchmarked on have no netem; the same layer carries both
// Rhizome's and etcd's inter-site traffic, so a comparison is fair.
//
// A link is directed: the side that dials (or sends first) is "forward", the
// answers are "back". One Proxy or Relay stands for one directed pair of
// sites and has a Shape per direction (Link.SetShape).
//
// Guarantees:
//   - Delay applies to data in flight. Every chunk read from one side is
//     released to the other no earlier than Delay±Jitter after it was read,
//     measured on the injected clock. Per connection and direction, order
//     is kept: a chunk is never released before the one read before it
//     (so jitter never reorders a byte stream; releases may bunch up).
//   - One reader and one writer goroutine per connection direction, with a
//     bounded timed queue between them (Config.QueueChunks): a slow link
//     pushes back on the sender as TCP would, and memory stays bounded.
//   - Cut refuses new connections (accepted, then closed at once) and drops
//     every datagram. Existing TCP connections either stall (CutStall:
//     nothing is delivered, nothing lost; when the queue is full the sender
//     blocks; Heal delivers what was held) or are closed (CutClose).
//   - Bytes are counted when they are delivered, per direction.
//
// Wiring several sites: each site advertises one address that every other
// site uses, so a per-pair link needs each site to see that address bound
// to its own proxy. Running each site in its own network namespace gives
// that (Namespace, Linux, root): in site A's namespace, 127.0.0.1:<B's
// port> is the A→B proxy, listening inside A (Namespace.ListenTCP) and
// dialing B's real listener inside B (Namespace.DialTCP). For memberlist's
// UDP, one Relay per pair of sites: its front socket in A's namespace at
// B's gossip port, its rear socket in B's namespace at A's gossip port, so
// each side sees the other at the address it advertises. On a single
// loopback, per-destination proxies (every site reaching B through the
// same Proxy) still delay traffic, but a cut then cannot tell sources
// apart.
//
// Clock and randomness are injected (Config.Clock, Config.Seed), so tests
// control time and jitter.
package netdelay
