// Package gossip finds the other sites of a Rhizome cluster and tells which are
// alive, using hashicorp/memberlist (SWIM). Each site gossips a little metadata —
// its name, the address its peer (sync) service listens on, its client URLs and
// the cluster id (a digest of the cluster token, never the token) — and sites of
// other clusters are ignored. Bulk data never travels
// here: changes go over sync/peer. Gossip is encrypted and authenticated when a key
// is configured; its timing defaults to memberlist's WAN profile.
//
// Besides memberlist's current view (Members), a Gossip keeps its own record of
// every site of the cluster heard of since it started (Sites), each in one of the
// states alive, suspect, dead or left: memberlist forgets a dead site after a
// while, an operator should not. Suspect is this site's own view (its direct
// probes of the site go unanswered); left is a site that said it was shutting
// down. Every change of state is one log line ("gossip: site joined", "...
// suspected", "... dead", "... back", "... left"), and rhizome_gossip_members{state}
// counts the record. Nothing secret is logged.
//
// gossip is the only package that imports memberlist.
package gossip
