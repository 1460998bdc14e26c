// Package gossip finds the other sites of a Rhizome cluster and tells which are
// alive, using hashicorp/memberlist (SWIM). Each site gossips a little metadata —
// its name, the address its peer (sync) service listens on, its client URLs and
// the cluster id — and sites of other clusters are ignored. Bulk data never travels
// here: changes go over sync/peer. Gossip is encrypted and authenticated when a key
// is configured; its timing defaults to memberlist's WAN profile.
//
// gossip is the only package that imports memberlist.
package gossip
