package site

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/soheilhy/cmux"
)

// matchTimeout bounds how long a new connection may take to show which protocol
// it speaks.
const matchTimeout = 10 * time.Second

// serveClients answers one client listener with both the etcd gRPC API and the
// site's HTTP endpoints, as etcd does. With TLS, the handshake (and client
// certificate check) comes first and the mux reads the decrypted stream. HTTP/2
// goes to gRPC, HTTP/1.x to the HTTP handler; ALPN prefers http/1.1, so curl and
// browsers speak HTTP/1.1 while gRPC clients, which offer only h2, get h2.
func (s *Site) serveClients(l net.Listener, tlsCfg *tls.Config) {
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		cfg.NextProtos = []string{"http/1.1", "h2"}
		l = tls.NewListener(l, cfg)
	}
	m := cmux.New(l)
	m.SetReadTimeout(matchTimeout)
	grpcL := m.Match(cmux.HTTP2())
	httpL := m.Match(cmux.HTTP1Fast())
	srv := s.newHTTPServer()
	go func() { s.report(s.api.Serve(grpcL)) }()
	go func() { s.report(srv.Serve(httpL)) }()
	go func() { s.report(m.Serve()) }()
}

// report passes a listener's failure to Err, unless the site is closing.
func (s *Site) report(err error) {
	if err == nil || s.closed.Load() || errors.Is(err, http.ErrServerClosed) || errors.Is(err, cmux.ErrListenerClosed) || errors.Is(err, net.ErrClosed) {
		return
	}
	select {
	case s.errc <- err:
	default:
	}
}
