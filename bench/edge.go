package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/netdelay"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// EdgeConfig says what RunEdge does: N sites on one machine, each a
// Rhizome site with the unmodified Kubernetes control plane and stand-in
// kubelets, joined by the delay layer; one site is cut off while both
// sides change the workloads, then healed.
type EdgeConfig struct {
	// Sites is how many sites run; the last one is cut off.
	Sites int
	// Delay is the one-way delay (with jitter) of every inter-site link.
	Delay netdelay.Shape
	// CutDuration is how long the last site stays cut off. Each side elects
	// its own controller-manager once the lease it saw expires (15s), so a
	// cut shorter than about 25s shows one side without controllers.
	CutDuration time.Duration
	// Quiet is how long no controller may write (anything but Leases and
	// Events) before the controllers count as settled after the heal.
	Quiet time.Duration
	// SettleTimeout bounds the wait for identical stores and for the
	// controllers to settle after the heal, and for the workloads before.
	SettleTimeout time.Duration
	// SampleEvery is how often every site's pods are counted.
	SampleEvery time.Duration
	// JobRunTime is how long a Job's pod runs before it succeeds.
	JobRunTime time.Duration
	// RhizomeBin and WorkDir are as in Config; LogDir keeps the
	// components' logs (one directory per site) instead of removing them.
	RhizomeBin, WorkDir, LogDir string
	// Seed makes the delay's jitter reproducible.
	Seed uint64
	// StartTimeout bounds the start of each component.
	StartTimeout time.Duration
	// Progress receives setup steps and progress lines; nil discards them.
	Progress io.Writer
}

// DefaultEdgeConfig is three sites 25 ms apart and a 60 s cut.
func DefaultEdgeConfig() EdgeConfig {
	return EdgeConfig{
		Sites:         3,
		Delay:         netdelay.Shape{Delay: 25 * time.Millisecond, Jitter: 2500 * time.Microsecond},
		CutDuration:   time.Minute,
		Quiet:         20 * time.Second,
		SettleTimeout: 3 * time.Minute,
		SampleEvery:   time.Second,
		JobRunTime:    5 * time.Second,
		Seed:          1,
		StartTimeout:  2 * time.Minute,
	}
}

// QuickEdgeConfig is the shortest run that still shows each side electing
// its own leader: the one the default test run makes.
func QuickEdgeConfig() EdgeConfig {
	c := DefaultEdgeConfig()
	c.CutDuration, c.Quiet = 30*time.Second, 10*time.Second
	return c
}

// Validate reports the first problem with the configuration.
func (c EdgeConfig) Validate() error {
	switch {
	case c.Sites < 2 || c.Sites > 5:
		return fmt.Errorf("bench: edge: Sites %d outside 2..5", c.Sites)
	case c.CutDuration <= 0 || c.Quiet <= 0 || c.SettleTimeout <= 0 || c.SampleEvery <= 0 || c.StartTimeout <= 0 || c.JobRunTime <= 0:
		return errors.New("bench: edge: CutDuration, Quiet, SettleTimeout, SampleEvery, JobRunTime and StartTimeout must be positive")
	}
	return c.Delay.Validate()
}

// edgeSite is one running site.
type edgeSite struct {
	name  string
	kube  *kube.Cluster
	nodes *kube.Nodes
	etcd  *clientv3.Client
}

// edgeRun is one run's sites and network.
type edgeRun struct {
	cfg      EdgeConfig
	topo     *topology
	sites    []*edgeSite
	progress io.Writer
	start    time.Time
}

func (r *edgeRun) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "edge bench [%6.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *edgeRun) close() error {
	var errs []error
	for _, s := range r.sites {
		if s.nodes != nil {
			s.nodes.Close()
		}
		if s.etcd != nil {
			errs = append(errs, s.etcd.Close())
		}
		errs = append(errs, s.kube.Close())
	}
	if r.topo != nil {
		errs = append(errs, r.topo.close())
	}
	return errors.Join(errs...)
}

// RunEdge runs the edge story and reports what happened. Needs Linux and
// root (network namespaces).
func RunEdge(ctx context.Context, cfg EdgeConfig) (*EdgeReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	progress := progressOrDiscard(cfg.Progress)
	rep := &EdgeReport{Started: time.Now().UTC().Format(time.RFC3339), Host: newHost(),
		Sites: cfg.Sites, Delay: cfg.Delay.String(), CutSeconds: cfg.CutDuration.Seconds()}
	work, bins, cleanup, err := prepareRun(ctx, cfg.WorkDir, "rhizome-bench-edge-", cfg.RhizomeBin, "", progress, &rep.Host)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	kubeBins, err := testbin.LoadKube(ctx, progress)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	run := &edgeRun{cfg: cfg, progress: progress, start: time.Now()}
	err = run.startSites(bins.rhizome, kubeBins, work)
	if err == nil {
		err = run.story(ctx, rep)
	}
	if err := errors.Join(err, run.close()); err != nil {
		return nil, err
	}
	rep.Host.LoadAfter = loadAvg()
	return rep, nil
}

// startSites makes the network and starts every site, each once the one
// before is up; a site's apiserver starts once its store holds the
// cluster's bootstrap from the first site.
func (r *edgeRun) startSites(rhizome string, kubeBins testbin.KubeBinaries, work string) error {
	ports, err := freeSitePorts(r.cfg.Sites)
	if err != nil {
		return err
	}
	if r.topo, err = newTopology(r.cfg.Sites, "rzedge", r.cfg.Delay, r.cfg.Seed); err != nil {
		return err
	}
	var gossip []string
	for i, p := range ports {
		gossip = append(gossip, p.gossip)
		for _, addr := range []string{p.peer, p.gossip} {
			if err := r.topo.linkTCP(i, addr); err != nil {
				return err
			}
		}
	}
	if err := r.topo.linkUDP(gossip); err != nil {
		return err
	}
	pki, err := kube.NewPKI()
	if err != nil {
		return err
	}
	key := make([]byte, 32)
	rand.Read(key)
	for i, p := range ports {
		name := string(rune('a' + i))
		kc := kube.DefaultConfig()
		kc.RhizomeBinary, kc.Kube, kc.PKI = rhizome, kubeBins, pki
		kc.Namespace, kc.Hostname, kc.RestartDelay = r.topo.ns[i], "site-"+name, 2*time.Second
		kc.StartTimeout = r.cfg.StartTimeout
		kc.DatastoreArgs = []string{"--name=" + name,
			"--listen-peer-urls=http://" + p.peer, "--gossip-addr=" + p.gossip,
			"--gossip-key=" + base64.StdEncoding.EncodeToString(key),
			"--initial-cluster-token=rhizome-bench-edge", "--gossip-lan"}
		if i > 0 {
			kc.DatastoreArgs = append(kc.DatastoreArgs, "--join="+ports[0].gossip)
			kc.AfterDatastore = kube.WaitKey("/registry/namespaces/kube-system")
		}
		if r.cfg.LogDir != "" {
			kc.LogDir = filepath.Join(r.cfg.LogDir, "site-"+name)
		}
		r.logf("starting site %s (rhizome, kube-apiserver, kube-controller-manager, kube-scheduler)", name)
		c, err := kube.Launch(kc, filepath.Join(work, "site-"+name))
		if err != nil {
			return err
		}
		s := &edgeSite{name: name, kube: c}
		r.sites = append(r.sites, s)
		nodes := kube.DefaultNodesConfig()
		nodes.Names, nodes.CompleteAfter = []string{"node-" + name + "1", "node-" + name + "2"}, r.cfg.JobRunTime
		if s.nodes, err = kube.RunNodes(c.Client, nodes); err != nil {
			return err
		}
		if s.etcd, err = c.NewDatastoreClient(); err != nil {
			return err
		}
	}
	return nil
}
