package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// Component names, also the base names of their log files (LogPath).
const (
	ComponentDatastore         = "datastore"
	ComponentAPIServer         = "kube-apiserver"
	ComponentControllerManager = "kube-controller-manager"
	ComponentScheduler         = "kube-scheduler"
)

// Fixed cluster parameters. Nothing routes these addresses: there is no
// kubelet or proxy, only the apiserver's allocator uses them.
const (
	serviceCIDR       = "10.0.0.0/24"
	serviceAccountIss = "https://kubernetes.default.svc.cluster.local"
	startAttempts     = 3 // a free port can be taken before the component binds it
	logTailLines      = 40
)

// Cluster is a running control plane. Its fields are read-only after Start.
type Cluster struct {
	Config Config

	// Dir holds the generated certificates, keys and kubeconfigs.
	Dir string
	// LogDir holds one log file per component.
	LogDir string

	// DatastoreEndpoint is the datastore's client URL.
	DatastoreEndpoint string
	// DatastoreMetricsURL serves the datastore's /metrics.
	DatastoreMetricsURL string
	// APIServerURL is kube-apiserver's https URL.
	APIServerURL string
	// Kubeconfig is an admin (system:masters) kubeconfig file.
	Kubeconfig string

	// RESTConfig, Client and Dynamic authenticate as the admin.
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface

	kubectl string
	etcdTLS *tls.Config // the datastore client's TLS, nil for plain http

	streams atomic.Int64 // KubectlStream's log files are numbered

	mu        sync.Mutex
	processes map[string]*testbin.Process // the current process of each component
	restarts  map[string]int              // by component, see RestartDelay
	closed    chan struct{}               // closed by Close: no more restarts
	closeOnce sync.Once
	wg        sync.WaitGroup // the supervisors
}

// Start starts a datastore, kube-apiserver and (as configured) the
// controller manager and scheduler, waits until each is ready, and stops
// them all when tb ends. It fails tb if anything does not come up.
func Start(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	if cfg.Kube.APIServer == "" {
		cfg.Kube = testbin.Kube(tb)
	}
	if cfg.Datastore == Etcd && cfg.EtcdBinary == "" && cfg.DatastoreEndpoint == "" {
		cfg.EtcdBinary, _ = testbin.Etcd(tb)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	c, err := newCluster(cfg, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	// Registered first so it runs last: the tails of the logs explain a
	// failure better than anything else, and must be read before TempDir
	// removes them.
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, name := range []string{ComponentDatastore, ComponentAPIServer, ComponentControllerManager, ComponentScheduler} {
				if p := c.proc(name); p != nil {
					tb.Logf("kube: last %d lines of %s:\n%s", logTailLines, p.LogPath(), p.LogTail(logTailLines))
				}
			}
		}
	})
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Error(err)
		}
	})
	start := time.Now()
	if err := c.launch(); err != nil {
		tb.Fatal(err)
	}
	name := "control plane"
	if cfg.Hostname != "" {
		name += " " + cfg.Hostname
	}
	tb.Logf("kube: %s on %s (%s) ready in %v; logs in %s",
		name, cfg.Datastore, cfg.Encoding, time.Since(start).Round(time.Millisecond), c.LogDir)
	return c
}

// LogPath is the log file of a component (one of the Component constants).
func (c *Cluster) LogPath(component string) string {
	return filepath.Join(c.LogDir, component+".log")
}

// ReadLog returns a component's log so far.
func (c *Cluster) ReadLog(component string) (string, error) {
	data, err := os.ReadFile(c.LogPath(component))
	if err != nil {
		return "", fmt.Errorf("kube: %w", err)
	}
	return string(data), nil
}

// Running reports an error naming the first component that has exited
// (one that RestartDelay restarts counts only while it is down).
func (c *Cluster) Running() error {
	c.mu.Lock()
	procs := maps.Clone(c.processes)
	c.mu.Unlock()
	for name, p := range procs {
		if err := p.Alive(); err != nil {
			return fmt.Errorf("kube: %s: %w", name, err)
		}
	}
	return nil
}

// Kubectl runs kubectl as the admin and returns its standard output; the
// error carries its standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	bin, argv := c.command(c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...))
	out, err := testbin.Run(ctx, bin, argv...)
	if err != nil {
		return out, fmt.Errorf("kube: kubectl %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// KubectlRun runs kubectl as the admin with stdin (nil: none) as its
// standard input and returns both its outputs; a failure's error carries
// its standard error.
func (c *Cluster) KubectlRun(ctx context.Context, stdin io.Reader, args ...string) (testbin.Output, error) {
	bin, argv := c.command(c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...))
	out, err := testbin.RunCmd(ctx, testbin.Cmd{Path: bin, Args: argv, Stdin: stdin})
	if err != nil {
		return out, fmt.Errorf("kube: kubectl %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// KubectlStream starts kubectl as the admin for a caller that reads its
// output as it comes (kubectl get -w): its standard output is the process's
// Stdout, its standard error goes to a log file of its own in LogDir. The
// caller stops it; Close does not.
func (c *Cluster) KubectlStream(args ...string) (*testbin.Process, error) {
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.StreamStdout = "kubectl", true
	cfg.LogPath = filepath.Join(c.LogDir, fmt.Sprintf("kubectl-stream-%d.log", c.streams.Add(1)))
	cfg.Path, cfg.Args = c.command(c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...))
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: kubectl %s: %w", strings.Join(args, " "), err)
	}
	return p, nil
}

// APIServerMetrics scrapes kube-apiserver's /metrics as the admin.
func (c *Cluster) APIServerMetrics(ctx context.Context) (Metrics, error) {
	data, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("kube: apiserver metrics: %w", err)
	}
	return ParseMetrics(string(data))
}

// DatastoreClient returns an etcd v3 client for the datastore, closed when
// tb ends, to look beneath the apiserver (leases, compaction).
func (c *Cluster) DatastoreClient(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := c.newEtcdClient()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) newEtcdClient() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{c.DatastoreEndpoint},
		DialTimeout: 5 * time.Second,
		TLS:         c.etcdTLS,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return c.Dial(ctx, "tcp", addr)
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("kube: datastore client: %w", err)
	}
	return cli, nil
}

// pkiFiles are the paths of everything writePKI generated.
type pkiFiles struct {
	ca                       string
	apiserverCert, apiserver string // serving
	saPub, saKey             string
	etcdCA                   string
	etcdServerCert, etcdKey  string
	etcdClientCert, etcdCKey string
	proxyCA                  string
	proxyCert, proxyKey      string
	kubeconfigs              map[string]string // by component
	servingCert, servingKey  map[string]string // by component
}

// writePKI generates every certificate and key the cluster needs into
// c.Dir, and the kubeconfigs that carry the client certificates.
func (c *Cluster) writePKI() (*pkiFiles, error) {
	shared := c.Config.PKI
	if shared == nil {
		var err error
		if shared, err = NewPKI(); err != nil {
			return nil, err
		}
	}
	ca, etcdCA, proxyCA := shared.CA, shared.EtcdCA, shared.ProxyCA
	var err error
	f := &pkiFiles{kubeconfigs: map[string]string{}, servingCert: map[string]string{}, servingKey: map[string]string{}}
	write := func(name string, data []byte, mode os.FileMode) (string, error) {
		p := filepath.Join(c.Dir, name)
		return p, os.WriteFile(p, data, mode)
	}
	if f.ca, err = write("ca.crt", ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if f.etcdCA, err = write("etcd-ca.crt", etcdCA.CertPEM, 0o644); err != nil {
		return nil, err
	}
	loopback := CertSpec{
		DNSNames: []string{"localhost"},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
		Server:   true,
	}
	issue := func(ca *CA, spec CertSpec, name string) (string, string, error) {
		kp, err := ca.Issue(spec)
		if err != nil {
			return "", "", err
		}
		return kp.Write(c.Dir, name)
	}
	apiSpec := loopback
	apiSpec.CommonName = "kube-apiserver"
	apiSpec.DNSNames = append(apiSpec.DNSNames, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	// The first address of the service range is the kubernetes Service's.
	apiSpec.IPs = append(apiSpec.IPs, net.IPv4(10, 0, 0, 1))
	if f.apiserverCert, f.apiserver, err = issue(ca, apiSpec, "apiserver"); err != nil {
		return nil, err
	}
	etcdSpec := loopback
	etcdSpec.CommonName = "datastore"
	if f.etcdServerCert, f.etcdKey, err = issue(etcdCA, etcdSpec, "datastore"); err != nil {
		return nil, err
	}
	if f.etcdClientCert, f.etcdCKey, err = issue(etcdCA, CertSpec{CommonName: "kube-apiserver-etcd-client", Client: true}, "apiserver-etcd-client"); err != nil {
		return nil, err
	}
	if f.proxyCA, err = write("front-proxy-ca.crt", proxyCA.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if f.proxyCert, f.proxyKey, err = issue(proxyCA, CertSpec{CommonName: "front-proxy-client", Client: true}, "front-proxy-client"); err != nil {
		return nil, err
	}
	if f.saPub, f.saKey, err = shared.ServiceAccount.Write(c.Dir, "sa"); err != nil {
		return nil, err
	}
	for _, comp := range []string{ComponentControllerManager, ComponentScheduler} {
		spec := loopback
		spec.CommonName = comp
		if f.servingCert[comp], f.servingKey[comp], err = issue(ca, spec, comp+"-serving"); err != nil {
			return nil, err
		}
	}
	if c.Config.DatastoreTLS {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(etcdCA.CertPEM)
		cert, err := tls.LoadX509KeyPair(f.etcdClientCert, f.etcdCKey)
		if err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		c.etcdTLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	// Client identities: the admin is a cluster-admin through its group;
	// the controller manager and scheduler get exactly their bootstrap RBAC
	// roles through their user names, as kubeadm sets them up.
	users := []struct {
		name, cn string
		groups   []string
	}{
		{"admin", "rhizome-admin", []string{"system:masters"}},
		{ComponentControllerManager, "system:kube-controller-manager", nil},
		{ComponentScheduler, "system:kube-scheduler", nil},
	}
	for _, u := range users {
		kp, err := ca.Issue(CertSpec{CommonName: u.cn, Organization: u.groups, Client: true})
		if err != nil {
			return nil, err
		}
		path := filepath.Join(c.Dir, u.name+".kubeconfig")
		if err := writeKubeconfig(path, "", ca.CertPEM, kp); err != nil {
			return nil, err
		}
		f.kubeconfigs[u.name] = path
	}
	c.Kubeconfig = f.kubeconfigs["admin"]
	return f, nil
}

// writeKubeconfig writes a kubeconfig for server (filled in later by
// setServer when empty) authenticating with a client certificate.
func writeKubeconfig(path, server string, caPEM []byte, kp KeyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["rhizome"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts["rhizome"] = &clientcmdapi.Context{Cluster: "rhizome", AuthInfo: "user"}
	cfg.CurrentContext = "rhizome"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("kube: kubeconfig %s: %w", path, err)
	}
	return nil
}

// setServer points every kubeconfig at the apiserver once its port is known.
func setServer(paths map[string]string, server string) error {
	for _, p := range paths {
		cfg, err := clientcmd.LoadFromFile(p)
		if err != nil {
			return fmt.Errorf("kube: %w", err)
		}
		for _, cl := range cfg.Clusters {
			cl.Server = server
		}
		if err := clientcmd.WriteToFile(*cfg, p); err != nil {
			return fmt.Errorf("kube: %w", err)
		}
	}
	return nil
}

// startWithRetry starts a component on fresh ports until it gets past
// binding them: launch picks the ports, ready waits for the component.
func (c *Cluster) startWithRetry(name string, launch func() (*testbin.Process, error), ready func(context.Context) error) error {
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		p, err := launch()
		if err != nil {
			return err
		}
		c.setProc(name, p)
		err = c.waitReady(p, ready)
		if err == nil {
			return nil
		}
		lastErr = err
		_ = p.Stop()
		if !p.PortInUse() {
			break
		}
		// The log is appended to, so it keeps every attempt.
	}
	return lastErr
}

// waitReady polls ready, each attempt bounded by 5 s, until it succeeds,
// the process exits or the start timeout passes.
func (c *Cluster) waitReady(p *testbin.Process, ready func(context.Context) error) error {
	err := p.WaitReady(context.Background(), c.Config.StartTimeout, func(ctx context.Context) error {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return ready(attempt)
	})
	if err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	return nil
}

func (c *Cluster) startDatastore(pki *pkiFiles) error {
	scheme := "http"
	if c.Config.DatastoreTLS {
		scheme = "https"
	}
	launch := func() (*testbin.Process, error) {
		client, err := freePort()
		if err != nil {
			return nil, err
		}
		metrics, err := freePort()
		if err != nil {
			return nil, err
		}
		c.DatastoreEndpoint = fmt.Sprintf("%s://127.0.0.1:%d", scheme, client)
		c.DatastoreMetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)
		dataDir := filepath.Join(c.Dir, "data")
		// A retry starts from an empty directory, as the first attempt did.
		if err := os.RemoveAll(dataDir); err != nil {
			return nil, err
		}
		args := []string{
			"--name=kube",
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + c.DatastoreEndpoint,
			"--advertise-client-urls=" + c.DatastoreEndpoint,
			fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", metrics),
		}
		if c.Config.UnsafeNoFsync {
			args = append(args, "--unsafe-no-fsync")
		}
		if c.Config.DatastoreTLS {
			args = append(args,
				"--cert-file="+pki.etcdServerCert, "--key-file="+pki.etcdKey,
				"--trusted-ca-file="+pki.etcdCA, "--client-cert-auth")
		}
		bin := c.Config.RhizomeBinary
		if c.Config.Datastore == Etcd {
			bin = c.Config.EtcdBinary
			peer, err := freePort()
			if err != nil {
				return nil, err
			}
			peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
			args = append(args,
				"--listen-peer-urls="+peerURL,
				"--initial-advertise-peer-urls="+peerURL,
				"--initial-cluster=kube="+peerURL,
				"--log-level=warn")
		} else {
			args = append([]string{"serve"}, args...)
		}
		args = append(args, c.Config.DatastoreArgs...)
		return c.startProcess(ComponentDatastore, bin, args)
	}
	ready := func(ctx context.Context) error {
		cli, err := c.newEtcdClient()
		if err != nil {
			return err
		}
		defer cli.Close()
		_, err = cli.Status(ctx, c.DatastoreEndpoint)
		return err
	}
	return c.startWithRetry(ComponentDatastore, launch, ready)
}

func (c *Cluster) startAPIServer(pki *pkiFiles) error {
	launch := func() (*testbin.Process, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c.APIServerURL = fmt.Sprintf("https://127.0.0.1:%d", port)
		certDir := filepath.Join(c.Dir, "apiserver")
		if err := os.MkdirAll(certDir, 0o755); err != nil {
			return nil, err
		}
		args := []string{
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + certDir, // nothing is generated there, but never /var/run/kubernetes
			"--tls-cert-file=" + pki.apiserverCert,
			"--tls-private-key-file=" + pki.apiserver,
			"--client-ca-file=" + pki.ca,
			"--etcd-servers=" + c.DatastoreEndpoint,
			"--storage-media-type=" + string(c.Config.Encoding),
			"--event-ttl=" + c.Config.EventTTL.String(),
			"--etcd-compaction-interval=" + c.Config.CompactionInterval.String(),
			"--requestheader-client-ca-file=" + pki.proxyCA,
			"--requestheader-allowed-names=front-proxy-client",
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
			"--proxy-client-cert-file=" + pki.proxyCert,
			"--proxy-client-key-file=" + pki.proxyKey,
			"--service-cluster-ip-range=" + serviceCIDR,
			"--service-account-issuer=" + serviceAccountIss,
			"--service-account-key-file=" + pki.saPub,
			"--service-account-signing-key-file=" + pki.saKey,
			"--authorization-mode=RBAC",
			// Priority and fairness costs CPU and startup writes that a
			// shared 2-core CI machine cannot spare; storage is what is tested.
			"--enable-priority-and-fairness=false",
			"--profiling=false",
			"--v=1",
		}
		if c.Config.DatastoreTLS {
			args = append(args, "--etcd-cafile="+pki.etcdCA, "--etcd-certfile="+pki.etcdClientCert, "--etcd-keyfile="+pki.etcdCKey)
		}
		args = append(args, c.Config.APIServerArgs...)
		if err := setServer(pki.kubeconfigs, c.APIServerURL); err != nil {
			return nil, err
		}
		if err := c.newClients(); err != nil {
			return nil, err
		}
		return c.startProcess(ComponentAPIServer, c.Config.Kube.APIServer, args)
	}
	ready := func(ctx context.Context) error {
		body, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		return nil
	}
	return c.startWithRetry(ComponentAPIServer, launch, ready)
}

func (c *Cluster) newClients() error {
	rc, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	// Tests create objects in bursts; client-go's default 5 qps would make
	// them measure the client's rate limiter.
	rc.QPS, rc.Burst = 100, 200
	rc.UserAgent = "rhizome-kube-harness"
	rc.Dial = c.Dial
	c.RESTConfig = rc
	if c.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(rc); err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	return nil
}

// startController starts kube-controller-manager or kube-scheduler with its
// own identity and waits for its /healthz.
func (c *Cluster) startController(pki *pkiFiles, name string) error {
	bin := c.Config.Kube.ControllerManager
	if name == ComponentScheduler {
		bin = c.Config.Kube.Scheduler
	}
	var healthz string
	launch := func() (*testbin.Process, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		healthz = fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
		kc := pki.kubeconfigs[name]
		args := []string{
			"--kubeconfig=" + kc,
			"--authentication-kubeconfig=" + kc,
			"--authorization-kubeconfig=" + kc,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + pki.servingCert[name],
			"--tls-private-key-file=" + pki.servingKey[name],
			"--leader-elect=true",
			"--v=1",
		}
		if name == ComponentControllerManager {
			args = append(args,
				// Each controller acts as its own service account, so RBAC
				// is exercised as in a kubeadm cluster.
				"--use-service-account-credentials=true",
				"--service-account-private-key-file="+pki.saKey,
				"--root-ca-file="+pki.ca,
			)
		}
		return c.startProcess(name, bin, args)
	}
	caPEM, err := os.ReadFile(pki.ca)
	if err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext:     c.Dial,
	}}
	defer hc.CloseIdleConnections()
	ready := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthz, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	return c.startWithRetry(name, launch, ready)
}
