package kube

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certLifetime is far longer than any test run and short enough that a
// leaked key is worthless soon.
const certLifetime = 24 * time.Hour

// CA is a certificate authority generated for one cluster.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// KeyPair is a certificate with its private key, both PEM-encoded.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// CertSpec describes a leaf certificate.
type CertSpec struct {
	CommonName   string
	Organization []string // for client certificates: Kubernetes groups
	DNSNames     []string
	IPs          []net.IP
	Server       bool // serverAuth extended key usage
	Client       bool // clientAuth extended key usage
}

// NewCA generates a self-signed CA with an ECDSA P-256 key: fast to generate,
// and accepted by Go's TLS stack on both ends.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kube: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between processes
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("kube: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("kube: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}, nil
}

// Issue signs a leaf certificate for spec with a fresh ECDSA P-256 key.
func (ca *CA) Issue(spec CertSpec) (KeyPair, error) {
	if !spec.Server && !spec.Client {
		return KeyPair{}, fmt.Errorf("kube: certificate %q is neither server nor client", spec.CommonName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("kube: key for %q: %w", spec.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return KeyPair{}, err
	}
	var usage []x509.ExtKeyUsage
	if spec.Server {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("kube: certificate %q: %w", spec.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("kube: key for %q: %w", spec.CommonName, err)
	}
	return KeyPair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// NewServiceAccountKey generates the key pair kube-apiserver signs service
// account tokens with. RSA, because RS256 is what every token consumer
// accepts.
func NewServiceAccountKey() (KeyPair, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return KeyPair{}, fmt.Errorf("kube: service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return KeyPair{}, fmt.Errorf("kube: service account key: %w", err)
	}
	return KeyPair{
		CertPEM: pemBlock("PUBLIC KEY", pub),
		KeyPEM:  pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key)),
	}, nil
}

// Write stores the pair as dir/name.crt and dir/name.key (the key readable
// only by its owner) and returns both paths.
func (kp KeyPair) Write(dir, name string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, kp.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("kube: %w", err)
	}
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("kube: %w", err)
	}
	return certFile, keyFile, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("kube: serial number: %w", err)
	}
	return serial, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// PKI is what every site of one cluster shares: the cluster CA (serving
// and client certificates), the datastore's CA, the front proxy's CA and
// the service account signing key. Each control plane issues its own leaf
// certificates from it, so a client certificate or service account token
// of one site is valid at every site, as in one Kubernetes cluster.
type PKI struct {
	CA, EtcdCA, ProxyCA *CA
	ServiceAccount      KeyPair
}

// NewPKI generates the authorities and the service account key.
func NewPKI() (*PKI, error) {
	var p PKI
	var err error
	if p.CA, err = NewCA("rhizome-kube-ca"); err != nil {
		return nil, err
	}
	// The datastore trusts its own CA only, so a cluster client certificate
	// cannot talk to it, as kubeadm sets it up.
	if p.EtcdCA, err = NewCA("rhizome-etcd-ca"); err != nil {
		return nil, err
	}
	// The front proxy CA lets kube-apiserver publish a request-header CA,
	// which the controller manager's and scheduler's delegated
	// authentication insist on finding.
	if p.ProxyCA, err = NewCA("rhizome-front-proxy-ca"); err != nil {
		return nil, err
	}
	if p.ServiceAccount, err = NewServiceAccountKey(); err != nil {
		return nil, err
	}
	return &p, nil
}
