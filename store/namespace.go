package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Kubernetes' namespace rule across sites: a namespace's deletion beats objects
// created in it concurrently. kube-apiserver keeps a namespace at
// <prefix>namespaces/NAME and a namespaced object at <prefix>[group/]resource/.../NS/NAME,
// its namespace the key's second-to-last segment and its metadata.namespace;
// cluster-scoped objects have no metadata.namespace and are never touched.
//
// Within a site, kube-apiserver refuses creates in a missing or terminating
// namespace, and its namespace controller deletes a namespace's content before the
// namespace key goes. Changes of one origin arrive in order, and a delete only
// once what it deletes is here, so when another site's delete of a namespace lands
// here, whatever this site still holds in that namespace is what that site never
// saw: created concurrently with the delete. Likewise an object that arrives for
// a namespace whose document here holds a delete was created without seeing it.
// In both cases the store deletes those objects as local deletes (logged, so they
// replicate; committed as their own revision, so watchers and kube-apiserver's
// cache follow), in the same commit as the change that triggered it. Every site
// deletes the same incarnations, so sites doing it both is harmless.
//
// Limits: values kept opaque (protobuf the store cannot decode) carry no readable
// namespace and are left alone. The store does not track causality across keys:
// an object created in a namespace deleted and then recreated at another site,
// that reaches this site before the recreation does (forwarded by a third site),
// is deleted too.

// namespaceEffect is what a merged change means for the namespace rule.
type namespaceEffect struct {
	nsGone []byte // a namespace's name whose key went from live to deleted
	orphan []byte // an object key live in a namespace deleted here
}

// namespaceKey returns the key kube-apiserver keeps namespace ns at.
func (s *Store) namespaceKey(ns string) []byte {
	return []byte(s.cfg.KubePrefix + "namespaces/" + ns)
}

// keyNamespace returns the namespace a kube object key would be in if its
// resource is namespaced: the second-to-last segment after KubePrefix, when
// there are at least three ("" otherwise).
func (s *Store) keyNamespace(key []byte) string {
	rest, ok := bytes.CutPrefix(key, []byte(s.cfg.KubePrefix))
	if s.cfg.KubePrefix == "" || !ok {
		return ""
	}
	segs := strings.Split(string(rest), "/")
	if len(segs) < 3 {
		return ""
	}
	return segs[len(segs)-2]
}

// namespaceOf returns the namespace a kube object is in ("" for none:
// cluster-scoped, not a kube key, or a value without a readable namespace). The
// key alone cannot tell <group>/<resource>/NAME of a cluster-scoped resource
// from <resource>/NS/NAME: the object's metadata.namespace must agree.
func (s *Store) namespaceOf(key, value []byte) string {
	ns := s.keyNamespace(key)
	if ns == "" {
		return ""
	}
	var obj struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if json.Unmarshal(kube.Canonical(value), &obj) != nil || obj.Metadata.Namespace != ns {
		return ""
	}
	return ns
}

// namespaceName returns the namespace a namespace key names, or "".
func (s *Store) namespaceName(key []byte) string {
	name, ok := bytes.CutPrefix(key, []byte(s.cfg.KubePrefix+"namespaces/"))
	if s.cfg.KubePrefix == "" || !ok || len(name) == 0 || bytes.IndexByte(name, '/') >= 0 {
		return ""
	}
	return string(name)
}

// liveValue returns a key's live value in the index.
func (tx *WriteTxn) liveValue(key []byte) ([]byte, bool, error) {
	ki := tx.s.idx.get(key)
	if ki == nil {
		return nil, false, nil
	}
	v, live := ki.live()
	if !live {
		return nil, false, nil
	}
	kv, err := tx.reads.kv(v)
	return kv.Value, true, err
}

// namespaceEffect tells what merging a change to key did for the namespace rule;
// wasLive is whether key was live before.
func (tx *WriteTxn) namespaceEffect(key []byte, wasLive bool) (namespaceEffect, error) {
	value, live, err := tx.liveValue(key)
	if err != nil {
		return namespaceEffect{}, err
	}
	if ns := tx.s.namespaceName(key); ns != "" {
		if wasLive && !live {
			return namespaceEffect{nsGone: []byte(ns)}, nil
		}
		return namespaceEffect{}, nil
	}
	ns := tx.s.keyNamespace(key)
	if !live || ns == "" {
		return namespaceEffect{}, nil
	}
	if _, nsLive, err := tx.liveValue(tx.s.namespaceKey(ns)); nsLive || err != nil {
		return namespaceEffect{}, err // the common case, decided without parsing the value
	}
	if tx.s.namespaceOf(key, value) != ns {
		return namespaceEffect{}, nil
	}
	gone, err := tx.deletedHere(tx.s.namespaceKey(ns))
	if err != nil || !gone {
		return namespaceEffect{}, err
	}
	return namespaceEffect{orphan: key}, nil
}

// deletedHere reports whether this site holds key's document and it says deleted
// (not merely never seen: a namespace created elsewhere may not have arrived yet).
func (tx *WriteTxn) deletedHere(key []byte) (bool, error) {
	if _, live, err := tx.liveValue(key); live || err != nil {
		return false, err
	}
	d, ok := tx.dirty[string(key)]
	if !ok {
		if d, ok = tx.s.docs.get(string(key)); !ok {
			raw, err := tx.reads.get(docKey(key))
			if err != nil || raw == nil {
				return false, err
			}
			if d, err = tx.s.openDoc(raw); err != nil {
				return false, fmt.Errorf("store: document %q: %w", key, err)
			}
			defer tx.s.docs.drop(d)
		}
	}
	_, exists := d.Value()
	return !d.Incarnation().IsZero() && !exists, nil
}

// enforceNamespace deletes what the effect says must go: the orphan, or every
// object still live in a namespace gone.
func (tx *WriteTxn) enforceNamespace(e namespaceEffect) error {
	var targets []*keyIndex
	if e.orphan != nil {
		if ki := tx.s.idx.get(e.orphan); ki != nil {
			targets = append(targets, ki)
		}
	}
	if e.nsGone != nil {
		var err error
		if targets, err = tx.liveIn(string(e.nsGone)); err != nil {
			return err
		}
	}
	for _, ki := range targets {
		if _, live := ki.live(); !live {
			continue
		}
		if _, err := tx.deleteKey(ki); err != nil {
			return err
		}
		tx.s.log.Info("deleted an object created concurrently with its namespace's deletion", "key", string(ki.key))
	}
	return nil
}

// liveIn returns the live kube objects of namespace ns.
func (tx *WriteTxn) liveIn(ns string) ([]*keyIndex, error) {
	var out []*keyIndex
	var err error
	prefix := []byte(tx.s.cfg.KubePrefix)
	tx.s.idx.ascend(prefix, prefixEnd(prefix), func(ki *keyIndex) bool {
		v, live := ki.live()
		if !live || tx.s.keyNamespace(ki.key) != ns {
			return true
		}
		var kv KeyValue
		if kv, err = tx.reads.kv(v); err != nil {
			return false
		}
		if tx.s.namespaceOf(ki.key, kv.Value) == ns {
			out = append(out, ki)
		}
		return true
	})
	return out, err
}

// prefixEnd returns the end of the range of keys starting with prefix, in etcd's
// convention ("\x00": to the end of the keyspace).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}
