package multisite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/internal/testbin"
	"github.com/rhizome-kv/rhizome/site"
)

// TestObservability runs three `rhizome serve` processes and reads them the way
// an operator does, on each site's client URL (HTTP beside gRPC): /metrics while
// a site is cut off and after it heals, /readyz, and `rhizome status` after a
// site is killed, long enough for memberlist to have forgotten it.
func TestObservability(t *testing.T) {
	needNetns(t)
	c := startCluster(t, clusterConfig{Sites: 3, GossipLAN: true, AntiEntropyInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	url := func(i int) string { return fmt.Sprintf("http://%s:%d", c.Net.sites[i].ClientIP, clientPort) }
	pending := func(i int, peer string) float64 {
		return scrape(t, url(i), "rhizome_peer_changes_pending", "peer", peer)
	}
	lag := func(i int, peer string) float64 {
		return scrape(t, url(i), "rhizome_peer_sync_lag_seconds", "peer", peer)
	}

	for i := range c.Sites {
		if code, body := get(t, url(i)+"/readyz"); code != http.StatusOK {
			t.Fatalf("s%d /readyz: %d %s", i, code, body)
		}
	}
	mustPut(ctx, t, c.Sites[0].Client, "/obs/first", "v")
	waitMetric(ctx, t, "s0 sees s2 holding all", func() (bool, string) {
		p, l := pending(0, "s2"), lag(0, "s2")
		return p == 0 && l == 0, fmt.Sprintf("pending %v, lag %v", p, l)
	})
	if got := scrape(t, url(0), "rhizome_gossip_members", "state", "alive"); got != 3 {
		t.Fatalf("s0: rhizome_gossip_members{state=alive} = %v, want 3", got)
	}

	// Cut s2 off: s0's writes pile up as pending for s2, and the lag grows. Both
	// create one key meanwhile: a conflict, once healed.
	c.Net.Cut(2)
	mustPut(ctx, t, c.Sites[0].Client, "/obs/dup", `{"by":"s0"}`)
	mustPut(ctx, t, c.Sites[2].Client, "/obs/dup", `{"by":"s2"}`)
	const writes = 200
	for i := range writes {
		mustPut(ctx, t, c.Sites[0].Client, fmt.Sprintf("/obs/cut/%d", i), "v")
	}
	if got := pending(0, "s2"); got < writes {
		t.Fatalf("cut: s0's rhizome_peer_changes_pending{peer=s2} = %v, want >= %d", got, writes)
	}
	lag1 := lag(0, "s2")
	time.Sleep(2 * time.Second)
	if lag2 := lag(0, "s2"); lag1 <= 0 || lag2 < lag1+1.5 {
		t.Fatalf("cut: s0's rhizome_peer_sync_lag_seconds{peer=s2} went %v then %v, want growing", lag1, lag2)
	}
	if got := pending(0, "s1"); got != 0 {
		// s1 is not cut: it keeps up.
		waitMetric(ctx, t, "s1 keeps up", func() (bool, string) { p := pending(0, "s1"); return p == 0, fmt.Sprint(p) })
	}
	sentBefore := scrape(t, url(0), "rhizome_peer_sent_bytes_total", "peer", "s2")

	// Heal: both come back to zero, and s2 has merged s0's changes.
	c.Net.Heal(2)
	waitMetric(ctx, t, "s0 sees s2 caught up", func() (bool, string) {
		p, l := pending(0, "s2"), lag(0, "s2")
		return p == 0 && l == 0, fmt.Sprintf("pending %v, lag %v", p, l)
	})
	if got := scrape(t, url(2), "rhizome_merges_applied_total", "", ""); got < writes {
		t.Fatalf("s2 merged %v changes, want >= %d", got, writes)
	}
	if got := scrape(t, url(0), "rhizome_peer_sent_bytes_total", "peer", "s2"); got <= sentBefore {
		t.Fatalf("s0 sent s2 no bytes after healing (%v then %v)", sentBefore, got)
	}
	if got := scrape(t, url(2), "rhizome_peer_received_bytes_total", "peer", "s0"); got <= 0 {
		t.Fatalf("s2 received %v bytes from s0", got)
	}
	if got := scrape(t, url(0), "grpc_server_started_total", "grpc_service", "rhizome.peer.v1.Peer"); got <= 0 {
		t.Fatalf("s0: grpc_server_started_total{grpc_service=rhizome.peer.v1.Peer} = %v", got)
	}
	waitMetric(ctx, t, "s0 lists the conflict", func() (bool, string) {
		var cs []site.Conflict
		_, body := get(t, url(0)+"/rhizome/conflicts")
		if err := json.Unmarshal([]byte(body), &cs); err != nil {
			return false, err.Error()
		}
		return len(cs) == 1 && cs[0].Key == "/obs/dup" && strings.Join(cs[0].Sites, ",") != "" && cs[0].Kind == crdt.ConcurrentCreate.String() && !cs[0].Time.IsZero(), body
	})

	// Kill s2: it stays in s0's status, as dead, after memberlist has reaped it
	// (LAN timing: dead within seconds, reaped 30 s later).
	c.Sites[2].proc.Kill()
	waitStatus(ctx, t, url(0), "s2", site.StateDead)
	if got := scrape(t, url(0), "rhizome_gossip_members", "state", "dead"); got != 1 {
		t.Fatalf("s0: rhizome_gossip_members{state=dead} = %v, want 1", got)
	}
	if log := c.Sites[0].proc.LogTail(1000); !strings.Contains(log, `msg="gossip: site dead" site=s2`) {
		t.Fatalf("s0 logged no death of s2:\n%s", log)
	}
	time.Sleep(35 * time.Second)
	st := waitStatus(ctx, t, url(0), "s2", site.StateDead)
	if st.Keys < writes+1 || st.Revision < int64(writes+1) {
		t.Fatalf("s0 status: %d keys at revision %d, want >= %d", st.Keys, st.Revision, writes+1)
	}
	table := rhizome(t, "status", "--endpoints", url(0))
	for _, want := range []string{"site s0", "s1", "alive", "s2", "dead", "1 conflicts"} {
		if !strings.Contains(table, want) {
			t.Fatalf("status table lacks %q:\n%s", want, table)
		}
	}
	t.Logf("rhizome status:\n%s", table)
}

// TestStatusErrors: `rhizome status` says in one line when a URL does not answer
// and when what answers is not a Rhizome site.
func TestStatusErrors(t *testing.T) {
	srv := &http.Server{Handler: http.NotFoundHandler()}
	l := listenLocal(t)
	go srv.Serve(l)
	defer srv.Close()
	cases := []struct{ endpoint, want string }{
		{"127.0.0.1:1", "does not answer"},
		{"http://" + l.Addr().String(), "is not a Rhizome site"},
	}
	for _, tc := range cases {
		out, err := testbin.Run(t.Context(), rhizomeBuild.Path(t), "status", "--endpoints", tc.endpoint)
		var re *testbin.RunError
		if !errors.As(err, &re) {
			t.Errorf("status --endpoints %s: %v\n%s\nwant a failure", tc.endpoint, err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(out+re.Stderr), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("status --endpoints %s printed:\n%s%s\nwant one line saying %q", tc.endpoint, out, re.Stderr, tc.want)
		}
	}
}

// rhizome runs the binary and returns its standard output.
func rhizome(t *testing.T, args ...string) string {
	t.Helper()
	out, err := testbin.Run(t.Context(), rhizomeBuild.Path(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitStatus polls `rhizome status -o json` until site is in state, and returns
// that status.
func waitStatus(ctx context.Context, t *testing.T, url, name, state string) site.Status {
	t.Helper()
	var st site.Status
	err := poll(ctx, 500*time.Millisecond, func() (bool, string) {
		st = site.Status{}
		if err := json.Unmarshal([]byte(rhizome(t, "status", "--endpoints", url, "-o", "json")), &st); err != nil {
			return false, err.Error()
		}
		for _, s := range st.Sites {
			if s.Site == name {
				return s.State == state, fmt.Sprintf("%s is %s", name, s.State)
			}
		}
		return false, fmt.Sprintf("%s not listed: %+v", name, st.Sites)
	})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func waitMetric(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	if err := poll(ctx, 200*time.Millisecond, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// scrape reads one sample of a metric from a site's /metrics: the one whose label
// has the value (any, if label is empty); -1 if there is none.
func scrape(t *testing.T, url, name, label, value string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s/metrics: %v", url, err)
	}
	mf := mfs[name]
	if mf == nil {
		return -1
	}
	for _, m := range mf.GetMetric() {
		if label == "" || hasLabel(m, label, value) {
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
