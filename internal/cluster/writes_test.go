package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/store"
)

// storeGet reads one key from a store.
var storeGet = store.RangeOptions{}

// write is one client write of a randomised schedule.
type write struct {
	key, value string
	del        bool
	own        bool // only this site writes key
	create     bool // a Txn that puts only if the key is absent here
	lease      bool // a put attached to a new lease
	revoke     bool // revokes the newest lease this site's client granted
}

func (w write) String() string {
	switch {
	case w.del:
		return "delete " + w.key
	case w.create:
		return "create " + w.key
	case w.lease:
		return "put with a lease " + w.key
	case w.revoke:
		return "revoke a lease"
	}
	return "put " + w.key
}

// randomWrite picks a write at site for a schedule's step.
func randomWrite(rng *rand.Rand, site string, step int) write {
	if rng.IntN(2) == 0 {
		key := fmt.Sprintf("/own/%s/%d", site, rng.IntN(4))
		return write{key: key, value: fmt.Sprintf(`{"by":%q,"step":%d}`, site, step), del: rng.IntN(5) == 0, own: true}
	}
	key := fmt.Sprintf("/shared/%d", rng.IntN(3))
	field := []string{"a", "b", "c"}[rng.IntN(3)]
	value := fmt.Sprintf(`{"metadata":{"name":"x"},%q:{"by":%q,"step":%d}}`, field, site, step)
	switch rng.IntN(8) {
	case 6:
		return write{key: "/shared/leased/" + site, value: value, lease: true}
	case 7:
		return write{revoke: true}
	case 0:
		return write{key: key, del: true}
	case 1:
		return write{key: key, value: value, create: true}
	case 2:
		return write{key: key, value: fmt.Sprintf("opaque %s %d", site, step)}
	}
	return write{key: key, value: value}
}

// do sends the write to a site's etcd API; leases lists the leases granted
// there, newest last.
func (w write) do(ctx context.Context, c *clientv3.Client, leases *[]clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch {
	case w.lease:
		var l *clientv3.LeaseGrantResponse
		if l, err = c.Grant(ctx, 600); err == nil {
			*leases = append(*leases, l.ID)
			_, err = c.Put(ctx, w.key, w.value, clientv3.WithLease(l.ID))
		}
	case w.revoke:
		if n := len(*leases); n > 0 {
			_, err = c.Revoke(ctx, (*leases)[n-1])
			*leases = (*leases)[:n-1]
		}
	case w.del:
		_, err = c.Delete(ctx, w.key)
	case w.create:
		_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(w.key), "=", 0)).Then(clientv3.OpPut(w.key, w.value)).Commit()
	default:
		_, err = c.Put(ctx, w.key, w.value)
	}
	return err
}
