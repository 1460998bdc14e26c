package site

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// pki is a throwaway CA with a server and a client certificate, made in Go.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string
	peerCertFile, peerKeyFile string // for sites: server and client use
	clientCert                tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage ...x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "rhizome"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: usage, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p := pki{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = write("ca.crt", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	p.certFile = write("server.crt", "CERTIFICATE", srvDER)
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	p.keyFile = write("server.key", "EC PRIVATE KEY", keyDER)
	peerDER, peerKey := issue(4, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	p.peerCertFile = write("peer.crt", "CERTIFICATE", peerDER)
	peerKeyDER, _ := x509.MarshalECPrivateKey(peerKey)
	p.peerKeyFile = write("peer.key", "EC PRIVATE KEY", peerKeyDER)
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	p.clientCert = tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
	return p
}

func TestClientTLS(t *testing.T) {
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

	connect := func(certs []tls.Certificate) error {
		c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
			TLS: &tls.Config{RootCAs: p.pool, Certificates: certs}})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = c.Put(ctx, "k", "v")
		return err
	}
	if err := connect([]tls.Certificate{p.clientCert}); err != nil {
		t.Fatalf("client with a certificate from the trusted CA: %v", err)
	}
	if err := connect(nil); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
}

func TestConfigErrors(t *testing.T) {
	base := DefaultConfig()
	cases := []struct {
		name string
		edit func(*Config)
	}{
		{"no name", func(c *Config) { c.Name = "" }},
		{"bad url", func(c *Config) { c.ListenClientURLs = []string{"127.0.0.1:2379"} }},
		{"https without cert", func(c *Config) { c.ListenClientURLs = []string{"https://127.0.0.1:2379"} }},
		{"cert without key", func(c *Config) { c.CertFile = "x.crt" }},
		{"client auth without CA", func(c *Config) { c.ClientCertAuth = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
