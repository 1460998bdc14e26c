package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// KubeSiteResult is one site's calls of one verb (or "all") in the
// Kubernetes mix at one delay, on one system.
type KubeSiteResult struct {
	System     string  `json:"system"`
	Site       int     `json:"site"`
	DelayMs    float64 `json:"one_way_delay_ms"`
	Op         string  `json:"op"`
	Requests   int64   `json:"requests"` // that succeeded
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput_rps"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	LastError  string  `json:"last_error,omitempty"`
}

// kubeSites is one storage-only control plane (kube-apiserver, no
// controllers) per site of a running cluster, each in its site's
// namespace against its site's own server, and each site's mix clients.
type kubeSites struct {
	planes  []*kube.Cluster
	clients [][]*kubeClient // by site
}

// kubeMixConfig is the KubeConfig the sites' mix clients take their mix,
// pools and pages from.
func (c SitesConfig) kubeMixConfig() KubeConfig {
	k := DefaultKubeConfig()
	k.Seed, k.PoolPerClient = c.Seed, c.KubePool
	return k
}

// runKubeSites starts an apiserver per site of c (the first, then each
// other once its server holds the first's bootstrap), runs the mix at every
// site at once at each of cfg.KubeDelays, and stops the apiservers.
func runKubeSites(ctx context.Context, cfg SitesConfig, c *cluster, dir string, progress io.Writer) ([]KubeSiteResult, error) {
	kubeBins, err := testbin.LoadKube(ctx, progress)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := c.topo.setShape(cfg.shape(cfg.KubeDelays[0])); err != nil {
		return nil, err
	}
	ks := &kubeSites{}
	defer func() {
		if err := ks.close(); err != nil {
			fmt.Fprintf(progress, "sites bench: %s: stopping kube-apiservers: %v\n", c.system, err)
		}
	}()
	if err := ks.start(ctx, cfg, c, kubeBins, dir, progress); err != nil {
		return nil, err
	}
	var res []KubeSiteResult
	for _, d := range cfg.KubeDelays {
		if err := c.topo.setShape(cfg.shape(d)); err != nil {
			return nil, err
		}
		r, err := ks.measure(ctx, cfg, c.system, d, progress)
		if err != nil {
			return nil, err
		}
		res = append(res, r...)
	}
	return res, nil
}

// start launches the control planes and fills every client's pool.
func (ks *kubeSites) start(ctx context.Context, cfg SitesConfig, c *cluster, kubeBins testbin.KubeBinaries, dir string, progress io.Writer) error {
	pki, err := kube.NewPKI()
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	for i := range c.servers {
		kc := kube.DefaultConfig()
		kc.Datastore = kube.Rhizome
		if c.system == SystemEtcd {
			kc.Datastore = kube.Etcd
		}
		kc.Kube, kc.PKI, kc.DatastoreEndpoint = kubeBins, pki, "http://"+c.local[i]
		kc.Namespace, kc.Hostname = c.topo.ns[i], fmt.Sprintf("%s-site%d", c.system, i)
		kc.ControllerManager, kc.Scheduler = false, false
		kc.StartTimeout = 2 * cfg.StartTimeout
		if i > 0 {
			kc.AfterDatastore = kube.WaitKey("/registry/namespaces/kube-system")
		}
		fmt.Fprintf(progress, "sites bench: %s: starting kube-apiserver at site%d (load1 %.2f)\n", c.system, i, loadAvg())
		plane, err := kube.Launch(kc, filepath.Join(dir, fmt.Sprintf("kube%d", i)))
		if err != nil {
			return fmt.Errorf("bench: %s site%d: %w", c.system, i, err)
		}
		ks.planes = append(ks.planes, plane)
	}
	mix := cfg.kubeMixConfig()
	for i, plane := range ks.planes {
		conns, err := kubeClientsets(plane.RESTConfig, max(1, cfg.KubeClients/2), plane.Dial)
		if err != nil {
			return err
		}
		// Namespaces of the site's own: sites never touch one another's
		// objects, as the KV workloads do not.
		var names []string
		for j := range min(mix.Namespaces, cfg.KubeClients) {
			names = append(names, fmt.Sprintf("ks-site%d-%d", i, j))
		}
		if err := createKubeNamespaces(ctx, conns[0], names); err != nil {
			return fmt.Errorf("bench: %s site%d: %w", c.system, i, err)
		}
		var clients []*kubeClient
		for j := range cfg.KubeClients {
			clients = append(clients, newKubeClient(j, names[j%len(names)], conns[j%len(conns)], mix, i))
		}
		if err := fillClients(ctx, clients); err != nil {
			return fmt.Errorf("%w (%s site%d)", err, c.system, i)
		}
		ks.clients = append(ks.clients, clients)
	}
	return nil
}

// measure runs the mix at every site at once (KubeWarmup unrecorded, then
// KubeDuration) and returns each site's figures per verb and for all.
func (ks *kubeSites) measure(ctx context.Context, cfg SitesConfig, system string, delay time.Duration, progress io.Writer) ([]KubeSiteResult, error) {
	run := func(d time.Duration, done []atomic.Int64) ([]kubeStats, []time.Duration) {
		stats, elapsed := make([]kubeStats, len(ks.clients)), make([]time.Duration, len(ks.clients))
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for i, clients := range ks.clients {
			wg.Go(func() { stats[i], elapsed[i] = runKubePhase(ctx, clients, deadline, &done[i]) })
		}
		wg.Wait()
		return stats, elapsed
	}
	done := make([]atomic.Int64, len(ks.clients))
	if cfg.KubeWarmup > 0 {
		run(cfg.KubeWarmup, done)
	}
	done = make([]atomic.Int64, len(ks.clients))
	stop := sitesProgress(progress, fmt.Sprintf("%s kube mix at %v", system, delay), cfg.ProgressEvery, done)
	stats, elapsed := run(cfg.KubeDuration, done)
	stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var res []KubeSiteResult
	for i := range stats {
		if err := ks.planes[i].Running(); err != nil {
			return nil, fmt.Errorf("bench: %s site%d: %w", system, i, err)
		}
		rows := kubeSiteRows(&stats[i], elapsed[i])
		for j := range rows {
			rows[j].System, rows[j].Site, rows[j].DelayMs = system, i, ms(delay)
		}
		all := rows[len(rows)-1]
		if all.Requests == 0 {
			return nil, fmt.Errorf("bench: %s site%d: no Kubernetes call succeeded at %v: %s", system, i, delay, all.LastError)
		}
		fmt.Fprintf(progress, "sites bench: %s kube mix at %v: site%d %.0f calls/s, p50 %s, p99 %s, %d errors\n",
			system, delay, i, all.Throughput, fmtMs(all.P50Ms), fmtMs(all.P99Ms), all.Errors)
		res = append(res, rows...)
	}
	return res, nil
}

// kubeSiteRows is one site's figures per verb (pods and configmaps
// together), then for every call.
func kubeSiteRows(st *kubeStats, elapsed time.Duration) []KubeSiteResult {
	var rows []KubeSiteResult
	var total histogram
	var totalErrs int64
	row := func(op string, h *histogram, errs int64) KubeSiteResult {
		return KubeSiteResult{Op: op, Requests: h.count(), Errors: errs, Throughput: ratio(float64(h.count()), elapsed.Seconds()),
			P50Ms: ms(h.quantile(0.5)), P99Ms: ms(h.quantile(0.99))}
	}
	for op := range numKubeOps {
		var merged histogram
		var errs int64
		for k := range numKubeKinds {
			merged.merge(&st.hist[op][k])
			errs += st.errors[op][k]
		}
		rows = append(rows, row(op.String(), &merged, errs))
		total.merge(&merged)
		totalErrs += errs
	}
	all := row(kubeOpAll, &total, totalErrs)
	if st.lastErr != nil {
		all.LastError = st.lastErr.Error()
	}
	return append(rows, all)
}

// close stops every control plane.
func (ks *kubeSites) close() error {
	var errs []error
	for _, p := range ks.planes {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
