package multisite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/crdt"
)

// BenchmarkBytesPerChange updates one field of a ~2 KB JSON object at one site,
// one write after another as a controller updating status does, and counts what
// the sites send each other until every other site's watch has delivered every
// update. It runs with three sites, and with two, where no site can forward a
// change to another that already has it.
//
// The changed bytes of an update are the JSON encoding of the field's new value
// (a random string of the sub-benchmark's size, quotes included). A change has to
// reach each other site (a delivery), so the floor is that many times the changed
// bytes; the ratios are per delivery:
//
//   - wire-x: Ethernet frames the sites sent onto the peer bridge (sync, gossip,
//     TCP/IP headers, acknowledgements: everything) / changed bytes;
//   - sync-x: TCP payload of the sync (gRPC) connections, both directions /
//     changed bytes;
//   - body-x: the crdt change body the same edit produces (computed in process
//     with package crdt) / changed bytes: what the protocol cannot avoid sending
//     without changing the change format.
//
// The target of issue 4 is at most 1.5x. One op is a batch of updatesPerOp
// updates and their delivery.
func BenchmarkBytesPerChange(b *testing.B) {
	for _, sites := range []int{3, 2} {
		b.Run(fmt.Sprintf("sites=%d", sites), func(b *testing.B) {
			c := startCluster(b, clusterConfig{Sites: sites, AntiEntropyInterval: antiEntropy})
			for _, size := range []int{16, 128, 1024} {
				b.Run(fmt.Sprintf("field=%dB", size), func(b *testing.B) { bytesPerChange(b, c, size) })
			}
		})
	}
}

// updatesPerOp is how many one-field updates one benchmark op makes.
const updatesPerOp = 200

func bytesPerChange(b *testing.B, c *cluster, size int) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rng := rand.New(rand.NewPCG(uint64(size), 1))
	key := fmt.Sprintf("/bytes/%d/%d", size, b.N)
	obj := bigObject(key)
	value := func() string { return randomString(rng, size) }
	obj["status"].(map[string]any)["heartbeat"] = value()
	first, err := json.Marshal(obj)
	if err != nil {
		b.Fatal(err)
	}
	src := c.Sites[0].Client
	var watches []*watchLog
	for _, s := range c.Sites[1:] {
		w, err := startWatch(ctx, s.Client, key)
		if err != nil {
			b.Fatal(err)
		}
		watches = append(watches, w)
	}
	if _, err := src.Put(ctx, key, string(first)); err != nil {
		b.Fatal(err)
	}
	delivered := func(n int) error {
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return poll(waitCtx, 5*time.Millisecond, func() (bool, string) {
			var state []string
			ok := true
			for j, w := range watches {
				events, err := w.Events(key)
				if err != nil {
					return false, err.Error()
				}
				ok = ok && len(events) == n
				state = append(state, fmt.Sprintf("s%d: %d/%d events", j+1, len(events), n))
			}
			return ok, strings.Join(state, ", ")
		})
	}
	if err := delivered(1); err != nil {
		b.Fatalf("the object did not reach the other sites: %v", err)
	}

	// The same edits in process: the change bodies the protocol has to carry.
	var doc crdt.Doc
	if _, _, err := doc.Put(first, crdt.Stamp{Counter: 1, Site: "s0"}); err != nil {
		b.Fatal(err)
	}
	counter := uint64(1)

	before, err := c.trafficSettled()
	if err != nil {
		b.Fatal(err)
	}
	updates := updatesPerOp * b.N
	var changed, body int
	puts := make([]time.Duration, 0, updates)
	acked := make([]time.Time, 0, updates)
	b.StartTimer()
	for range updates {
		start := time.Now()
		v := value()
		obj["status"].(map[string]any)["heartbeat"] = v
		raw, err := json.Marshal(obj)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := src.Put(ctx, key, string(raw)); err != nil {
			b.Fatal(err)
		}
		acked = append(acked, time.Now())
		puts = append(puts, acked[len(acked)-1].Sub(start))
		enc, _ := json.Marshal(v)
		changed += len(enc)
		b.StopTimer()
		counter++
		ch, ok, err := doc.Put(raw, crdt.Stamp{Counter: counter, Site: "s0"})
		if err != nil || !ok {
			b.Fatalf("crdt put: ok=%v %v", ok, err)
		}
		body += len(ch.Encode())
		b.StartTimer()
	}
	if err := delivered(1 + updates); err != nil {
		b.Fatalf("updates did not reach the other sites: %v", err)
	}
	b.StopTimer()
	after, err := c.trafficSettled()
	if err != nil {
		b.Fatal(err)
	}
	if !slices.Equal(before.conns, after.conns) {
		b.Logf("sync connections changed during the run (%v -> %v): sync bytes are incomplete", before.conns, after.conns)
	}
	// How long after its acknowledgement each update reached each other site.
	// Changes arrive in order, so event i+1 (after the create) is update i.
	var lat []time.Duration
	for _, w := range watches {
		events, _ := w.Events(key)
		for i, t := range acked {
			lat = append(lat, events[i+1].At.Sub(t))
		}
	}
	slices.Sort(lat)
	deliveries := float64((len(c.Sites) - 1) * updates)
	wire := float64(after.wire - before.wire)
	sync := float64(after.sync - before.sync)
	perChanged := float64(changed) / float64(updates)
	b.ReportMetric(wire/deliveries, "wire-B/delivery")
	b.ReportMetric(sync/deliveries, "sync-B/delivery")
	b.ReportMetric(float64(body)/float64(updates), "body-B/change")
	b.ReportMetric(perChanged, "changed-B/change")
	b.ReportMetric(wire/deliveries/perChanged, "wire-x")
	b.ReportMetric(sync/deliveries/perChanged, "sync-x")
	b.ReportMetric(float64(body)/float64(changed), "body-x")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-delivery-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-delivery-ms")
	b.Logf("%d updates of a %d-byte object, %d-byte field, %d sites: wire %.0f B, sync %.0f B per delivery; crdt body %d B per change; "+
		"put latency: first %d %v, last %d %v; load: %s",
		updates, len(first), size, len(c.Sites), wire/deliveries, sync/deliveries, body/updates,
		len(puts)/10, mean(puts[:len(puts)/10]), len(puts)/10, mean(puts[len(puts)-len(puts)/10:]), loadAvg())
}

// traffic is a reading of the peer network's counters.
type traffic struct {
	wire  uint64   // Ethernet bytes all sites sent onto the bridge
	sync  uint64   // TCP payload bytes all sites sent on sync connections
	conns []string // the sync connections counted
}

// trafficSettled reads the counters once they have stopped moving (in-flight
// acknowledgements and replies have landed), or after a few seconds if
// background gossip keeps them moving.
func (c *cluster) trafficSettled() (traffic, error) {
	var last traffic
	deadline := time.Now().Add(3 * time.Second)
	for {
		cur, err := c.traffic()
		if err != nil {
			return traffic{}, err
		}
		if (cur.wire == last.wire && cur.sync == last.sync) || time.Now().After(deadline) {
			return cur, nil
		}
		last = cur
		time.Sleep(150 * time.Millisecond) // counters have no change notification
	}
}

func (c *cluster) traffic() (traffic, error) {
	var t traffic
	wire, err := c.Net.PeerBytes()
	if err != nil {
		return t, err
	}
	for i, n := range wire {
		t.wire += n
		sent, conns, err := c.Net.TCPSent(i, peerPort)
		if err != nil {
			return t, err
		}
		t.sync += sent
		for _, conn := range conns {
			t.conns = append(t.conns, fmt.Sprintf("s%d:%s", i, conn))
		}
	}
	slices.Sort(t.conns)
	return t, nil
}

// bigObject returns a ~2 KB object shaped like a Kubernetes Pod.
func bigObject(name string) map[string]any {
	labels := map[string]any{}
	for i := range 8 {
		labels[fmt.Sprintf("label-%d.example.com/key", i)] = fmt.Sprintf("value-%d", i)
	}
	var containers []any
	for i := range 3 {
		containers = append(containers, map[string]any{
			"name":  fmt.Sprintf("container-%d", i),
			"image": fmt.Sprintf("registry.example.com/team/app-%d:v1.2.3", i),
			"args":  []any{"--listen=:8080", "--log-level=info", "--config=/etc/app/config.yaml"},
			"resources": map[string]any{
				"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
				"limits":   map[string]any{"cpu": "500m", "memory": "512Mi"},
			},
			"env": []any{map[string]any{"name": "MODE", "value": "production"}, map[string]any{"name": "REGION", "value": "edge-1"}},
		})
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{"name": name, "namespace": "default", "uid": "6f1c1d8e-8a7e-4b8e-9a53-0c4f5b2a9e11", "labels": labels,
			"annotations": map[string]any{"example.com/description": strings.Repeat("an edge workload ", 24)}},
		"spec":   map[string]any{"nodeName": "edge-node-1", "containers": containers, "restartPolicy": "Always"},
		"status": map[string]any{"phase": "Running", "podIP": "10.1.2.3", "hostIP": "192.168.1.10"},
	}
}

func randomString(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return (sum / time.Duration(len(ds))).Round(10 * time.Microsecond)
}
