package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// pkiFiles are the PEM files of one test's certificates.
type pkiFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	// strangerCert/Key are a client certificate from another CA.
	strangerCert, strangerKey string
	tls                       *tls.Config // a trusted client's
}

func newPKIFiles(t *testing.T) *pkiFiles {
	t.Helper()
	dir := t.TempDir()
	ca, err := kube.NewCA("e2e-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := kube.NewCA("stranger-ca")
	if err != nil {
		t.Fatal(err)
	}
	p := &pkiFiles{ca: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(p.ca, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(ca *kube.CA, spec kube.CertSpec, name string) (string, string, kube.KeyPair) {
		kp, err := ca.Issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := kp.Write(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key, kp
	}
	p.serverCert, p.serverKey, _ = write(ca, kube.CertSpec{CommonName: "server", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Server: true}, "server")
	var client kube.KeyPair
	p.clientCert, p.clientKey, client = write(ca, kube.CertSpec{CommonName: "client", Client: true}, "client")
	p.strangerCert, p.strangerKey, _ = write(other, kube.CertSpec{CommonName: "stranger", Client: true}, "stranger")
	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	p.tls = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
	return p
}

// tlsFlags are etcd's client TLS flags, which Rhizome takes by the same names.
func (p *pkiFiles) tlsFlags() []string {
	return []string{"--cert-file", p.serverCert, "--key-file", p.serverKey, "--trusted-ca-file", p.ca, "--client-cert-auth"}
}

// TestClientMutualTLS starts etcd and Rhizome with the same client TLS flags
// (etcd's names) and runs the real etcdctl against both: a client with a
// certificate from the trusted CA is served alike; one without a
// certificate, with a certificate from another CA, or without TLS at all is
// refused by both.
func TestClientMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	p := newPKIFiles(t)
	etcdBin, ctl := testbin.Etcd(t)
	etcdDir, rzDir := t.TempDir(), t.TempDir()
	targets := []*target{
		newTarget(t, ctl, startServerTLS(t, "etcd", p.tls, func() (string, []string) {
			client, peer := "https://"+testbin.Addr(t), "http://"+testbin.Addr(t)
			return client, append([]string{etcdBin, "--name", "e2e", "--data-dir", etcdDir,
				"--listen-client-urls", client, "--advertise-client-urls", client,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", "e2e=" + peer, "--log-level", "warn"}, p.tlsFlags()...)
		})),
		newTarget(t, ctl, startServerTLS(t, "rhizome", p.tls, func() (string, []string) {
			client := "https://" + testbin.Addr(t)
			return client, append([]string{rhizomeBuild.Path(t), "serve", "--name", "e2e", "--data-dir", rzDir,
				"--listen-client-urls", client, "--advertise-client-urls", client}, p.tlsFlags()...)
		})),
	}
	trusted := []string{"--cacert", p.ca, "--cert", p.clientCert, "--key", p.clientKey}
	cases := []struct {
		name  string
		args  []string
		serve bool
	}{
		{"trusted client put", append(trusted, "put", "k", "v"), true},
		{"trusted client get", append(trusted, "get", "k"), true},
		{"no client certificate", []string{"--cacert", p.ca, "get", "k"}, false},
		{"certificate from another CA", []string{"--cacert", p.ca, "--cert", p.strangerCert, "--key", p.strangerKey, "get", "k"}, false},
		{"no TLS", []string{"get", "k"}, false},
	}
	for _, c := range cases {
		var outs []string
		for _, tg := range targets {
			res, err := tg.etcdctl(append([]string{"--dial-timeout=2s", "--command-timeout=3s"}, c.args...), "")
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, tg.name, err)
			}
			if served := res.code == 0; served != c.serve {
				t.Errorf("%s: %s served=%v, want %v:\n%s", c.name, tg.name, served, c.serve, res.text())
			}
			outs = append(outs, res.stdout)
		}
		if c.serve && outs[0] != outs[1] {
			t.Errorf("%s: etcd printed %q, rhizome %q", c.name, outs[0], outs[1])
		}
	}
}

// TestNoSecretsInLogs runs a site at debug level with a gossip key and
// client TLS, writes a secret value under a secret-looking key, and reads
// its whole log: neither the value nor the gossip key nor the server's
// private key may appear in it.
func TestNoSecretsInLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	p := newPKIFiles(t)
	_, ctl := testbin.Etcd(t)
	gossipKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	dir := t.TempDir()
	rz := startServerTLS(t, "rhizome", p.tls, func() (string, []string) {
		client := "https://" + testbin.Addr(t)
		return client, append([]string{rhizomeBuild.Path(t), "serve", "--name", "e2e", "--data-dir", dir,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--gossip-key", gossipKey, "--log-level", "debug"}, p.tlsFlags()...)
	})
	tg := newTarget(t, ctl, rz)
	const secret = "s3cr3t-password-value-7f1c"
	trusted := []string{"--cacert", p.ca, "--cert", p.clientCert, "--key", p.clientKey}
	for _, args := range [][]string{
		append(trusted, "put", "/registry/secrets/default/db", secret),
		append(trusted, "get", "/registry/secrets/default/db"),
		append(trusted, "txn", "--interactive=false"),
	} {
		stdin := ""
		if args[len(args)-1] == "--interactive=false" {
			stdin = "value(\"/registry/secrets/default/db\") = \"" + secret + "\"\n\nput /registry/secrets/default/db " + secret + "-2\n\n\n"
		}
		if res, err := tg.etcdctl(args, stdin); err != nil || res.code != 0 {
			t.Fatalf("etcdctl %v: %v\n%s", args[len(trusted):], err, res.text())
		}
	}
	rz.stop()
	whole, err := rz.Log()
	if err != nil {
		t.Fatal(err)
	}
	// The header lines are the test harness's record of the command line,
	// not the server's output.
	var log string
	for line := range strings.Lines(whole) {
		if !strings.HasPrefix(line, "### ") {
			log += line
		}
	}
	serverKey, err := os.ReadFile(p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(strings.TrimSpace(string(serverKey)), "\n")[1]
	for name, s := range map[string]string{"the secret value": secret, "the gossip key": gossipKey, "the server's private key": keyBody} {
		if strings.Contains(log, s) {
			t.Errorf("%s appears in the log", name)
		}
	}
	if !strings.Contains(log, "level=DEBUG") && !strings.Contains(log, `"level":"DEBUG"`) {
		t.Errorf("the log has no debug lines, so it proves nothing:\n%s", log)
	}
}
