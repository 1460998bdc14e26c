package multisite

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crdtkube "github.com/rhizome-kv/rhizome/crdt/kube"
	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/netdelay"
)

// The objects of the scenario.
const (
	kubeNS       = "edge"   // where the scenario's objects live
	doomedNS     = "doomed" // deleted on one side while the other creates in it
	deployName   = "web"
	kcmLeaseName = "kube-controller-manager"
	restartDelay = 2 * time.Second // deploy/systemd's RestartSec
	// controlRejected is how many of cutWrites one etcd refuses: the second
	// ConfigMap "same", the ConfigMap in the namespace being deleted, the
	// second Service asking for 10.0.0.100 and the second for NodePort 30100.
	controlRejected = 4
)

// kubeSite is one site's control plane and its stand-in kubelets.
type kubeSite struct {
	Name string
	*kube.Cluster
	Etcd *clientv3.Client
}

// startKubeSites starts n Rhizome sites on the bridge network, each in its own
// namespace and with its own hostname, and on each an unmodified
// kube-apiserver, kube-controller-manager and kube-scheduler (default flags,
// leader election on; the controllers restarted 2s after they exit, as
// deploy/systemd does) and two stand-in kubelets. Sites after the first start
// their apiserver only once their store holds the first site's bootstrap, as
// a site joining a running cluster does.
func startKubeSites(t *testing.T, n int) ([]*kubeSite, *network) {
	t.Helper()
	nw := newNetwork(t, n)
	bin := rhizomeBuild.Path(t)
	pki, err := kube.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString([]byte("rhizome-ms-kube!"))
	var sites []*kubeSite
	for i, ns := range nw.sites {
		name := string(rune('a' + i))
		cfg := siteConfig(pki, name)
		cfg.RhizomeBinary, cfg.UnsafeNoFsync = bin, true
		cfg.Namespace = &netdelay.Namespace{Name: ns.NS}
		cfg.DatastoreArgs = []string{
			"--name=" + name,
			fmt.Sprintf("--listen-peer-urls=http://%s:%d", ns.PeerIP, peerPort),
			fmt.Sprintf("--advertise-peer-urls=http://%s:%d", ns.PeerIP, peerPort),
			fmt.Sprintf("--gossip-addr=%s:%d", ns.PeerIP, gossipPort),
			"--gossip-key=" + key,
			"--initial-cluster-token=rhizome-multisite-kube",
			"--gossip-lan",
		}
		if i > 0 {
			cfg.DatastoreArgs = append(cfg.DatastoreArgs, fmt.Sprintf("--join=%s:%d", nw.sites[0].PeerIP, gossipPort))
			cfg.AfterDatastore = kube.WaitKey("/registry/namespaces/kube-system")
		}
		sites = append(sites, startKubeSite(t, name, cfg))
	}
	return sites, nw
}

// startEtcdSites starts n control planes as startKubeSites does, all on one
// real etcd (the first site's): the control, one cluster that cannot be cut.
func startEtcdSites(t *testing.T, n int) []*kubeSite {
	t.Helper()
	pki, err := kube.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	var sites []*kubeSite
	for i := range n {
		name := string(rune('a' + i))
		cfg := siteConfig(pki, name)
		cfg.Datastore = kube.Etcd
		if i > 0 {
			cfg.DatastoreEndpoint = sites[0].DatastoreEndpoint
		}
		sites = append(sites, startKubeSite(t, name, cfg))
	}
	return sites
}

// siteConfig is what every site's control plane shares.
func siteConfig(pki *kube.PKI, name string) kube.Config {
	cfg := kube.DefaultConfig()
	cfg.PKI, cfg.Hostname, cfg.RestartDelay = pki, "site-"+name, restartDelay
	return cfg
}

func startKubeSite(t *testing.T, name string, cfg kube.Config) *kubeSite {
	t.Helper()
	c := kube.Start(t, cfg)
	nodes := kube.DefaultNodesConfig()
	nodes.Names = []string{"node-" + name + "1", "node-" + name + "2"}
	kube.StartNodes(t, c.Client, nodes)
	return &kubeSite{Name: name, Cluster: c, Etcd: c.DatastoreClient(t)}
}

// TestKubeAcrossSites is issue 9's end-to-end test: two Rhizome sites in
// network namespaces, each with the unmodified control plane on default flags
// and stand-in kubelets. Connected, one controller-manager leads for both.
// The sites are cut apart; each side then elects its own leader and keeps
// reconciling, and both take kubectl writes that all succeed: a Deployment
// scaled on one side and given a new image on the other, same-named
// ConfigMaps, a namespace deleted on one side while a ConfigMap is created in
// it on the other, Services (ClusterIP and NodePort) asking for the same
// address and port. After the heal the stores become identical, exactly one
// leader remains (the other exits and is restarted, as its supervisor does),
// the Deployment rolls out both changes, every object accepts an update at
// every site, the deleted namespace holds nothing, and no ClusterIP or
// NodePort is held twice.
//
// TestKubeOneEtcd is the control: the same writes from two control planes
// on one real etcd, where no cut is possible.
func TestKubeAcrossSites(t *testing.T) {
	needKube(t)
	sites, nw := startKubeSites(t, 2)
	runScenario(t, sites, scenario{cut: func() { nw.Cut(1) }, heal: func() { nw.Heal(1) }})
}

func TestKubeOneEtcd(t *testing.T) {
	needKube(t)
	runScenario(t, startEtcdSites(t, 2), scenario{})
}

// longCut is how long RHIZOME_MULTISITE_KUBE_CUT asks the cut to last at
// least (the long variant: past the node lifecycle controller's grace period,
// so each side marks the other's nodes and pods not ready); 0 by default.
func longCut(t *testing.T) time.Duration {
	v := os.Getenv("RHIZOME_MULTISITE_KUBE_CUT")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("RHIZOME_MULTISITE_KUBE_CUT: %v", err)
	}
	return d
}

// needKube skips the test under -short (it starts two control planes) and
// without root (network and UTS namespaces).
func needKube(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("multisite: -short: starts two Kubernetes control planes")
	}
	needNetns(t)
}

// scenario is what differs between a run across a cut and the control.
type scenario struct {
	cut, heal func() // nil: one datastore, nothing to cut
}

func (s scenario) partitioned() bool { return s.cut != nil }

func runScenario(t *testing.T, sites []*kubeSite, sc scenario) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	a, b := sites[0], sites[1]
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	step("seeding: namespaces %s and %s, Deployment %s (2 replicas)", kubeNS, doomedNS, deployName)
	mustKubectl(ctx, t, a, "create", "namespace", kubeNS)
	mustKubectl(ctx, t, a, "create", "namespace", doomedNS)
	mustKubectl(ctx, t, a, "create", "configmap", "-n", doomedNS, "before", "--from-literal=k=v")
	mustKubectl(ctx, t, a, "create", "deployment", deployName, "-n", kubeNS, "--image=registry.example/web:1", "--replicas=2")
	waitRollout(ctx, t, sites, 2, "registry.example/web:1")
	leader := waitOneLeader(ctx, t, sites, 90*time.Second)
	step("connected: one controller-manager leader for every site: %s", leader)

	var cutAt time.Time
	if sc.partitioned() {
		sc.cut()
		cutAt = time.Now()
		step("cut: site b cut off; waiting for each side to elect its own leader")
		waitOwnLeaders(ctx, t, sites)
		step("cut: each side has its own leader")
	}
	failed := cutWrites(ctx, t, a, b)
	if sc.partitioned() {
		if failed > 0 {
			t.Errorf("%d kubectl writes failed during the cut; every write must succeed on both sides", failed)
		}
	}
	// Each side's own leader reconciles the change made on its side.
	waitObserved(ctx, t, a)
	waitObserved(ctx, t, b)
	waitGone(ctx, t, a, "namespace", doomedNS)
	step("both sides reconciled their own changes; namespace %s gone at site a", doomedNS)
	if sc.partitioned() {
		if d := longCut(t); d > 0 {
			step("holding the cut until %v have passed (RHIZOME_MULTISITE_KUBE_CUT)", d)
			time.Sleep(time.Until(cutAt.Add(d)))
		}
		sc.heal()
		step("healed")
		took := waitIdentical(ctx, t, sites, 2*time.Minute)
		step("stores identical %.1fs after the heal", took.Seconds())
	} else if failed != controlRejected {
		t.Errorf("control: %d writes failed on one etcd, want the %d that conflict (same name, same address and port, a namespace being deleted)", failed, controlRejected)
	}

	t.Run("OneLeader", func(t *testing.T) {
		if sc.partitioned() {
			// Both sides led during the cut: the one whose Lease lost the
			// merge exits once it cannot renew (renew deadline 10s) and its
			// supervisor starts it again as a follower.
			err := kube.Poll(ctx, 90*time.Second, time.Second, func(context.Context) (bool, string, error) {
				restarted := map[string]int{}
				for _, s := range sites {
					restarted[s.Name] = s.Restarts(kube.ComponentControllerManager)
				}
				return slices.ContainsFunc(slices.Collect(maps.Values(restarted)), func(n int) bool { return n > 0 }),
					fmt.Sprintf("restarts by site %v", restarted), nil
			})
			if err != nil {
				t.Errorf("no controller-manager exited and was restarted after the heal, but both sides led during the cut: %v", err)
			}
		}
		holder := waitOneLeader(ctx, t, sites, 2*time.Minute)
		step("one leader: %s", holder)
		for _, s := range sites {
			if s.Name != holderSite(holder) {
				continue
			}
			// The holder's site runs it: not a leader left behind.
			if err := s.Running(); err != nil {
				t.Errorf("site %s: %v", s.Name, err)
			}
		}
	})
	t.Run("Rollout", func(t *testing.T) {
		waitRollout(ctx, t, sites, 3, "registry.example/web:2")
		step("Deployment rolled out both changes at every site")
	})
	t.Run("DeletedNamespaceEmpty", func(t *testing.T) {
		inDoomed := func(k string) bool {
			return strings.Contains(k, "/"+doomedNS+"/") || strings.HasSuffix(k, "/namespaces/"+doomedNS)
		}
		for _, s := range sites {
			err := kube.Poll(ctx, 30*time.Second, time.Second, func(ctx context.Context) (bool, string, error) {
				keys := registryKeys(ctx, t, s, inDoomed)
				return len(keys) == 0, fmt.Sprintf("still holds %v", keys), nil
			})
			if err != nil {
				t.Errorf("site %s: the deleted namespace is not empty: %v", s.Name, err)
			}
		}
	})
	t.Run("UniqueAllocations", func(t *testing.T) {
		// site/alloc repairs what the two sides allocated alike.
		for _, s := range sites {
			err := kube.Poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, string, error) {
				dups, err := duplicateAllocations(ctx, s)
				return err == nil && len(dups) == 0, fmt.Sprintf("%v %v", dups, err), nil
			})
			if err != nil {
				t.Errorf("site %s: allocations held twice: %v", s.Name, err)
			}
		}
	})
	t.Run("EveryObjectAcceptsUpdate", func(t *testing.T) {
		for _, s := range sites {
			for _, kind := range []string{"deployments", "services", "configmaps", "namespaces"} {
				if _, err := s.Kubectl(ctx, "annotate", kind, "--all", "-A", "--overwrite", "rhizome.test/touched-at="+s.Name); err != nil {
					t.Errorf("site %s: %v", s.Name, err)
				}
			}
		}
		if sc.partitioned() {
			waitIdentical(ctx, t, sites, time.Minute)
		}
	})
}

// cutWrites makes the concurrent writes of both sides and returns how many
// failed (each is logged).
func cutWrites(ctx context.Context, t *testing.T, a, b *kubeSite) int {
	type write struct {
		site *kubeSite
		args []string
	}
	writes := []write{
		{a, []string{"scale", "deployment", deployName, "-n", kubeNS, "--replicas=3"}},
		{b, []string{"set", "image", "deployment/" + deployName, "-n", kubeNS, "web=registry.example/web:2"}},
		{a, []string{"create", "configmap", "same", "-n", kubeNS, "--from-literal=site=a"}},
		{b, []string{"create", "configmap", "same", "-n", kubeNS, "--from-literal=site=b"}},
		{a, []string{"delete", "namespace", doomedNS, "--wait=false"}},
		{b, []string{"create", "configmap", "late", "-n", doomedNS, "--from-literal=k=v"}},
		{a, []string{"create", "service", "clusterip", "ip-a", "-n", kubeNS, "--tcp=80:80", "--clusterip=10.0.0.100"}},
		{b, []string{"create", "service", "clusterip", "ip-b", "-n", kubeNS, "--tcp=80:80", "--clusterip=10.0.0.100"}},
		{a, []string{"create", "service", "nodeport", "np-a", "-n", kubeNS, "--tcp=80:80", "--node-port=30100"}},
		{b, []string{"create", "service", "nodeport", "np-b", "-n", kubeNS, "--tcp=80:80", "--node-port=30100"}},
		{a, []string{"create", "service", "clusterip", "any-a", "-n", kubeNS, "--tcp=80:80"}},
		{b, []string{"create", "service", "nodeport", "any-b", "-n", kubeNS, "--tcp=80:80"}},
	}
	failed := 0
	for _, w := range writes {
		if _, err := w.site.Kubectl(ctx, w.args...); err != nil {
			failed++
			t.Logf("site %s: %v", w.site.Name, err)
		}
	}
	return failed
}

func mustKubectl(ctx context.Context, t *testing.T, s *kubeSite, args ...string) {
	t.Helper()
	if _, err := s.Kubectl(ctx, args...); err != nil {
		t.Fatalf("site %s: %v", s.Name, err)
	}
}

// leaseHolder returns the holder of the controller-manager's Lease as site s
// sees it.
func leaseHolder(ctx context.Context, s *kubeSite) (string, error) {
	l, err := s.Client.CoordinationV1().Leases("kube-system").Get(ctx, kcmLeaseName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// holderSite is the site whose controller-manager a holder identity names
// (identities are "<hostname>_<uuid>", hostnames "site-<name>").
func holderSite(holder string) string {
	host, _, _ := strings.Cut(holder, "_")
	return strings.TrimPrefix(host, "site-")
}

// waitOneLeader waits until every site sees the same holder of the
// controller-manager Lease, held by a running controller-manager, for three
// renewals in a row, and returns it.
func waitOneLeader(ctx context.Context, t *testing.T, sites []*kubeSite, timeout time.Duration) string {
	t.Helper()
	var holder string
	stable := 0
	err := kube.Poll(ctx, timeout, 2*time.Second, func(ctx context.Context) (bool, string, error) {
		seen := map[string]bool{}
		for _, s := range sites {
			h, err := leaseHolder(ctx, s)
			if err != nil {
				stable = 0
				return false, fmt.Sprintf("site %s: %v", s.Name, err), nil
			}
			seen[h] = true
			holder = h
		}
		if len(seen) != 1 || holder == "" || !slices.ContainsFunc(sites, func(s *kubeSite) bool { return s.Name == holderSite(holder) }) {
			stable = 0
			return false, fmt.Sprintf("holders %v", slices.Collect(maps.Keys(seen))), nil
		}
		stable++
		return stable >= 3, "holder " + holder, nil
	})
	if err != nil {
		t.Fatalf("no single controller-manager leader: %v", err)
	}
	return holder
}

// waitOwnLeaders waits until every side of the cut sees a leader of its own.
func waitOwnLeaders(ctx context.Context, t *testing.T, sites []*kubeSite) {
	t.Helper()
	// A lease runs 15s; a follower takes over once it has expired.
	err := kube.Poll(ctx, 90*time.Second, time.Second, func(ctx context.Context) (bool, string, error) {
		var state []string
		ok := true
		for _, s := range sites {
			h, err := leaseHolder(ctx, s)
			ok = ok && err == nil && holderSite(h) == s.Name
			state = append(state, fmt.Sprintf("site %s sees %q (%v)", s.Name, h, err))
		}
		return ok, strings.Join(state, "; "), nil
	})
	if err != nil {
		t.Fatalf("cut: not every side elected its own leader: %v", err)
	}
}

// waitObserved waits until site s's Deployment controller has observed the
// Deployment's latest spec.
func waitObserved(ctx context.Context, t *testing.T, s *kubeSite) {
	t.Helper()
	err := kube.Poll(ctx, time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		d, err := s.Client.AppsV1().Deployments(kubeNS).Get(ctx, deployName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return d.Status.ObservedGeneration == d.Generation, fmt.Sprintf("generation %d, observed %d", d.Generation, d.Status.ObservedGeneration), nil
	})
	if err != nil {
		t.Errorf("site %s: the Deployment's change was not reconciled on its own side: %v", s.Name, err)
	}
}

// waitRollout waits until every site sees the Deployment complete with
// replicas pods of image, its latest generation observed.
func waitRollout(ctx context.Context, t *testing.T, sites []*kubeSite, replicas int32, image string) {
	t.Helper()
	for _, s := range sites {
		err := kube.Poll(ctx, 3*time.Minute, time.Second, func(ctx context.Context) (bool, string, error) {
			d, err := s.Client.AppsV1().Deployments(kubeNS).Get(ctx, deployName, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			return rolledOut(d, replicas, image), rolloutStatus(d), nil
		})
		if err != nil {
			t.Fatalf("site %s: Deployment %s did not roll out %d x %s: %v", s.Name, deployName, replicas, image, err)
		}
	}
}

func rolledOut(d *appsv1.Deployment, replicas int32, image string) bool {
	st := d.Status
	return d.Spec.Replicas != nil && *d.Spec.Replicas == replicas &&
		d.Spec.Template.Spec.Containers[0].Image == image &&
		st.ObservedGeneration == d.Generation &&
		st.Replicas == replicas && st.UpdatedReplicas == replicas &&
		st.ReadyReplicas == replicas && st.AvailableReplicas == replicas
}

func rolloutStatus(d *appsv1.Deployment) string {
	st := d.Status
	return fmt.Sprintf("spec %d x %s, generation %d observed %d, replicas %d updated %d ready %d available %d",
		*d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image, d.Generation, st.ObservedGeneration,
		st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas)
}

// waitGone waits until site s no longer has the object.
func waitGone(ctx context.Context, t *testing.T, s *kubeSite, kind, name string) {
	t.Helper()
	err := kube.Poll(ctx, time.Minute, time.Second, func(ctx context.Context) (bool, string, error) {
		out, err := s.Kubectl(ctx, "get", kind, name, "--ignore-not-found", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "", fmt.Sprintf("%q %v", out, err), nil
	})
	if err != nil {
		t.Errorf("site %s: %s %s not deleted: %v", s.Name, kind, name, err)
	}
}

// registryKeys returns the keys under /registry/ that site s's store holds
// and keep accepts.
func registryKeys(ctx context.Context, t *testing.T, s *kubeSite, keep func(string) bool) []string {
	t.Helper()
	res, err := s.Etcd.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("site %s: %v", s.Name, err)
	}
	var keys []string
	for _, kv := range res.Kvs {
		if keep(string(kv.Key)) {
			keys = append(keys, string(kv.Key))
		}
	}
	return keys
}

// waitIdentical waits until every site's store holds the same keys and
// values under /registry/, read at once (the sites renew leases every few
// seconds, so only a read of all at the same moment can match), and
// returns how long that took.
func waitIdentical(ctx context.Context, t *testing.T, sites []*kubeSite, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := kube.Poll(ctx, timeout, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		diff, err := storeDiff(ctx, sites)
		return err == nil && diff == "", fmt.Sprintf("%s %v", diff, err), nil
	})
	if err != nil {
		t.Fatalf("stores not identical: %v", err)
	}
	return time.Since(start)
}

// storeDiff reads /registry/ at every site at once and describes the first
// difference from the first site, or returns "".
func storeDiff(ctx context.Context, sites []*kubeSite) (string, error) {
	states := make([]map[string]string, len(sites))
	errs := make([]error, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() {
			res, err := s.Etcd.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithSerializable())
			if err != nil {
				errs[i] = err
				return
			}
			states[i] = map[string]string{}
			for _, kv := range res.Kvs {
				states[i][string(kv.Key)] = string(crdtkube.Canonical(kv.Value))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	for i := 1; i < len(sites); i++ {
		for k, v := range states[0] {
			if w, ok := states[i][k]; !ok || w != v {
				return fmt.Sprintf("%s differs between site %s and site %s (present %v)", k, sites[0].Name, sites[i].Name, ok), nil
			}
		}
		for k := range states[i] {
			if _, ok := states[0][k]; !ok {
				return fmt.Sprintf("%s only at site %s", k, sites[i].Name), nil
			}
		}
	}
	return "", nil
}

// duplicateAllocations lists the ClusterIPs and NodePorts that more than one
// Service holds at site s.
func duplicateAllocations(ctx context.Context, s *kubeSite) ([]string, error) {
	svcs, err := s.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	holders := map[string][]string{}
	for _, svc := range svcs.Items {
		name := svc.Namespace + "/" + svc.Name
		for _, ip := range svc.Spec.ClusterIPs {
			if ip != "None" {
				holders["ClusterIP "+ip] = append(holders["ClusterIP "+ip], name)
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				port := fmt.Sprintf("NodePort %d", p.NodePort)
				holders[port] = append(holders[port], name)
			}
		}
	}
	var dups []string
	for what, names := range holders {
		if len(names) > 1 {
			dups = append(dups, fmt.Sprintf("%s held by %v", what, names))
		}
	}
	slices.Sort(dups)
	return dups, nil
}
