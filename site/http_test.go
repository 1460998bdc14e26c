package site

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

func httpGet(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestEndpointsBesideGRPC: one client port answers etcd's gRPC API and the HTTP
// endpoints; the metrics URL answers the same endpoints.
func TestEndpointsBesideGRPC(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
	cfg.ListenMetricsURLs = []string{"http://127.0.0.1:0"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Registerer = prometheus.NewRegistry()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := client(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := c.Put(ctx, fmt.Sprintf("/k/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// One watcher, counted by /metrics once created.
	if created := <-c.Watch(ctx, "/k/", clientv3.WithPrefix(), clientv3.WithCreatedNotify()); !created.Created {
		t.Fatalf("watch not created: %v", created.Err())
	}
	for _, base := range []string{s.ClientURLs()[0], s.MetricsURLs()[0]} {
		hc := http.DefaultClient
		cases := []struct{ path, want string }{
			{"/health", `"health": "true"`},
			{"/livez", "ok"},
			{"/readyz?verbose", "[+]store ok"},
			{"/version", `"etcdserver": "3.`},
			{"/metrics", "etcd_debugging_mvcc_watcher_total 1"},
			{"/metrics", "rhizome_store_changelog_entries"},
		}
		for _, tc := range cases {
			code, body := httpGet(t, hc, base+tc.path)
			if code != http.StatusOK || !strings.Contains(body, tc.want) {
				t.Errorf("%s%s: %d %.300s; want 200 with %q", base, tc.path, code, body, tc.want)
			}
		}
		var st Status
		_, body := httpGet(t, hc, base+"/rhizome/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil || st.Keys != 3 || st.Revision != 4 || !st.Ready || st.Site != "default" {
			t.Errorf("%s/rhizome/status: %+v %v", base, st, err)
		}
		code, body := httpGet(t, hc, base+"/rhizome/conflicts")
		if code != http.StatusOK || strings.TrimSpace(body) != "[]" {
			t.Errorf("%s/rhizome/conflicts: %d %s", base, code, body)
		}
	}
	// Under the NOSPACE alarm /health is false, as etcd's.
	if err := s.Store.RaiseNoSpace(); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, http.DefaultClient, s.ClientURLs()[0]+"/health"); code != http.StatusServiceUnavailable || !strings.Contains(body, "NOSPACE") {
		t.Errorf("/health under NOSPACE: %d %s", code, body)
	}
	if _, err := s.Store.DisarmNoSpace(); err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, http.DefaultClient, s.ClientURLs()[0]+"/health"); code != http.StatusOK {
		t.Errorf("/health with the alarm disarmed: %d %s", code, body)
	}
	// Closed, the store is stopped: /health and /livez say so.
	s.Close()
	for path, want := range map[string]string{"/health": `"health": "false"`, "/livez": "[-]store failed"} {
		rec := httptest.NewRecorder()
		s.handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("closed %s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}

// TestEndpointsOverMutualTLS: with client certificates required, HTTP on the
// client port needs one too (after the handshake the mux sees HTTP/1.1), and gRPC
// keeps working on the same port.
func TestEndpointsOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenClientURLs = []string{"https://127.0.0.1:0"}
	cfg.CertFile, cfg.KeyFile, cfg.TrustedCAFile, cfg.ClientCertAuth = p.certFile, p.keyFile, p.caFile, true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	httpsClient := func(certs []tls.Certificate) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: certs}, ForceAttemptHTTP2: true}}
	}
	code, body := httpGet(t, httpsClient([]tls.Certificate{p.clientCert}), s.ClientURLs()[0]+"/health")
	if code != http.StatusOK || !strings.Contains(body, `"true"`) {
		t.Fatalf("/health with a client certificate: %d %s", code, body)
	}
	if _, err := httpsClient(nil).Get(s.ClientURLs()[0] + "/health"); err == nil {
		t.Fatal("/health answered a client without a certificate")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.clientCert}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("gRPC on the same port: %v", err)
	}
}

// TestReadyzWhileJoining: a new site that joins a cluster is live at once but
// ready only once it has caught up with a site; a site that founds the cluster
// is ready at once.
func TestReadyzWhileJoining(t *testing.T) {
	founderGossip := testbin.Addr(t)
	joiner := startSitesWith(t, 1, founderGossip, func(c *Config) { c.Name = "joiner" })[0]
	url := joiner.ClientURLs()[0]
	if code, _ := httpGet(t, http.DefaultClient, url+"/livez"); code != http.StatusOK {
		t.Fatalf("joiner /livez: %d", code)
	}
	code, body := httpGet(t, http.DefaultClient, url+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "[-]bootstrapped failed") {
		t.Fatalf("joiner /readyz before any site answers: %d %s", code, body)
	}
	founder := startSitesWith(t, 1, "", func(c *Config) { c.Name = "founder"; c.GossipAddr = founderGossip })[0]
	if code, body := httpGet(t, http.DefaultClient, founder.ClientURLs()[0]+"/readyz"); code != http.StatusOK {
		t.Fatalf("founder /readyz: %d %s", code, body)
	}
	deadline := time.Now().Add(40 * time.Second) // gossip retries its join every 10 s
	for {
		code, body = httpGet(t, http.DefaultClient, url+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("joiner /readyz after the founder started: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEnablePprof checks that Go's profiles are served with EnablePprof, on the
// client URL as etcd's --enable-pprof does, and not without it.
func TestEnablePprof(t *testing.T) {
	for _, enable := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.ListenClientURLs = []string{"http://127.0.0.1:0"}
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.EnablePprof = enable
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		code, body := httpGet(t, http.DefaultClient, s.ClientURLs()[0]+"/debug/pprof/heap?debug=1")
		s.Close()
		if got := code == http.StatusOK && strings.Contains(body, "heap profile"); got != enable {
			t.Errorf("EnablePprof %v: GET /debug/pprof/heap = %d %.80q", enable, code, body)
		}
	}
}
