package kube

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/rhizome-kv/rhizome/internal/netdelay"
)

// TestCommand checks how a component is wrapped: a hostname of its own
// through unshare, then the network namespace through ip netns exec, both
// exec'ing in place so the component keeps the process id.
func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"plain", Config{}, []string{"/bin/x", "-a"}},
		{"hostname", Config{Hostname: "site-a"},
			[]string{"unshare", "-u", "--", "sh", "-c", `hostname "$0" && exec "$@"`, "site-a", "/bin/x", "-a"}},
		{"namespace and hostname", Config{Hostname: "site-a", Namespace: &netdelay.Namespace{Name: "ns1"}},
			[]string{"ip", "netns", "exec", "ns1", "unshare", "-u", "--", "sh", "-c", `hostname "$0" && exec "$@"`, "site-a", "/bin/x", "-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cluster{Config: tc.cfg}
			bin, args := c.command("/bin/x", []string{"-a"})
			if got := append([]string{bin}, args...); !slices.Equal(got, tc.want) {
				t.Errorf("command = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSharedPKI checks that control planes given one PKI trust the same
// authorities and sign service account tokens with the same key, while
// each issues its own leaf certificates.
func TestSharedPKI(t *testing.T) {
	pki, err := NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	var files []*pkiFiles
	for range 2 {
		c, err := newCluster(Config{PKI: pki}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.writePKI()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, pick := range []func(*pkiFiles) string{
		func(f *pkiFiles) string { return f.ca },
		func(f *pkiFiles) string { return f.etcdCA },
		func(f *pkiFiles) string { return f.proxyCA },
		func(f *pkiFiles) string { return f.saKey },
	} {
		if a, b := read(pick(files[0])), read(pick(files[1])); !bytes.Equal(a, b) {
			t.Errorf("%s and %s differ", pick(files[0]), pick(files[1]))
		}
	}
	if bytes.Equal(read(files[0].apiserverCert), read(files[1].apiserverCert)) {
		t.Error("both control planes got the same serving certificate")
	}
}
