package site

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rhizome-kv/rhizome/etcdshim"
)

// handler serves the site's HTTP endpoints, on the metrics URLs and on every client
// URL beside gRPC:
//
//	/metrics            Prometheus exposition of the Gatherer (404 without one)
//	/health             etcd's {"health":"true"|"false","reason":...}; 503 when false
//	/livez, /readyz     "ok" or 503 with the failed checks (?verbose lists all)
//	/version            etcd's {"etcdserver":...,"etcdcluster":...} and rhizome's
//	/rhizome/status     Status as JSON
//	/rhizome/conflicts  Conflicts as JSON
//	/debug/pprof/       Go's runtime profiles (Config.EnablePprof only)
func (s *Site) handler() http.Handler {
	mux := http.NewServeMux()
	if g := s.cfg.gatherer(); g != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { serveChecks(w, r, s.liveChecks()) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { serveChecks(w, r, s.readyChecks()) })
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"etcdserver": etcdshim.Version, "etcdcluster": etcdshim.Version, "rhizome": version()})
	})
	mux.HandleFunc("GET /rhizome/status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Status()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /rhizome/conflicts", func(w http.ResponseWriter, r *http.Request) {
		cs, err := s.Conflicts()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, cs)
	})
	if s.cfg.EnablePprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// gatherer is what /metrics serves.
func (c Config) gatherer() prometheus.Gatherer {
	if c.Gatherer != nil {
		return c.Gatherer
	}
	g, _ := c.Registerer.(prometheus.Gatherer)
	return g
}

// check is one named condition of /livez or /readyz; err nil when it holds.
type check struct {
	name string
	err  error
}

// liveChecks: the process answers and its store is not stopped.
func (s *Site) liveChecks() []check {
	return []check{{"store", s.storeErr()}}
}

// readyChecks: live, and a joining site has caught up with a peer once.
func (s *Site) readyChecks() []check {
	checks := s.liveChecks()
	if s.joining {
		var err error
		if !s.Sync.Stats().CaughtUp {
			err = fmt.Errorf("joining the cluster: not yet caught up with any site (joins %s)", strings.Join(s.cfg.Join, ","))
		}
		checks = append(checks, check{"bootstrapped", err})
	}
	return checks
}

func (s *Site) storeErr() error {
	if s.closed.Load() {
		return fmt.Errorf("the store is stopped")
	}
	return nil
}

// serveChecks answers like kube-apiserver's and etcd's /livez and /readyz.
func serveChecks(w http.ResponseWriter, r *http.Request, checks []check) {
	var out strings.Builder
	failed := false
	for _, c := range checks {
		if c.err != nil {
			failed = true
			fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, c.err)
		} else if r.URL.Query().Has("verbose") {
			fmt.Fprintf(&out, "[+]%s ok\n", c.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "%s%s check failed\n", out.String(), r.URL.Path[1:])
		return
	}
	fmt.Fprintf(w, "%sok\n", out.String())
}

// serveHealth answers etcd's /health: false under a NOSPACE alarm or with the
// store stopped.
func (s *Site) serveHealth(w http.ResponseWriter, r *http.Request) {
	reason := ""
	if err := s.storeErr(); err != nil {
		reason = err.Error()
	} else if s.Store.NoSpace() {
		reason = "ALARM NOSPACE"
	}
	if reason != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"health": "false", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"health": "true", "reason": ""})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// version is this binary's module version and VCS revision, as built.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return v
}

// serveMetricsURLs starts the HTTP-only listeners of ListenMetricsURLs.
func (s *Site) serveMetricsURLs() error {
	for _, u := range s.cfg.ListenMetricsURLs {
		_, addr, err := parseURL(u)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("site: listen %s: %w", u, err)
		}
		s.metricsLns = append(s.metricsLns, l)
		srv := s.newHTTPServer()
		go func() {
			if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
				s.cfg.Logger.Error("site: metrics listener", "url", u, "err", err)
			}
		}()
	}
	return nil
}

// newHTTPServer returns a server of the site's endpoints, shut down by Close.
func (s *Site) newHTTPServer() *http.Server {
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	s.httpSrvs = append(s.httpSrvs, srv)
	return srv
}

// stopHTTP shuts the HTTP servers down, waiting a little for requests in flight.
func (s *Site) stopHTTP() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range s.httpSrvs {
		srv.Shutdown(ctx)
	}
}

// MetricsURLs returns the URLs of the metrics listeners (with the real ports).
func (s *Site) MetricsURLs() []string {
	urls := make([]string, len(s.metricsLns))
	for i, l := range s.metricsLns {
		urls[i] = "http://" + l.Addr().String()
	}
	return urls
}
