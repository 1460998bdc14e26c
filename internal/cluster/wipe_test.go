package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWipe: a site loses its data directory and starts again under its name,
// first cut off from every other site (it must still take writes), then
// connected and written to at once. Every write it acknowledged after the wipe
// must reach every site, and it must get back what it had written before the
// wipe (the other sites hold it) and what the others wrote meanwhile.
func TestWipe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := DefaultConfig()
	c := startCluster(t, cfg)
	cs := &clients{t: t}
	want := map[string]string{}
	put := func(site, key, value string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := cs.of(c.Site(site)).Put(pctx, key, value); err != nil {
			t.Fatalf("put %s at %s: %v", key, site, err)
		}
		want[key] = value
	}
	for i := range 30 {
		put("s0", fmt.Sprintf("/before/s0/%d", i%10), fmt.Sprintf(`{"v":%d}`, i))
		put("s1", fmt.Sprintf("/before/s1/%d", i%10), fmt.Sprintf(`{"v":%d}`, i))
	}
	if err := c.EnsureSame(ctx); err != nil {
		t.Fatal(err)
	}

	// Cut off: the wiped site takes writes under its old name, the others too.
	wipe(t, c, "s0", func() { c.Disconnect("s0") })
	for i := range 15 {
		put("s0", fmt.Sprintf("/after/s0/%d", i), fmt.Sprintf(`{"v":%d}`, i))
		put("s2", fmt.Sprintf("/after/s2/%d", i), fmt.Sprintf(`{"v":%d}`, i))
	}
	c.Heal()
	checkWipe(ctx, t, c, want)

	// Connected: written to before it has heard from anyone.
	wipe(t, c, "s1", func() {})
	for i := range 15 {
		put("s1", fmt.Sprintf("/after/s1/%d", i), fmt.Sprintf(`{"v":%d}`, i))
	}
	checkWipe(ctx, t, c, want)
}

// wipe crashes a site, deletes its data directory, calls between and restarts
// it empty.
func wipe(t *testing.T, c *Cluster, name string, between func()) {
	t.Helper()
	if err := c.Crash(name); err != nil {
		t.Fatal(err)
	}
	if err := c.Wipe(name); err != nil {
		t.Fatal(err)
	}
	between()
	if err := c.Restart(name); err != nil {
		t.Fatal(err)
	}
}

// checkWipe waits until the sites converge and checks that each holds every
// acknowledged write.
func checkWipe(ctx context.Context, t *testing.T, c *Cluster, want map[string]string) {
	t.Helper()
	if err := c.EnsureSame(ctx); err != nil {
		t.Fatalf("%v (fabric %+v)", err, c.Fabric.Stats())
	}
	for _, s := range c.Running() {
		for key, value := range want {
			res, err := s.Store.Range([]byte(key), storeGet)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.KVs) != 1 || string(res.KVs[0].Value) != value {
				t.Fatalf("%s at %s: %v, want the acknowledged %s", key, s.Name, res.KVs, value)
			}
		}
	}
}
