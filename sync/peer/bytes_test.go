package peer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/store"
)

// countingTransport counts what its streams send, by message kind.
type countingTransport struct {
	Transport
	mu      sync.Mutex
	bytes   map[Kind]int
	msgs    map[Kind]int
	changes int
	body    int // bytes of the changes' bodies
	vvs     int // messages carrying a vector
	gzipped int // the bytes had each message been gzipped on its own
}

func (c *countingTransport) Dial(ctx context.Context, addr string) (Outbound, error) {
	out, err := c.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &countingOut{Outbound: out, c: c}, nil
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes, c.msgs, c.changes, c.gzipped, c.body, c.vvs = map[Kind]int{}, map[Kind]int{}, 0, 0, 0, 0
}

type countingOut struct {
	Outbound
	c *countingTransport
}

func (o *countingOut) Send(m *Message) (int, error) {
	n, err := o.Outbound.Send(m)
	if err == nil {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(m.encode())
		w.Close()
		o.c.mu.Lock()
		o.c.bytes[m.Kind] += n
		o.c.msgs[m.Kind]++
		o.c.changes += len(m.Changes)
		for _, ch := range m.Changes {
			o.c.body += len(ch.Body)
		}
		if m.VV != nil {
			o.c.vvs++
		}
		o.c.gzipped += z.Len()
		o.c.mu.Unlock()
	}
	return n, err
}

// TestBytesPerEdit measures the bytes sync sends per status-sized edit (a
// fresh 100-byte message in a pod-shaped object, as bench's edit workload
// writes) between three sites, by message kind, and what gzip would make of
// them. It reports the figures; it fails only if sync sends no more than the
// edits (the count is broken).
func TestBytesPerEdit(t *testing.T) {
	f := NewFabric(1)
	names := []string{"a", "b", "c"}
	stores := map[string]*store.Store{}
	counters := map[string]*countingTransport{}
	for _, n := range names {
		stores[n] = openSyncedStore(t, n, 100) // a rebase per 100 edits, as by default
		counters[n] = &countingTransport{Transport: f.Transport(n)}
		counters[n].reset()
		cfg := DefaultConfig()
		cfg.Logger, cfg.Transport = slog.New(slog.DiscardHandler), counters[n]
		r, err := NewRunner(cfg, stores[n])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		r.SetPeers(map[string]string{"a": "a", "b": "b", "c": "c"})
		r.SetCounted(names)
	}
	took := editLoad(t, stores, func() {
		for _, c := range counters {
			c.reset()
		}
	})
	total, gz, changes, body, vvs := 0, 0, 0, 0, 0
	byKind := map[Kind]int{}
	msgs := map[Kind]int{}
	for _, c := range counters {
		c.mu.Lock()
		for k, b := range c.bytes {
			byKind[k] += b
			total += b
		}
		for k, m := range c.msgs {
			msgs[k] += m
		}
		gz += c.gzipped
		changes += c.changes
		body += c.body
		vvs += c.vvs
		c.mu.Unlock()
	}
	n := float64(sites * edits)
	t.Logf("%d edits of %d bytes in %v: %.0f bytes sent per edit (%.1fx), %.0f gzipped per message (%.1fx); %.2f changes shipped per edit (%d peers each)",
		sites*edits, editBytes, took.Round(time.Millisecond), float64(total)/n, float64(total)/n/editBytes, float64(gz)/n, float64(gz)/n/editBytes, float64(changes)/n, sites-1)
	t.Logf("  change bodies: %.0f bytes per change shipped; %d messages carried a vector", float64(body)/float64(changes), vvs)
	for _, k := range []Kind{KindPull, KindBatch, KindSnapshot} {
		if msgs[k] > 0 {
			t.Logf("  kind %d: %d messages, %d bytes, %.0f per message", k, msgs[k], byKind[k], float64(byKind[k])/float64(msgs[k]))
		}
	}
	if float64(total) < n*editBytes {
		t.Fatalf("%d bytes for %v edits of %d bytes: the count is broken", total, n, editBytes)
	}
}

const sites, objects, edits, editBytes = 3, 20, 300, 100

// maxDupPerEdit bounds the changes received that were held already, summed over
// the sites, per edit made (each edit has sites-1 receivers).
const maxDupPerEdit = 1.0

// editLoad preloads each site's objects, calls reset once the sites
// converged, then has every site edit its own objects edits times and waits
// until they converge again; it returns how long the edits took.
func editLoad(t *testing.T, stores map[string]*store.Store, reset func()) time.Duration {
	t.Helper()
	names := slices.Sorted(maps.Keys(stores))
	object := func(site string, k int, msg string) string {
		return fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-%04d","namespace":"edit-%s","labels":{"app":"web"}},`+
			`"spec":{"containers":[{"name":"web","image":"nginx:1.27","ports":[{"containerPort":80}]}],"nodeName":"node-1"},`+
			`"status":{"phase":"Running","podIP":"10.0.0.1","message":%q}}`, k, site, msg)
	}
	for _, n := range names {
		for k := range objects {
			put(t, stores[n], fmt.Sprintf("/registry/pods/edit-%s/web-%04d", n, k), object(n, k, strings.Repeat("0", editBytes)))
		}
	}
	waitVectors(t, stores)
	time.Sleep(2 * DefaultConfig().AntiEntropyInterval) // the preload's last Pulls
	reset()
	msg := make([]byte, editBytes/2)
	start := time.Now()
	for i := range edits {
		for _, n := range names {
			rand.Read(msg)
			put(t, stores[n], fmt.Sprintf("/registry/pods/edit-%s/web-%04d", n, i%objects), object(n, i%objects, hex.EncodeToString(msg)))
		}
	}
	waitVectors(t, stores)
	return time.Since(start)
}

// waitVectors waits until the stores hold the same changes.
func waitVectors(t *testing.T, stores map[string]*store.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var first map[string]uint64
		same := true
		for _, st := range stores {
			vv := st.VersionVector()
			if first == nil {
				first = vv
			}
			same = same && maps.Equal(first, vv)
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the sites did not converge")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingListener counts the bytes its connections read and write.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// TestBytesPerEditGRPC measures TestBytesPerEdit's load over real gRPC
// connections on loopback (HTTP/2 framing, Pulls and keepalives included, both
// ways): messages plain and pushed at once, and as by default (gzipped, pushes
// delayed by PushDelay to take more changes). It reports the figures and fails
// if the defaults save nothing.
func TestBytesPerEditGRPC(t *testing.T) {
	perEdit := map[string]float64{}
	for _, tc := range []struct {
		name     string
		compress bool
		delay    time.Duration
	}{
		{"plain, at once", false, 0},
		{"default", DefaultGRPCConfig().Compress, DefaultConfig().PushDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var crossed atomic.Int64
			stores, runners := grpcSites(t, &crossed, func(cfg *Config) {
				cfg.GRPC.Compress, cfg.PushDelay = tc.compress, tc.delay
			})
			dups := func() (n uint64) {
				for _, r := range runners {
					n += r.Stats().Duplicates
				}
				return n
			}
			var dupsBefore uint64
			took := editLoad(t, stores, func() { crossed.Store(0); dupsBefore = dups() })
			perEdit[tc.name] = float64(crossed.Load()) / (sites * edits)
			time.Sleep(DefaultConfig().AntiEntropyInterval) // duplicates still on their way
			dupPerEdit := float64(dups()-dupsBefore) / (sites * edits)
			t.Logf("%d edits of %d bytes in %v: %.0f bytes crossed per edit to its %d peers (%.1fx); %.2f duplicates received per edit",
				sites*edits, editBytes, took.Round(time.Millisecond), perEdit[tc.name], sites-1, perEdit[tc.name]/editBytes, dupPerEdit)
			// Under steady writes every change should reach each peer about
			// once: pushes, not Pull answers re-sending what is on its way.
			if dupPerEdit >= maxDupPerEdit {
				t.Errorf("%.2f duplicates received per edit, want < %v", dupPerEdit, maxDupPerEdit)
			}
		})
	}
	if perEdit["default"] >= perEdit["plain, at once"] {
		t.Fatalf("by default %.0f bytes per edit, plain and at once %.0f", perEdit["default"], perEdit["plain, at once"])
	}
}

// TestDuplicatesUnderSteadyWrites has three sites over gRPC (default
// configuration) each take edits from several writers at once, as a loaded
// site does, and bounds the changes received that were held already: with
// writes in flight all the time, a Pull's answer must not send again what the
// open stream is delivering, nor a batch ask for more the log cannot give yet.
func TestDuplicatesUnderSteadyWrites(t *testing.T) {
	const writers, perWriter = 8, 60
	var crossed atomic.Int64
	stores, runners := grpcSites(t, &crossed, nil)
	dups := func() (n uint64) {
		for _, r := range runners {
			n += r.Stats().Duplicates
		}
		return n
	}
	// Steady state: the sites have met (each answered the others' first
	// Pull) before the writes start. Sites that start writing before they
	// met send each other, once, what the first answers crossed with.
	for n, st := range stores {
		if _, err := st.Update(context.Background(), func(tx *store.WriteTxn) error {
			return tx.Put([]byte("/registry/configmaps/"+n+"/hello"), []byte(`{"kind":"ConfigMap"}`), 0)
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitVectors(t, stores)
	dupsBefore, crossedBefore := dups(), crossed.Load()
	var wg sync.WaitGroup
	start := time.Now()
	for n, st := range stores {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pad := make([]byte, editBytes/2)
				for i := range perWriter {
					rand.Read(pad)
					key := fmt.Sprintf("/registry/configmaps/%s/w%d", n, w)
					value := fmt.Sprintf(`{"kind":"ConfigMap","data":{"n":"%d","msg":%q}}`, i, hex.EncodeToString(pad))
					if _, err := st.Update(context.Background(), func(tx *store.WriteTxn) error { return tx.Put([]byte(key), []byte(value), 0) }); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	waitVectors(t, stores)
	took := time.Since(start)
	time.Sleep(DefaultConfig().AntiEntropyInterval) // duplicates still on their way
	made := float64(len(stores) * writers * perWriter)
	perEdit := float64(dups()-dupsBefore) / made
	t.Logf("%.0f edits in %v: %.0f bytes crossed per edit, %.2f duplicates received per edit", made, took.Round(time.Millisecond), float64(crossed.Load()-crossedBefore)/made, perEdit)
	if perEdit >= maxDupPerEdit {
		t.Errorf("%.2f duplicates received per edit, want < %v", perEdit, maxDupPerEdit)
	}
}

// grpcSites starts sites a, b and c, each a store and a runner serving gRPC
// on loopback, every byte their connections carry counted in crossed; tune,
// if not nil, changes each runner's default Config.
func grpcSites(t *testing.T, crossed *atomic.Int64, tune func(*Config)) (map[string]*store.Store, map[string]*Runner) {
	t.Helper()
	stores, addrs, runners := map[string]*store.Store{}, map[string]string{}, map[string]*Runner{}
	for _, n := range []string{"a", "b", "c"} {
		stores[n] = openSyncedStore(t, n, 100)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[n] = ln.Addr().String()
		cfg := DefaultConfig()
		cfg.Logger, cfg.GRPC.ClusterToken = slog.New(slog.DiscardHandler), "token"
		if tune != nil {
			tune(&cfg)
		}
		if runners[n], err = NewRunner(cfg, stores[n]); err != nil {
			t.Fatal(err)
		}
		go runners[n].Serve(countingListener{Listener: ln, n: crossed})
		t.Cleanup(runners[n].Close)
	}
	for _, r := range runners {
		r.SetPeers(addrs)
		r.SetCounted([]string{"a", "b", "c"})
	}
	return stores, runners
}
