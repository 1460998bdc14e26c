package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/netdelay"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// Datastore names what kube-apiserver stores its objects in.
type Datastore string

// The datastores a cluster can run on.
const (
	Rhizome Datastore = "rhizome" // a `rhizome serve` process
	Etcd    Datastore = "etcd"    // a real single-member etcd process
)

// Encoding is kube-apiserver's --storage-media-type for built-in types.
// Custom resources are stored as JSON whatever it is.
type Encoding string

// The storage encodings kube-apiserver offers.
const (
	Protobuf Encoding = "application/vnd.kubernetes.protobuf" // kube-apiserver's default
	JSON     Encoding = "application/json"
)

// String gives the short name used in test and log names.
func (e Encoding) String() string {
	switch e {
	case Protobuf:
		return "protobuf"
	case JSON:
		return "json"
	}
	return string(e)
}

// Config describes one cluster: a datastore, kube-apiserver,
// kube-controller-manager and kube-scheduler on loopback.
type Config struct {
	Datastore Datastore
	Encoding  Encoding

	// RhizomeBinary is a built `rhizome` (see BuildRhizome); required when
	// Datastore is Rhizome. The test builds it once and shares it.
	RhizomeBinary string
	// EtcdBinary and Kube default to the pinned builds of internal/testbin.
	EtcdBinary string
	Kube       testbin.KubeBinaries

	// DatastoreTLS serves the datastore over TLS with client-certificate
	// authentication (--client-cert-auth), as production clusters do;
	// otherwise kube-apiserver talks plain http to it.
	DatastoreTLS bool
	// UnsafeNoFsync passes --unsafe-no-fsync to the datastore: for tests of
	// behaviour, never for benchmarks of durability.
	UnsafeNoFsync bool

	// EventTTL is kube-apiserver's --event-ttl: Events are written with an
	// etcd lease of this length.
	EventTTL time.Duration
	// CompactionInterval is kube-apiserver's --etcd-compaction-interval;
	// 0 turns its compactor off.
	CompactionInterval time.Duration

	// ControllerManager and Scheduler start those components; a storage-only
	// benchmark can leave them out.
	ControllerManager bool
	Scheduler         bool

	// APIServerArgs are appended to kube-apiserver's flags (later flags win).
	APIServerArgs []string

	// PKI is the cluster's authorities and service account key; nil
	// generates them. The sites of one multi-site cluster share one.
	PKI *PKI

	// Namespace, when set, runs every component inside this network
	// namespace (ip netns exec); the harness's own clients, health checks
	// and kubectl reach them through it. Every component listens on
	// 127.0.0.1 inside it.
	Namespace *netdelay.Namespace
	// Hostname, when set, runs every component in a UTS namespace of its
	// own with this hostname (unshare -u). kube-apiserver names its identity
	// Lease and the controllers their leader-election identity after the
	// hostname, so the sites of one cluster on one machine need different
	// ones, as they would have on different machines.
	Hostname string

	// DatastoreEndpoint, when set, is a datastore already running (another
	// site's etcd, say) that kube-apiserver uses instead of starting one;
	// DatastoreTLS must be off.
	DatastoreEndpoint string
	// DatastoreArgs are appended to the datastore's flags (later flags win):
	// a Rhizome site's --name, peer and gossip flags.
	DatastoreArgs []string
	// AfterDatastore, when set, is called once the datastore answers and
	// before kube-apiserver starts, e.g. to wait until a joining site has
	// received the cluster's state from the others.
	AfterDatastore func(context.Context, *clientv3.Client) error

	// RestartDelay, when positive, restarts kube-controller-manager and
	// kube-scheduler this long after they exit, as systemd's Restart=always
	// with RestartSec does (deploy/systemd): both exit on purpose when they
	// lose their leader-election lease. Zero leaves an exited one down.
	RestartDelay time.Duration

	// LogDir receives one log file per component; default: a directory
	// removed when the test ends (its tails are logged if the test failed).
	LogDir string
	// StartTimeout bounds the start of each component.
	StartTimeout time.Duration
}

// DefaultConfig is a full control plane on Rhizome in kube-apiserver's
// default encoding, with kube-apiserver's default TTL and compaction.
func DefaultConfig() Config {
	return Config{
		Datastore:          Rhizome,
		Encoding:           Protobuf,
		EventTTL:           time.Hour,
		CompactionInterval: 5 * time.Minute,
		ControllerManager:  true,
		Scheduler:          true,
		StartTimeout:       2 * time.Minute,
	}
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch c.Datastore {
	case Rhizome:
		if c.RhizomeBinary == "" && c.DatastoreEndpoint == "" {
			return errors.New("kube: RhizomeBinary is required for the rhizome datastore (see BuildRhizome)")
		}
	case Etcd:
	default:
		return fmt.Errorf("kube: unknown datastore %q", c.Datastore)
	}
	if c.DatastoreEndpoint != "" && (c.DatastoreTLS || len(c.DatastoreArgs) > 0) {
		return errors.New("kube: DatastoreEndpoint names a running datastore: DatastoreTLS and DatastoreArgs do not apply")
	}
	if c.RestartDelay < 0 {
		return fmt.Errorf("kube: negative RestartDelay %v", c.RestartDelay)
	}
	switch c.Encoding {
	case Protobuf, JSON:
	default:
		return fmt.Errorf("kube: unknown encoding %q", c.Encoding)
	}
	// kube-apiserver takes whole seconds for the event lease.
	if c.EventTTL < time.Second {
		return fmt.Errorf("kube: EventTTL %v is shorter than 1s", c.EventTTL)
	}
	if c.CompactionInterval < 0 {
		return fmt.Errorf("kube: negative CompactionInterval %v", c.CompactionInterval)
	}
	if c.Scheduler && !c.ControllerManager {
		// Without the node lifecycle controller new Nodes keep their
		// not-ready taint and nothing is ever scheduled.
		return errors.New("kube: Scheduler needs ControllerManager")
	}
	if c.StartTimeout <= 0 {
		return fmt.Errorf("kube: StartTimeout %v is not positive", c.StartTimeout)
	}
	return nil
}
