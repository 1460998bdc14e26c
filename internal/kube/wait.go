package kube

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Poll calls cond every interval until it reports done, returns an error,
// or timeout passes. On timeout the error carries the last status cond
// gave, so a failed wait says how far things got.
func Poll(ctx context.Context, timeout, interval time.Duration, cond func(context.Context) (done bool, status string, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var status string
	for {
		done, st, err := cond(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		status = st
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube: not done within %v; last status: %s", timeout, status)
		case <-time.After(interval):
		}
	}
}

// WaitKey returns a Config.AfterDatastore that waits until the store holds
// key: a joining site's apiserver then starts on the cluster's state (say
// /registry/namespaces/kube-system) rather than bootstrapping its own.
func WaitKey(key string) func(context.Context, *clientv3.Client) error {
	return func(ctx context.Context, cli *clientv3.Client) error {
		for {
			res, err := cli.Get(ctx, key, clientv3.WithCountOnly())
			if err == nil && res.Count == 1 {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kube: %s never arrived: %w (last error: %v)", key, ctx.Err(), err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
