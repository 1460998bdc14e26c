package kube_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// Short kube-apiserver timers, so the scenarios that wait for them are quick.
const (
	// eventTTL is the lease length of Events. etcd rounds lease TTLs up to
	// its minimum (about 2s); 5s keeps the scenario short and still far
	// longer than the create-then-read the scenario does first.
	eventTTL = 5 * time.Second
	// compactionInterval is kube-apiserver's compactor period. A compaction
	// removes only revisions older than the previous run, so a paged list
	// (well under a second here) never loses its continue token to it.
	compactionInterval = 10 * time.Second
	// uncachedResource has kube-apiserver's watch cache turned off, so the
	// scenarios on it reach the datastore with every list and watch.
	uncachedResource = "podtemplates"
	// minRunTime is what the whole matrix takes on a loaded 2-core machine
	// (about 4 minutes measured), with a margin.
	minRunTime = 8 * time.Minute
)

// TestKubernetes runs every scenario against each datastore and storage
// encoding, one control plane per combination shared by the scenarios.
//
// Run one combination with, e.g., -run 'TestKubernetes/rhizome-json'. Set
// RHIZOME_KUBE_LOGS to a directory to keep the component logs.
func TestKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Kubernetes control planes (minutes); not in -short")
	}
	bins := testbin.Kube(t)
	etcd, _ := testbin.Etcd(t)
	// A go test -timeout panic kills the control planes without their
	// logs; failing early says what to do instead.
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < minRunTime {
		t.Fatalf("TestKubernetes needs about %v once the binaries are built, %v left: run with -timeout 30m", minRunTime, time.Until(deadline).Round(time.Second))
	}
	rhizome := kube.BuildRhizome(t, t.TempDir())

	for _, tc := range []struct {
		datastore kube.Datastore
		encoding  kube.Encoding
		tls       bool
	}{
		// Each datastore is run once over TLS with client certificates and
		// once over plain http, so both paths are covered in both encodings.
		{kube.Rhizome, kube.JSON, false},
		{kube.Rhizome, kube.Protobuf, true},
		{kube.Etcd, kube.Protobuf, true},
		{kube.Etcd, kube.JSON, false},
	} {
		name := string(tc.datastore) + "-" + tc.encoding.String()
		t.Run(name, func(t *testing.T) {
			cfg := kube.DefaultConfig()
			cfg.Datastore = tc.datastore
			cfg.Encoding = tc.encoding
			cfg.DatastoreTLS = tc.tls
			cfg.RhizomeBinary = rhizome
			cfg.EtcdBinary = etcd
			cfg.Kube = bins
			cfg.UnsafeNoFsync = true
			cfg.EventTTL = eventTTL
			cfg.CompactionInterval = compactionInterval
			cfg.APIServerArgs = []string{"--watch-cache-sizes=" + uncachedResource + "#0"}
			if dir := os.Getenv("RHIZOME_KUBE_LOGS"); dir != "" {
				cfg.LogDir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
			}
			c := kube.Start(t, cfg)
			for _, sc := range scenarios() {
				t.Run(sc.name, func(t *testing.T) {
					if err := c.Running(); err != nil {
						t.Fatal(err)
					}
					sc.run(t, c)
				})
			}
		})
	}
}

// scenario is one part of the end-to-end test, run on every control plane.
type scenario struct {
	name string
	run  func(*testing.T, *kube.Cluster)
}

// scenarios run in this order on each control plane; the storage health
// check comes last so it covers everything the others did.
func scenarios() []scenario {
	return []scenario{
		{"core", testCore},
		{"deployment", testDeployment},
		{"crd", testCRD},
		{"events", testEvents},
		{"compaction", testCompaction},
		{"noop-update", testNoOpUpdate},
		{"health", testHealth},
	}
}
