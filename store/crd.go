package store

import (
	"fmt"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Custom resources merge by their CustomResourceDefinition's schema. The store
// keeps one kube.CustomResources (Config.CustomResources, or its own), fed the
// CRDs stored under Config.KubePrefix: all of them at Open, before any write
// or merge is served, then every committed change of a CRD's key (observeCRDs).
// Every document the store opens finds its kind's merge units there
// (Store.openDoc), so a custom resource's list-maps and sets merge element by
// element as its CRD says, at every site that holds the same CRDs.
//
// When a CRD's schema changes, the values already stored under its resource
// are not materialised again: each keeps the value it had until its next write
// or merge, which follows the new schema (its document's fields are read from
// its automerge body, never rebuilt from its value by a schema, so no stored
// history depends on which schema a site knew; see crdt.newBody).

// loadCRDs feeds the registry every CRD stored here.
func (s *Store) loadCRDs() error {
	if s.cfg.KubePrefix == "" {
		return nil
	}
	prefix := []byte(s.cfg.KubePrefix + kube.CRDResource)
	var err error
	s.idx.ascend(prefix, prefixEnd(prefix), func(ki *keyIndex) bool {
		v, live := ki.live()
		if !live {
			return true
		}
		var kv KeyValue
		if kv, err = s.kvOf(v); err != nil {
			return false
		}
		s.observeCRD(kv.Key, kv.Value, true)
		return true
	})
	if err != nil {
		return fmt.Errorf("store: load CRDs: %w", err)
	}
	return nil
}

// observeCRDs feeds the registry the committed events that wrote a CRD's key.
// Called once the events are durable, before their writers are answered
// (show), beside the committer applying the next batch: the registry is safe
// for concurrent use, and a value prepared by older schemas is cut again
// (crdGen).
func (s *Store) observeCRDs(events []Event) {
	if s.cfg.KubePrefix == "" {
		return
	}
	for _, ev := range events {
		if _, ok := kube.IsCRDKey(s.cfg.KubePrefix, ev.KV.Key); ok {
			s.observeCRD(ev.KV.Key, ev.KV.Value, ev.Type == EventPut)
		}
	}
}

// observeCRD applies one CRD's stored state to the registry. A CRD whose
// schema cannot be built leaves its kinds as they were (logged): kube-apiserver
// would not have stored it, and the store must not refuse what another site
// holds.
func (s *Store) observeCRD(key, value []byte, live bool) {
	res, changed, err := s.crs.Observe(s.cfg.KubePrefix, key, value, live)
	if err != nil {
		s.log.Warn("CRD schema not used for merges", "key", string(key), "err", err)
		return
	}
	if changed {
		s.crdGen.Add(1)
		s.log.Info("custom resources merge by a new schema", "crd", string(key),
			"keys", res.KeyPrefix(s.cfg.KubePrefix), "live", live)
	}
}
