package kube

import (
	"context"
	"fmt"
	"time"
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
