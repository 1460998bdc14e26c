// Package checker is Rhizome's explicit-state model checker. It has no
// third-party dependencies.
//
// A Model gives initial states, the actions enabled in a state, the state an
// action leads to, a fingerprint per state and a set of named properties. The
// checker explores the state space breadth-first or depth-first on every core
// (sharing one fingerprinted visited set), or by seeded random walks, bounded
// by depth and wall-clock time. Properties follow stateright's vocabulary:
//
//   - Always: must hold in every reachable state; a violation carries the
//     shortest path found to a state where it fails.
//   - Eventually: must hold somewhere on every path that ends in a terminal
//     state (a state without successors). As in stateright this is checked on
//     terminal states only, following the first path that reached each state,
//     so cycles and paths cut by the depth bound are not reported.
//   - Sometimes: must hold in some reachable state; the path to it is a
//     witness, and finding none is reported as a failure.
//
// Memory: a BFS level can hold tens of millions of states. A model that
// implements Compact keeps them as compact, pointer-free encodings in
// recycled blocks (see bfsCompact) rather than as live objects, and may
// generate a state's successors in one call through an Expander, sharing the
// work of actions that compute the same thing. The visited set keeps 16
// bytes per state (fingerprint and parent fingerprint).
//
// Every violation comes with a counterexample path that is rebuilt by
// replaying the model from an initial state, so it is a real execution. The
// Report records each step's action in JSON and its fingerprint, which is how
// Replay re-executes and verifies a path from a saved report.
//
// Guarantees: the search is sound for Always properties within the bounds it
// reports (Complete says whether the space was exhausted); fingerprints are
// 64-bit hashes, so two distinct states colliding is possible but, for the
// state counts reachable here, very unlikely.
package checker
