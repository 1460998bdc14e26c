package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rhizome-kv/rhizome/crdt"
	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// Config configures a Store.
type Config struct {
	// Dir holds the badger files. Ignored when InMemory.
	Dir string
	// InMemory keeps everything in memory (tests only: nothing survives Close).
	InMemory bool
	// Site names this site; it is the origin of the changes written here.
	Site string
	// SyncWrites fsyncs every commit before acknowledging it. Turning it off
	// trades durability of the last acknowledged writes for latency.
	SyncWrites bool
	// MinLeaseTTL is the shortest lease granted, in seconds; shorter requests are
	// raised to it, as etcd does (2 s with etcd's default election timeout).
	MinLeaseTTL int64
	// LeaseTakeover is how long another site's leases outlive the site: once
	// membership has declared it dead this long, this site expires them.
	LeaseTakeover time.Duration
	// LeaseCheckInterval is how often expired leases are looked for.
	LeaseCheckInterval time.Duration
	// DocCacheBytes bounds the memory the documents of recently written keys
	// hold between writes, in bytes: their Go heap and the C-side memory of the
	// automerge documents they have loaded (see docCache). A write to a key not
	// cached decodes its document from badger. It also bounds the automerge
	// memory let go before Go's garbage collector is asked to free it.
	DocCacheBytes int64
	// RecordCacheBytes bounds the states of recent revisions kept in memory,
	// in bytes (recordcache.go): those just written and those reads found in
	// badger, which the reads that follow then take from memory. 0 keeps
	// none.
	RecordCacheBytes int64
	// RebaseEdits is how many field edits a document's history may hold before the
	// store restarts it from the current value (crdt.Doc.Rebase), so steadily
	// updated objects stay small. 0 never rebases.
	RebaseEdits int
	// Replicated says other sites share this store's data: the change log and old
	// document histories are kept until the sync layer's horizon (SetHorizon) says
	// every site holds them. A store alone collects them at once.
	Replicated bool
	// GCInterval is how often the change log is collected.
	GCInterval time.Duration
	// MemoryBudget bounds the memory badger uses, in bytes (see badger.go):
	// two memtables of a sixteenth each (each also maps a write-ahead log of its
	// size) and an index cache of a sixteenth; flushes and compactions build
	// tables in buffers badger pools, about half the budget more. The
	// default, 64 MiB, fits a 2 GB edge node beside kube-apiserver; on a server,
	// 256 MiB buys fewer flushes (faster writes under many clients); on a 1 GB box,
	// 32 MiB. It does not bound the key index (about 150 bytes a key and
	// revision kept), the document cache (DocCacheBytes), the record cache
	// (RecordCacheBytes) or the watch window (watch.Config). A memtable also
	// bounds one badger transaction (15% of it), so a smaller budget makes
	// large commits take the slower crash-consistent path in parts
	// (commit.go).
	MemoryBudget int64
	// QuotaBackendBytes is the space quota (etcd's --quota-backend-bytes): 0 means
	// DefaultQuotaBytes (2 GiB, as etcd), negative means none. See quota.go for
	// what the size counts.
	QuotaBackendBytes int64
	// SizeCheckInterval is how often the store's size is measured on disk.
	SizeCheckInterval time.Duration
	// KubePrefix is where kube-apiserver keeps its objects (its --etcd-prefix,
	// with a trailing slash): the store keeps Kubernetes' namespace rule across
	// sites for keys under it (namespace.go). Empty: no Kubernetes rules.
	KubePrefix string
	// MaxConflicts bounds the conflict records kept (Store.Conflicts): the latest
	// this many, of all keys; older ones are dropped as new ones are recorded.
	MaxConflicts int
	// MaxBatch bounds how many requests share one commit.
	MaxBatch int
	// Failpoint, when set, is called at the named points of the commit path
	// (Failpoint* constants); an error it returns fails the commit there, as a
	// crash would, and stops the store. Tests only: nil in production.
	Failpoint func(name string) error
	// Validator checks the value every merge of a key's document yields (for
	// Kubernetes objects, the API's own validation): a merge it rejects shows one
	// side's whole value and records a conflict (crdt.Validator). nil validates
	// nothing. The store gives this one validator to every document it creates or
	// decodes (Store.openDoc), before any change is applied to it; every site of a
	// cluster must run the same one, or their values may differ.
	Validator crdt.Validator
	// CustomResources holds the merge units of custom resources; the store feeds
	// it the CRDs it holds under KubePrefix (crd.go). Give it to share it with a
	// Validator (its Validate checks custom resources); nil: the store makes
	// its own.
	CustomResources *kube.CustomResources
	// Now reads the clock: lease expiry, the time a conflict is recorded, and
	// the time a data directory's incarnation is made (incarnation.go).
	// Injected so tests control time.
	Now func() time.Time
	// Rand is where a new data directory's incarnation draws its random bits
	// (crypto/rand's Reader by default).
	Rand io.Reader
	// Logger receives the store's logs.
	Logger *slog.Logger
	// Registerer receives the store's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// DefaultDocCacheBytes is the document cache's default budget
// (Config.DocCacheBytes): room for the hot keys of a cluster (leases, leader
// election, a controller's working set), each a few tens of KB once its
// automerge history is loaded. A site's Go heap is about twice what it keeps
// live, so each MiB here costs about two of resident memory.
const DefaultDocCacheBytes = 8 << 20

// DefaultRecordCacheBytes is the record cache's default budget
// (Config.RecordCacheBytes): about 7,000 states of a few hundred bytes, or
// 700 pods.
const DefaultRecordCacheBytes = 2 << 20

// DefaultMaxConflicts is how many conflict records a store keeps by default.
const DefaultMaxConflicts = 10000

// Memory budget bounds (Config.MemoryBudget).
const (
	DefaultMemoryBudget = 64 << 20
	MinMemoryBudget     = 8 << 20
)

// DefaultConfig returns the configuration a site runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Dir:                "default.rhizome",
		Site:               "default",
		SyncWrites:         true,
		MinLeaseTTL:        2,
		LeaseCheckInterval: 500 * time.Millisecond,
		GCInterval:         time.Second,
		SizeCheckInterval:  time.Second,
		LeaseTakeover:      time.Minute,
		DocCacheBytes:      DefaultDocCacheBytes,
		RecordCacheBytes:   DefaultRecordCacheBytes,
		RebaseEdits:        64,
		MaxBatch:           1000,
		MaxConflicts:       DefaultMaxConflicts,
		KubePrefix:         "/registry/",
		MemoryBudget:       DefaultMemoryBudget,
		Now:                time.Now,
		Rand:               rand.Reader,
		Logger:             slog.Default(),
	}
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	switch {
	case c.Dir == "" && !c.InMemory:
		return errors.New("store: config: Dir is empty")
	case c.Site == "":
		return errors.New("store: config: Site is empty")
	case strings.Contains(c.Site, originSep):
		return fmt.Errorf("store: config: Site %q contains %q (it separates a site from its incarnation)", c.Site, originSep)
	case c.MinLeaseTTL < 1:
		return fmt.Errorf("store: config: MinLeaseTTL %d < 1", c.MinLeaseTTL)
	case c.LeaseCheckInterval <= 0 || c.GCInterval <= 0 || c.SizeCheckInterval <= 0:
		return errors.New("store: config: LeaseCheckInterval, GCInterval and SizeCheckInterval must be positive")
	case c.DocCacheBytes < 0 || c.RecordCacheBytes < 0 || c.MaxBatch < 1 || c.RebaseEdits < 0:
		return errors.New("store: config: DocCacheBytes, RecordCacheBytes and RebaseEdits must be >= 0 and MaxBatch >= 1")
	case c.KubePrefix != "" && !strings.HasSuffix(c.KubePrefix, "/"):
		return fmt.Errorf("store: config: KubePrefix %q must end in /", c.KubePrefix)
	case c.MaxConflicts < 1:
		return fmt.Errorf("store: config: MaxConflicts %d < 1", c.MaxConflicts)
	case c.MemoryBudget < MinMemoryBudget:
		return fmt.Errorf("store: config: MemoryBudget %d is below %d bytes", c.MemoryBudget, MinMemoryBudget)
	case c.Now == nil || c.Logger == nil || c.Rand == nil:
		return errors.New("store: config: Now, Rand and Logger are required")
	}
	return nil
}
