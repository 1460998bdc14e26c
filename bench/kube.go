package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
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

// RunKube drives the same mix of Pod and ConfigMap calls through a real
// kube-apiserver on Rhizome and on a real etcd, in one run, and returns the
// throughput and latency of each system per operation with the
// Rhizome/etcd ratios (issue 3's benchmark). `rhizome bench kube` runs it.
//
// Each system gets its own storage-only control plane (internal/kube: the
// datastore and kube-apiserver, no controller-manager or scheduler) in
// kube-apiserver's default protobuf storage encoding, fsync on for both.
// Both control planes are up for the whole run and only one is driven at a
// time. Per concurrency level each client first fills its own pool of
// objects in one of a few namespaces; then the level is measured in rounds
// (warm-up, measured phase), every system's round 1, then every system's
// round 2, rotating which goes first, so load from elsewhere on a shared
// machine falls on all systems alike. A measured phase runs: create, get,
// list (namespace-scoped, paged), update and delete of its own Pods (about
// 3 KB) and ConfigMaps (about 1 KB), picked at random with weights, the same
// sequence on every system.
func RunKube(ctx context.Context, cfg KubeConfig) (*KubeReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := progressOrDiscard(cfg.Progress)
	rep := &KubeReport{
		Started: time.Now().UTC().Format(time.RFC3339),
		Host:    newHost(),
		Config:  cfg.report(),
	}
	fmt.Fprintf(progress, "kube bench: load1 %.2f; getting binaries\n", rep.Host.LoadBefore)
	work, bins, cleanup, err := prepareRun(ctx, cfg.WorkDir, "rhizome-bench-kube-", cfg.RhizomeBin, cfg.EtcdBin, progress, &rep.Host)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	kubeBins, err := testbin.LoadKube(ctx, progress)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	rep.Config.APIServer = binaryVersion(ctx, kubeBins.APIServer)

	var targets []*kubeTarget
	defer func() {
		for _, t := range targets {
			if err := t.close(); err != nil {
				fmt.Fprintf(progress, "kube bench: stopping %s: %v\n", t.sys.Name, err)
			}
		}
	}()
	for _, sys := range cfg.systems() {
		fmt.Fprintf(progress, "kube bench: starting %s (%s storage) and kube-apiserver\n", sys.Datastore, sys.Encoding)
		t, err := startKubeTarget(cfg, sys, bins, kubeBins, filepath.Join(work, sys.Name))
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	if err := measureKube(ctx, cfg, targets, rep, progress); err != nil {
		return nil, err
	}
	rep.Host.LoadAfter = loadAvg()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.compare()
	return rep, nil
}

// measureKube measures every level on every target and adds the cells to rep.
func measureKube(ctx context.Context, cfg KubeConfig, targets []*kubeTarget, rep *KubeReport, progress io.Writer) error {
	total := len(cfg.Clients) * len(targets) * cfg.Rounds
	step := 0
	for level, clients := range cfg.Clients {
		cells := make([]*kubeCellRun, len(targets))
		for i, t := range targets {
			run, err := prepareKubeCell(ctx, cfg, t, level, clients, progress)
			if err != nil {
				return err
			}
			cells[i] = run
		}
		for round := range cfg.Rounds {
			// Rotate which system goes first, so drift in the machine's
			// load does not always favour the same one.
			for k := range cells {
				run := cells[(k+level+round)%len(cells)]
				if err := run.measure(ctx, cfg, targets, round, progress); err != nil {
					return err
				}
				step++
				fmt.Fprintf(progress, "[%d/%d] round %d/%d: %s\n", step, total, round+1, cfg.Rounds, run.rounds[round].summary(run))
			}
		}
		for _, run := range cells {
			cell, err := run.cell()
			if err != nil {
				return err
			}
			rep.Cells = append(rep.Cells, cell)
			fmt.Fprintf(progress, "cell: %s\n", cell.summary())
		}
	}
	return nil
}

// KubeConfig says what RunKube measures and where it finds its binaries.
type KubeConfig struct {
	// Duration is how long each round of a cell is measured, after Warmup
	// unrecorded.
	Duration, Warmup time.Duration
	// Rounds splits each cell: every system runs round 1, then every
	// system round 2, and so on, so a burst of load from elsewhere on the
	// machine hits all systems rather than one. A cell's figures merge
	// its rounds.
	Rounds int
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
	Mix KubeMix
	// Seed makes every system see the same sequence of calls.
	Seed uint64
	// JSON also measures Rhizome with kube-apiserver's JSON storage encoding.
	JSON bool
	// Replicated runs Rhizome as one of several sites (peer listener and
	// gossip, no peers: see startRhizomeSite) instead of alone.
	Replicated bool
	// ProgressEvery is how often a running cell reports its progress.
	ProgressEvery time.Duration

	// RhizomeBin and EtcdBin are as in Config; the Kubernetes binaries come
	// from scripts/bins.sh.
	RhizomeBin, EtcdBin string
	// WorkDir is where the control planes' temporary files go; empty means
	// the system temporary directory.
	WorkDir string
	// LogDir, when set, keeps each control plane's logs in a subdirectory
	// named after its system.
	LogDir string
	// StartTimeout bounds the start of each component.
	StartTimeout time.Duration
	// Progress receives the setup steps, progress lines and one line per
	// round; nil discards them.
	Progress io.Writer
}

// DefaultKubeConfig is what `rhizome bench kube` runs with no flags.
func DefaultKubeConfig() KubeConfig {
	return KubeConfig{
		Duration:      10 * time.Second,
		Warmup:        3 * time.Second,
		Rounds:        3,
		Clients:       []int{16, 64},
		Conns:         8,
		Namespaces:    8,
		PoolPerClient: 10,
		PageSize:      50,
		Mix:           defaultKubeMix(),
		Seed:          1,
		ProgressEvery: 5 * time.Second,
		StartTimeout:  2 * time.Minute,
	}
}

// QuickKubeConfig is `rhizome bench kube --quick`: one level of 4 clients,
// one round of 2 s after 1 s of warm-up; it shows the benchmark works, not
// how fast anything is.
func QuickKubeConfig() KubeConfig {
	c := DefaultKubeConfig()
	c.Duration, c.Warmup, c.Rounds = 2*time.Second, time.Second, 1
	c.Clients, c.Conns, c.Namespaces, c.PoolPerClient = []int{4}, 2, 2, 3
	c.ProgressEvery = time.Second
	return c
}

// Validate reports the first problem with the configuration.
func (c KubeConfig) Validate() error {
	switch {
	case c.Duration <= 0:
		return errors.New("bench: kube: Duration must be positive")
	case c.Warmup < 0:
		return errors.New("bench: kube: Warmup < 0")
	case len(c.Clients) == 0:
		return errors.New("bench: kube: no Clients levels")
	case c.Rounds < 1:
		return errors.New("bench: kube: Rounds < 1")
	case c.Conns < 1 || c.Namespaces < 1 || c.PoolPerClient < 1 || c.PageSize < 1:
		return errors.New("bench: kube: Conns, Namespaces, PoolPerClient and PageSize must be positive")
	case c.ProgressEvery <= 0 || c.StartTimeout <= 0:
		return errors.New("bench: kube: ProgressEvery and StartTimeout must be positive")
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

func (c KubeConfig) systems() []kubeSystem {
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
	// datastore and apiserver are the two processes, for /proc.
	datastore, apiserver int
}

// startKubeTarget launches sys's control plane in dir and connects to it.
func startKubeTarget(cfg KubeConfig, sys kubeSystem, bins binaries, kubeBins testbin.KubeBinaries, dir string) (*kubeTarget, error) {
	kc := kube.DefaultConfig()
	kc.Datastore, kc.Encoding = sys.Datastore, sys.Encoding
	kc.RhizomeBinary, kc.EtcdBinary, kc.Kube = bins.rhizome, bins.etcd, kubeBins
	kc.ControllerManager, kc.Scheduler = false, false
	kc.UnsafeNoFsync = false // durability is part of what is measured
	kc.StartTimeout = cfg.StartTimeout
	if cfg.Replicated && sys.Datastore == kube.Rhizome {
		peer, err1 := testbin.FreePort()
		gossip, err2 := testbin.FreePort()
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		kc.DatastoreArgs = []string{"--listen-peer-urls=http://" + peer, "--gossip-addr=" + gossip}
	}
	if cfg.LogDir != "" {
		kc.LogDir = filepath.Join(cfg.LogDir, sys.Name)
	}
	c, err := kube.Launch(kc, dir)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", sys.Name, err)
	}
	t := &kubeTarget{sys: sys, cluster: c, datastore: c.PID(kube.ComponentDatastore), apiserver: c.PID(kube.ComponentAPIServer)}
	if err := t.connect(cfg.Conns); err != nil {
		return nil, errors.Join(err, t.close())
	}
	return t, nil
}

// connect opens the etcd client and conns clientsets.
func (t *kubeTarget) connect(conns int) error {
	var err error
	if t.etcd, err = t.cluster.NewDatastoreClient(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	t.conns, err = kubeClientsets(t.cluster.RESTConfig, conns, nil)
	return err
}

// kubeClientsets returns n clientsets of base, each on its own HTTP/2
// connection, without a client-side rate limit, speaking protobuf. dial
// (nil: an ordinary dialer) reaches the apiserver, inside a site's
// namespace, say.
func kubeClientsets(base *rest.Config, n int, dial func(context.Context, string, string) (net.Conn, error)) ([]kubernetes.Interface, error) {
	var out []kubernetes.Interface
	for range n {
		rc := rest.CopyConfig(base)
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
		if dial != nil {
			rc.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) { return dial(ctx, network, addr) }
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, fmt.Errorf("bench: kube client: %w", err)
		}
		out = append(out, cs)
	}
	return out, nil
}

// close closes the etcd client and stops the control plane.
func (t *kubeTarget) close() error {
	if t.etcd != nil {
		t.etcd.Close()
	}
	return t.cluster.Close()
}

// kubeOpAll names the row of a cell that sums every operation.
const kubeOpAll = "all"

// kubeCellRun is one concurrency level on one system while it is measured.
type kubeCellRun struct {
	t       *kubeTarget
	name    string
	n       int
	clients []*kubeClient
	rounds  []kubeRound
}

// kubeRound is what one measured phase of a cell saw.
type kubeRound struct {
	stats              kubeStats
	elapsed            time.Duration
	datastoreCPU       time.Duration
	apiserverCPU       time.Duration
	cpuOK              bool
	otherCores         float64
	loadStart, loadEnd float64
}

func (r kubeRound) calls() int64 {
	var n int64
	for op := range r.stats.hist {
		for k := range r.stats.hist[op] {
			n += r.stats.hist[op][k].count()
		}
	}
	return n
}

func (r kubeRound) summary(run *kubeCellRun) string {
	n := r.calls()
	return fmt.Sprintf("%-12s clients=%-3d %7.0f calls/s  datastore %s us/call  apiserver %s us/call  (load1 %.2f, other cores %s)",
		run.t.sys.Name, run.n, float64(n)/r.elapsed.Seconds(),
		fmtCPU(perCall(r.datastoreCPU, n, r.cpuOK)), fmtCPU(perCall(r.apiserverCPU, n, r.cpuOK)), r.loadEnd, fmtCores(r.otherCores))
}

func perCall(d time.Duration, n int64, ok bool) float64 {
	if !ok || n == 0 {
		return -1
	}
	return float64(d.Microseconds()) / float64(n)
}

// prepareKubeCell creates the level's namespaces on t and fills every
// client's pool of objects.
func prepareKubeCell(ctx context.Context, cfg KubeConfig, t *kubeTarget, level, n int, progress io.Writer) (*kubeCellRun, error) {
	name := fmt.Sprintf("%s %d clients", t.sys.Name, n)
	fmt.Fprintf(progress, "kube bench: %s: creating namespaces and %d objects (load1 %.2f)\n", name, 2*n*cfg.PoolPerClient, loadAvg())
	cs := t.conns[0]
	var namespaces []string
	for j := range min(cfg.Namespaces, n) {
		namespaces = append(namespaces, fmt.Sprintf("kb-c%d-%d", n, j))
	}
	if err := createKubeNamespaces(ctx, cs, namespaces); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	run := &kubeCellRun{t: t, name: name, n: n, clients: make([]*kubeClient, n)}
	for i := range run.clients {
		run.clients[i] = newKubeClient(i, namespaces[i%len(namespaces)], t.conns[i%len(t.conns)], cfg, level)
	}
	if err := fillClients(ctx, run.clients); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	return run, nil
}

// createKubeNamespaces creates the namespaces and their default service
// accounts, which Pods need and which, without a controller manager,
// nobody else creates.
func createKubeNamespaces(ctx context.Context, cs kubernetes.Interface, names []string) error {
	for _, ns := range names {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("service account in %s: %w", ns, err)
		}
	}
	return nil
}

// measure runs one round: warm-up, then the measured phase. all are every
// target of the run, whose CPU does not count as other load.
func (run *kubeCellRun) measure(ctx context.Context, cfg KubeConfig, all []*kubeTarget, round int, progress io.Writer) error {
	t := run.t
	var done atomic.Int64
	if cfg.Warmup > 0 {
		fmt.Fprintf(progress, "kube bench: %s, round %d: warming up for %v\n", run.name, round+1, cfg.Warmup)
		runKubePhase(ctx, run.clients, time.Now().Add(cfg.Warmup), &done)
	}
	if err := t.cluster.Running(); err != nil {
		return err
	}
	r := kubeRound{loadStart: loadAvg()}
	meter := &cpuMeter{}
	for _, o := range all {
		meter.pids = append(meter.pids, o.datastore, o.apiserver)
	}
	meter.begin()
	ds0, err0 := procCPU(strconv.Itoa(t.datastore))
	as0, err1 := procCPU(strconv.Itoa(t.apiserver))
	done.Store(0)
	stopProgress := reportProgress(progress, fmt.Sprintf("%s, round %d", run.name, round+1), cfg.ProgressEvery, &done)
	r.stats, r.elapsed = runKubePhase(ctx, run.clients, time.Now().Add(cfg.Duration), &done)
	ds1, err2 := procCPU(strconv.Itoa(t.datastore))
	as1, err3 := procCPU(strconv.Itoa(t.apiserver))
	r.otherCores = meter.otherCores()
	r.loadEnd = loadAvg()
	stopProgress()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.cluster.Running(); err != nil {
		return err
	}
	if r.calls() == 0 {
		return fmt.Errorf("bench: %s: no call succeeded: %w", run.name, r.stats.lastErr)
	}
	r.datastoreCPU, r.apiserverCPU = ds1-ds0, as1-as0
	r.cpuOK = errors.Join(err0, err1, err2, err3) == nil
	run.rounds = append(run.rounds, r)
	return nil
}

// cell merges the rounds into the cell's figures.
func (run *kubeCellRun) cell() (kubeCell, error) {
	t := run.t
	c := kubeCell{System: t.sys.Name, Datastore: string(t.sys.Datastore), Encoding: t.sys.Encoding.String(),
		Clients: run.n, Conns: min(run.n, len(t.conns)), Rounds: len(run.rounds), LoadStart: -1, OtherCores: -1}
	var st kubeStats
	var elapsed, dsCPU, asCPU time.Duration
	cpuOK, coreSeconds, coresOK := true, 0.0, true
	for i, r := range run.rounds {
		st.merge(&r.stats)
		elapsed += r.elapsed
		dsCPU += r.datastoreCPU
		asCPU += r.apiserverCPU
		cpuOK = cpuOK && r.cpuOK
		if r.otherCores < 0 {
			coresOK = false
		}
		coreSeconds += r.otherCores * r.elapsed.Seconds()
		if i == 0 {
			c.LoadStart = r.loadStart
		}
		c.LoadEnd = r.loadEnd
		c.RoundThroughputs = append(c.RoundThroughputs, float64(r.calls())/r.elapsed.Seconds())
	}
	if elapsed == 0 {
		return kubeCell{}, fmt.Errorf("bench: %s: not measured", run.name)
	}
	if coresOK {
		c.OtherCores = coreSeconds / elapsed.Seconds()
	}
	c.Seconds = elapsed.Seconds()
	var total histogram
	var totalErrs int64
	for op := range numKubeOps {
		var merged histogram
		var errs int64
		for k := range numKubeKinds {
			h := &st.hist[op][k]
			c.Kinds = append(c.Kinds, opStats(op.String(), k.String(), h, st.errors[op][k], elapsed))
			merged.merge(h)
			errs += st.errors[op][k]
		}
		c.Ops = append(c.Ops, opStats(op.String(), "", &merged, errs, elapsed))
		total.merge(&merged)
		totalErrs += errs
	}
	allOps := opStats(kubeOpAll, "", &total, totalErrs, elapsed)
	if st.lastErr != nil {
		allOps.LastError = st.lastErr.Error()
	}
	c.Ops = append(c.Ops, allOps)
	c.ListPages, c.ListItems, c.Conflicts = st.pages, st.items, st.conflicts
	c.DatastoreCPUPerOpUs = perCall(dsCPU, total.count(), cpuOK)
	c.APIServerCPUPerOpUs = perCall(asCPU, total.count(), cpuOK)
	c.DatastoreRSSBytes, _ = procRSS(t.datastore)
	c.APIServerRSSBytes, _ = procRSS(t.apiserver)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := t.etcd.Status(ctx, t.cluster.DatastoreEndpoint); err == nil {
		c.DatastoreDBBytes = s.DbSize
	}
	return c, nil
}

func opStats(op, kind string, h *histogram, errs int64, elapsed time.Duration) kubeOpStats {
	return kubeOpStats{
		Op: op, Kind: kind, Requests: h.count(), Errors: errs,
		Throughput: float64(h.count()) / elapsed.Seconds(),
		MeanMs:     ms(h.mean()), P50Ms: ms(h.quantile(0.5)), P90Ms: ms(h.quantile(0.9)),
		P99Ms: ms(h.quantile(0.99)), P999Ms: ms(h.quantile(0.999)), MaxMs: ms(h.max()),
	}
}

// reportProgress prints the calls done so far every interval until the
// returned function is called.
func reportProgress(w io.Writer, name string, every time.Duration, done *atomic.Int64) (stop func()) {
	return tickProgress(w, every, func(el time.Duration) string {
		n := done.Load()
		return fmt.Sprintf("kube bench: %s: %4.0fs  %7d calls  %6.0f/s  (load1 %.2f)", name, el.Seconds(), n, float64(n)/el.Seconds(), loadAvg())
	})
}

// tickProgress writes line(time since the start) to w every interval until
// the returned function is called; stop waits for the last line.
func tickProgress(w io.Writer, every time.Duration, line func(time.Duration) string) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
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
				fmt.Fprintln(w, line(time.Since(start)))
			}
		}
	}()
	return func() { close(quit); <-finished }
}
