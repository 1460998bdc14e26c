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
}

func (w write) String() string {
	switch {
	case w.del:
		return "delete " + w.key
	case w.create:
		return "create " + w.key
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
	switch rng.IntN(6) {
	case 0:
		return write{key: key, del: true}
	case 1:
		return write{key: key, value: value, create: true}
	case 2:
		return write{key: key, value: fmt.Sprintf("opaque %s %d", site, step)}
	}
	return write{key: key, value: value}
}

// do sends the write to a site's etcd API.
func (w write) do(ctx context.Context, c *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch {
	case w.del:
		_, err = c.Delete(ctx, w.key)
	case w.create:
		_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(w.key), "=", 0)).Then(clientv3.OpPut(w.key, w.value)).Commit()
	default:
		_, err = c.Put(ctx, w.key, w.value)
	}
	return err
}
