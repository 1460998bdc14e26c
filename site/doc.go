// Package site wires one Rhizome site together: the store, its watch hub, the etcd
// API on the client listeners and, with peer URLs, gossip and sync with the other
// sites. It is what `rhizome serve` runs and what tests embed to get a real server
// on a real socket.
//
// # HTTP beside gRPC
//
// Like etcd, every client listener answers both the etcd gRPC API and plain HTTP:
// the connection's first bytes decide (cmux), HTTP/2 going to gRPC and HTTP/1.x to
// the HTTP endpoints. With TLS the handshake, and the client-certificate check of
// --client-cert-auth, comes first, so the endpoints are exactly as protected as the
// API; ALPN prefers http/1.1, so curl and browsers speak HTTP/1.1 while gRPC
// clients (which offer only h2) get h2. ListenMetricsURLs serve the same
// endpoints on plain http:
//
//	/metrics            Prometheus exposition of Config.Gatherer (or Registerer)
//	/health             etcd's {"health":"true"}; false (503) under the store's
//	                    NOSPACE alarm or with the store stopped
//	/livez              ok while the store runs
//	/readyz             live and, for a site joining a cluster with no other
//	                    site's data yet, caught up with some site once
//	/version            etcd's version document, plus rhizome's build
//	/rhizome/status     Status: this site and every site it counts or heard of
//	/rhizome/conflicts  the recorded conflicts
//
// # Metrics and logs
//
// Every component registers on Config.Registerer (nothing global): the store's,
// the watch hub's, sync/peer's and sync/gossip's (see their package docs), the
// gRPC server metrics of the peer server (grpc_server_*), and
// rhizome_store_changelog_entries. Components log through Config.Logger, one line
// per significant event: site joined, suspected, dead, back or left (gossip);
// catch-up started and finished, snapshot sent, received and installed (peer);
// conflicts recorded (store). The caller picks text or JSON by the handler it
// gives; nothing secret (gossip key, TLS keys) is ever logged.
//
// # Sites in Status
//
// A site stays in Status once heard of, in one of the states alive, suspected,
// dead, left or forgotten: memberlist forgets dead members, gossip's own record
// does not, and the store's version vector names every site whose changes are
// here (after a restart, a site not heard of since is dead until it returns).
// A site is forgotten once the replicated forgetting decisions forget its
// newest incarnation (some site did not hear of it for ForgetSiteAfter and
// proposed it; sync/peer's doc, Forgetting): every site holding the same
// decisions reports the same sites forgotten, whatever its own clock says.
package site
