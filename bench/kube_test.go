package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// BenchmarkKube drives the same mix of Pod and ConfigMap calls through a
// real kube-apiserver on Rhizome and on a real etcd, in one run, and prints
// the throughput and latency of each system per operation with the
// Rhizome/etcd ratios (issue 3's benchmark):
//
//	go test -run '^$' -bench Kube -benchtime 1x -timeout 30m ./bench/
//
// Each system gets its own storage-only control plane (internal/kube: the
// datastore and kube-apiserver v1.36, no controller-manager or scheduler)
// in kube-apiserver's default protobuf storage encoding, fsync on for both.
// Both control planes are up for the whole run; the cells run one at a time,
// alternating which system goes first. Per concurrency level each client
// fills its own pool of objects in one of a few namespaces, warms up, then
// runs the measured phase: create, get, list (namespace-scoped, paged),
// update and delete of its own Pods (about 3 KB) and ConfigMaps (about 1 KB),
// picked at random with weights, the same sequence on every system.
//
// Settings come from the environment (go test flags belong to go test):
//
//	RHIZOME_KUBE_BENCH_DURATION  measured time per cell (default 25s)
//	RHIZOME_KUBE_BENCH_WARMUP    unrecorded time before it (default 5s)
//	RHIZOME_KUBE_BENCH_CLIENTS   concurrency levels (default 16,64)
//	RHIZOME_KUBE_BENCH_JSON      1: also Rhizome with JSON storage encoding
//	RHIZOME_KUBE_BENCH_OUT       directory for kube.json, kube.txt, kube.png
//	                             (default: a new temporary directory)
//	RHIZOME_KUBE_LOGS            keep the components' logs in this directory
//
// The whole run is one iteration whatever b.N is; b.ReportMetric repeats the
// all-operations throughput ratio per level for benchstat.
func BenchmarkKube(b *testing.B) {
	if testing.Short() {
		b.Skip("starts real Kubernetes control planes; not in -short")
	}
	cfg := defaultKubeBenchConfig()
	if err := cfg.fromEnv(os.Getenv); err != nil {
		b.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	progress := io.Writer(os.Stderr)
	ctx := b.Context()

	rep := &kubeReport{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host: Host{
			OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GoVersion: runtime.Version(), LoadBefore: loadAvg(),
		},
		Config: cfg.report(),
	}
	fmt.Fprintf(progress, "kube bench: load1 %.2f; getting binaries\n", rep.Host.LoadBefore)
	bins := testbin.Kube(b)
	etcdBin, _ := testbin.Etcd(b)
	binDir := b.TempDir()
	rhizomeBin := kube.BuildRhizome(b, binDir)
	if root, err := findModuleRoot("."); err == nil {
		rep.Host.RhizomeCommit = gitDescribe(ctx, root)
	}
	rep.Host.RhizomeBin, rep.Host.EtcdBin = rhizomeBin, etcdBin
	rep.Host.EtcdVersion = binaryVersion(ctx, etcdBin)
	rep.Config.APIServer = binaryVersion(ctx, bins.APIServer)

	var targets []*kubeTarget
	for _, sys := range cfg.systems() {
		kc := kube.DefaultConfig()
		kc.Datastore, kc.Encoding = sys.Datastore, sys.Encoding
		kc.RhizomeBinary, kc.EtcdBinary, kc.Kube = rhizomeBin, etcdBin, bins
		kc.ControllerManager, kc.Scheduler = false, false
		kc.UnsafeNoFsync = false // durability is part of what is measured
		if dir := os.Getenv("RHIZOME_KUBE_LOGS"); dir != "" {
			kc.LogDir = filepath.Join(dir, "BenchmarkKube_"+sys.Name)
		}
		fmt.Fprintf(progress, "kube bench: starting %s (%s storage) and kube-apiserver\n", sys.Datastore, sys.Encoding)
		t, err := newKubeTarget(b, sys, kube.Start(b, kc), cfg.Conns)
		if err != nil {
			b.Fatal(err)
		}
		targets = append(targets, t)
	}

	total := len(cfg.Clients) * len(targets)
	for level, clients := range cfg.Clients {
		// Rotate which system goes first, so drift in the machine's load
		// does not always favour the same one.
		order := slices.Clone(targets)
		for range level % len(order) {
			order = append(order[1:], order[0])
		}
		for _, t := range order {
			cell, err := runKubeCell(ctx, cfg, t, targets, level, clients, progress)
			if err != nil {
				b.Fatal(err)
			}
			rep.Cells = append(rep.Cells, cell)
			fmt.Fprintf(progress, "[%d/%d] %s\n", len(rep.Cells), total, cell.summary())
		}
	}
	rep.Host.LoadAfter = loadAvg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.compare()

	fmt.Print("\n" + rep.Table())
	out := cfg.OutDir
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "rhizome-bench-kube-"); err != nil {
			b.Fatal(err)
		}
	}
	paths, err := rep.WriteFiles(out, "kube")
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("\nwrote %s\n", strings.Join(paths, ", "))
	for _, c := range rep.Comparisons {
		if c.Op == kubeOpAll && c.System == SystemRhizome {
			b.ReportMetric(c.ThroughputRatio, fmt.Sprintf("all-c%d-x", c.Clients))
		}
	}
	b.ReportMetric(0, "ns/op") // one run of many cells; ns/op would mean nothing
}

// kubeBenchConfig says what BenchmarkKube measures.
type kubeBenchConfig struct {
	// Duration is how long each cell is measured, after Warmup unrecorded.
	Duration, Warmup time.Duration
	// Clients are the concurrency levels: simulated API clients, each
	// making one call at a time.
	Clients []int
	// Conns is how many HTTP/2 connections to kube-apiserver the clients
	// share round-robin (client-go multiplexes a clientset's calls over one).
	Conns int
	// Namespaces per level; client i works in namespace i mod Namespaces.
	Namespaces int
	// PoolPerClient is how many Pods and how many ConfigMaps each client
	// creates before the cell and keeps, on average, during it.
	PoolPerClient int
	// PageSize is the limit of each list call.
	PageSize int
	// Mix weighs the operations.
	Mix kubeMix
	// Seed makes every system see the same sequence of calls.
	Seed uint64
	// JSON also measures Rhizome with kube-apiserver's JSON storage encoding.
	JSON bool
	// OutDir receives the report files; empty: a new temporary directory.
	OutDir string
	// ProgressEvery is how often a running cell reports its progress.
	ProgressEvery time.Duration
}

func defaultKubeBenchConfig() kubeBenchConfig {
	return kubeBenchConfig{
		Duration:      25 * time.Second,
		Warmup:        5 * time.Second,
		Clients:       []int{16, 64},
		Conns:         8,
		Namespaces:    8,
		PoolPerClient: 10,
		PageSize:      50,
		Mix:           defaultKubeMix(),
		Seed:          1,
		ProgressEvery: 5 * time.Second,
	}
}

// fromEnv overrides c with the RHIZOME_KUBE_BENCH_* variables that are set.
func (c *kubeBenchConfig) fromEnv(getenv func(string) string) error {
	for name, d := range map[string]*time.Duration{"DURATION": &c.Duration, "WARMUP": &c.Warmup} {
		if v := getenv("RHIZOME_KUBE_BENCH_" + name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("bench: RHIZOME_KUBE_BENCH_%s: %w", name, err)
			}
			*d = x
		}
	}
	if v := getenv("RHIZOME_KUBE_BENCH_CLIENTS"); v != "" {
		c.Clients = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("bench: RHIZOME_KUBE_BENCH_CLIENTS: %w", err)
			}
			c.Clients = append(c.Clients, n)
		}
	}
	if v := getenv("RHIZOME_KUBE_BENCH_JSON"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("bench: RHIZOME_KUBE_BENCH_JSON: %w", err)
		}
		c.JSON = on
	}
	if v := getenv("RHIZOME_KUBE_BENCH_OUT"); v != "" {
		c.OutDir = v
	}
	return nil
}

// Validate reports the first problem with the configuration.
func (c kubeBenchConfig) Validate() error {
	switch {
	case c.Duration <= 0:
		return errors.New("bench: kube: Duration must be positive")
	case c.Warmup < 0:
		return errors.New("bench: kube: Warmup < 0")
	case len(c.Clients) == 0:
		return errors.New("bench: kube: no Clients levels")
	case c.Conns < 1 || c.Namespaces < 1 || c.PoolPerClient < 1 || c.PageSize < 1:
		return errors.New("bench: kube: Conns, Namespaces, PoolPerClient and PageSize must be positive")
	case c.ProgressEvery <= 0:
		return errors.New("bench: kube: ProgressEvery must be positive")
	}
	sum := 0
	for op, w := range c.Mix {
		if w < 0 {
			return fmt.Errorf("bench: kube: negative weight for %s", kubeOp(op))
		}
		sum += w
	}
	if sum == 0 {
		return errors.New("bench: kube: the operation mix is empty")
	}
	for _, n := range c.Clients {
		if n < 1 || n > 999 {
			return fmt.Errorf("bench: kube: Clients level %d outside 1..999", n)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(c.Clients)))) != len(c.Clients) {
		return errors.New("bench: kube: repeated Clients level")
	}
	return nil
}

// kubeSystem is one control plane of the run.
type kubeSystem struct {
	Name      string
	Datastore kube.Datastore
	Encoding  kube.Encoding
}

// SystemRhizomeJSON is Rhizome under kube-apiserver's JSON storage encoding.
const SystemRhizomeJSON = "rhizome-json"

func (c kubeBenchConfig) systems() []kubeSystem {
	s := []kubeSystem{
		{SystemRhizome, kube.Rhizome, kube.Protobuf},
		{SystemEtcd, kube.Etcd, kube.Protobuf},
	}
	if c.JSON {
		s = append(s, kubeSystem{SystemRhizomeJSON, kube.Rhizome, kube.JSON})
	}
	return s
}

// kubeTarget is one running control plane with the benchmark's connections.
type kubeTarget struct {
	sys     kubeSystem
	cluster *kube.Cluster
	conns   []kubernetes.Interface // each its own HTTP/2 connection
	etcd    *clientv3.Client       // to the datastore, for its db size
	// datastore and apiserver stand for the two processes, for /proc.
	datastore, apiserver *server
}

func newKubeTarget(tb testing.TB, sys kubeSystem, c *kube.Cluster, conns int) (*kubeTarget, error) {
	t := &kubeTarget{sys: sys, cluster: c, etcd: c.DatastoreClient(tb)}
	var err error
	if t.datastore, err = pidServer(sys.Name, c.PID(kube.ComponentDatastore)); err != nil {
		return nil, err
	}
	if t.apiserver, err = pidServer("kube-apiserver", c.PID(kube.ComponentAPIServer)); err != nil {
		return nil, err
	}
	for range conns {
		rc := rest.CopyConfig(c.RESTConfig)
		// No client-side rate limit: the servers are what is measured.
		rc.QPS, rc.Burst = -1, 0
		rc.Timeout = time.Minute
		// Protobuf on the wire, as the Kubernetes components talk.
		rc.ContentType = kruntime.ContentTypeProtobuf
		rc.AcceptContentTypes = kruntime.ContentTypeProtobuf + "," + kruntime.ContentTypeJSON
		rc.UserAgent = "rhizome-bench-kube"
		// A Dial of its own makes client-go give this clientset its own
		// transport, hence its own connection, instead of a shared one.
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		rc.Dial = d.DialContext
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("bench: kube client: %w", err)
		}
		t.conns = append(t.conns, cs)
	}
	return t, nil
}

// pidServer wraps a process started elsewhere, for the /proc readers of
// server (CPU time, RSS).
func pidServer(name string, pid int) (*server, error) {
	if pid == 0 {
		return nil, fmt.Errorf("bench: %s is not running", name)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	return &server{system: name, cmd: &exec.Cmd{Process: p}}, nil
}

// kubeOpAll names the row of a cell that sums every operation.
const kubeOpAll = "all"

// runKubeCell measures one concurrency level on one system. all are every
// target of the run, whose CPU does not count as other load.
func runKubeCell(ctx context.Context, cfg kubeBenchConfig, t *kubeTarget, all []*kubeTarget, level, n int, progress io.Writer) (kubeCell, error) {
	name := fmt.Sprintf("%s %d clients", t.sys.Name, n)
	fmt.Fprintf(progress, "kube bench: %s: creating namespaces and %d objects (load1 %.2f)\n", name, 2*n*cfg.PoolPerClient, loadAvg())
	cs := t.conns[0]
	var namespaces []string
	for j := range min(cfg.Namespaces, n) {
		ns := fmt.Sprintf("kb-c%d-%d", n, j)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return kubeCell{}, fmt.Errorf("bench: %s: namespace: %w", name, err)
		}
		// Pods need their service account; without a controller manager
		// nobody else creates it.
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return kubeCell{}, fmt.Errorf("bench: %s: service account: %w", name, err)
		}
		namespaces = append(namespaces, ns)
	}
	clients := make([]*kubeClient, n)
	for i := range clients {
		clients[i] = newKubeClient(i, namespaces[i%len(namespaces)], t.conns[i%len(t.conns)], cfg, level)
	}
	if err := fillClients(ctx, clients); err != nil {
		return kubeCell{}, fmt.Errorf("bench: %s: %w", name, err)
	}
	var done atomic.Int64
	if cfg.Warmup > 0 {
		fmt.Fprintf(progress, "kube bench: %s: warming up for %v\n", name, cfg.Warmup)
		runKubePhase(ctx, clients, time.Now().Add(cfg.Warmup), &done)
	}
	if err := t.cluster.Running(); err != nil {
		return kubeCell{}, err
	}

	cell := kubeCell{System: t.sys.Name, Datastore: string(t.sys.Datastore), Encoding: t.sys.Encoding.String(),
		Clients: n, Conns: min(n, len(t.conns)), LoadStart: loadAvg()}
	meter := &cpuMeter{}
	for _, o := range all {
		meter.servers = append(meter.servers, o.datastore, o.apiserver)
	}
	meter.begin()
	ds0, err0 := t.datastore.cpuTime()
	as0, err1 := t.apiserver.cpuTime()
	done.Store(0)
	stopProgress := reportProgress(progress, name, cfg.ProgressEvery, &done)
	st, elapsed := runKubePhase(ctx, clients, time.Now().Add(cfg.Duration), &done)
	ds1, err2 := t.datastore.cpuTime()
	as1, err3 := t.apiserver.cpuTime()
	cell.OtherCores = meter.otherCores()
	cell.LoadEnd = loadAvg()
	stopProgress()
	if err := ctx.Err(); err != nil {
		return kubeCell{}, err
	}
	if err := t.cluster.Running(); err != nil {
		return kubeCell{}, err
	}

	cell.Seconds = elapsed.Seconds()
	var total histogram
	var totalErrs int64
	for op := range numKubeOps {
		var merged histogram
		var errs int64
		for k := range numKubeKinds {
			h := &st.hist[op][k]
			cell.Kinds = append(cell.Kinds, opStats(op.String(), k.String(), h, st.errors[op][k], elapsed))
			merged.merge(h)
			errs += st.errors[op][k]
		}
		cell.Ops = append(cell.Ops, opStats(op.String(), "", &merged, errs, elapsed))
		total.merge(&merged)
		totalErrs += errs
	}
	allOps := opStats(kubeOpAll, "", &total, totalErrs, elapsed)
	if st.lastErr != nil {
		allOps.LastError = st.lastErr.Error()
	}
	cell.Ops = append(cell.Ops, allOps)
	if total.n == 0 {
		return kubeCell{}, fmt.Errorf("bench: %s: no call succeeded: %w", name, st.lastErr)
	}
	cell.ListPages, cell.ListItems, cell.Conflicts = st.pages, st.items, st.conflicts
	cell.DatastoreCPUPerOpUs, cell.APIServerCPUPerOpUs = -1, -1
	if errors.Join(err0, err2) == nil {
		cell.DatastoreCPUPerOpUs = float64((ds1 - ds0).Microseconds()) / float64(total.n)
	}
	if errors.Join(err1, err3) == nil {
		cell.APIServerCPUPerOpUs = float64((as1 - as0).Microseconds()) / float64(total.n)
	}
	cell.DatastoreRSSBytes, _ = t.datastore.rssBytes()
	cell.APIServerRSSBytes, _ = t.apiserver.rssBytes()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if s, err := t.etcd.Status(sctx, t.cluster.DatastoreEndpoint); err == nil {
		cell.DatastoreDBBytes = s.DbSize
	}
	return cell, nil
}

func opStats(op, kind string, h *histogram, errs int64, elapsed time.Duration) kubeOpStats {
	return kubeOpStats{
		Op: op, Kind: kind, Requests: int64(h.n), Errors: errs,
		Throughput: float64(h.n) / elapsed.Seconds(),
		MeanMs:     ms(h.mean()), P50Ms: ms(h.quantile(0.5)), P90Ms: ms(h.quantile(0.9)),
		P99Ms: ms(h.quantile(0.99)), P999Ms: ms(h.quantile(0.999)), MaxMs: ms(time.Duration(h.max)),
	}
}

// reportProgress prints the calls done so far every interval until the
// returned function is called.
func reportProgress(w io.Writer, name string, every time.Duration, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				el := time.Since(start)
				n := done.Load()
				fmt.Fprintf(w, "kube bench: %s: %4.0fs  %7d calls  %6.0f/s  (load1 %.2f)\n", name, el.Seconds(), n, float64(n)/el.Seconds(), loadAvg())
			}
		}
	}()
	return func() { close(quit); <-finished }
}
