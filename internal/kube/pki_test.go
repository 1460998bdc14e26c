package kube

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"slices"
	"testing"
)

func TestIssue(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}

	for _, tc := range []struct {
		name     string
		spec     CertSpec
		wantErr  bool
		verifyAs x509.ExtKeyUsage
		dnsName  string // to verify as a server name, if set
		notAs    x509.ExtKeyUsage
	}{
		{
			name:     "server",
			spec:     CertSpec{CommonName: "s", DNSNames: []string{"localhost"}, IPs: loopback, Server: true},
			verifyAs: x509.ExtKeyUsageServerAuth, dnsName: "localhost", notAs: x509.ExtKeyUsageClientAuth,
		},
		{
			name:     "server by IP",
			spec:     CertSpec{CommonName: "s", IPs: loopback, Server: true},
			verifyAs: x509.ExtKeyUsageServerAuth, dnsName: "127.0.0.1", notAs: x509.ExtKeyUsageClientAuth,
		},
		{
			name:     "client",
			spec:     CertSpec{CommonName: "admin", Organization: []string{"system:masters"}, Client: true},
			verifyAs: x509.ExtKeyUsageClientAuth, notAs: x509.ExtKeyUsageServerAuth,
		},
		{name: "neither", spec: CertSpec{CommonName: "x"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kp, err := ca.Issue(tc.spec)
			if tc.wantErr {
				if err == nil {
					t.Fatal("Issue succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cert := parseCert(t, kp.CertPEM)
			if cert.Subject.CommonName != tc.spec.CommonName || !slices.Equal(cert.Subject.Organization, tc.spec.Organization) {
				t.Errorf("subject %v, want CN=%s O=%v", cert.Subject, tc.spec.CommonName, tc.spec.Organization)
			}
			opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tc.verifyAs}, DNSName: tc.dnsName}
			if _, err := cert.Verify(opts); err != nil {
				t.Errorf("verify: %v", err)
			}
			opts.KeyUsages = []x509.ExtKeyUsage{tc.notAs}
			if _, err := cert.Verify(opts); err == nil {
				t.Errorf("verified for usage %v it was not issued for", tc.notAs)
			}
			if _, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM); err != nil {
				t.Errorf("certificate and key do not match: %v", err)
			}
		})
	}

	// A certificate of another CA does not verify against this one.
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := other.Issue(CertSpec{CommonName: "c", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseCert(t, kp.CertPEM).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a certificate of another CA verified")
	}
}

// TestMutualTLS runs a handshake with the generated certificates both ways,
// as kube-apiserver and its clients will.
func TestMutualTLS(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(CertSpec{CommonName: "server", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(CertSpec{CommonName: "admin", Organization: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	serverPair, err := tls.X509KeyPair(server.CertPEM, server.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientPair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		st := tc.ConnectionState()
		peer <- st.PeerCertificates[0].Subject.Organization[0]
		_, _ = io.Copy(io.Discard, conn)
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientPair}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got := <-peer; got != "system:masters" {
		t.Errorf("server saw client group %q, want system:masters", got)
	}
}

func TestServiceAccountKey(t *testing.T) {
	kp, err := NewServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(kp.KeyPEM)
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("private key PEM block %v", block)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(kp.CertPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public key PEM block %v", block)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// What the apiserver signs with the private key, the public key verifies.
	digest := sha256.Sum256([]byte("token"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("public key does not verify the private key's signature: %v", err)
	}
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a certificate PEM: %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
