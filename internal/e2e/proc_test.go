package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// startTimeout bounds how long a server may take to answer its first request.
const startTimeout = 30 * time.Second

// proc is a server running as a subprocess (testbin's process starter).
type proc struct {
	name string
	ep   string      // host:port of its client listener
	tls  *tls.Config // how a client reaches it; nil for plain gRPC
	*testbin.Process
}

// startRhizome runs `rhizome serve` on dataDir with clients on a free
// loopback port, waits until it answers, and stops it when the test ends.
// extra flags come last, so they may override the defaults (--name).
func startRhizome(t *testing.T, bin, dataDir string, extra ...string) *proc {
	t.Helper()
	return startRhizomeEnv(t, bin, dataDir, nil, extra...)
}

// startRhizomeEnv is startRhizome with env added to the test's environment
// (RHIZOME_FAILPOINTS=...).
func startRhizomeEnv(t *testing.T, bin, dataDir string, env []string, extra ...string) *proc {
	t.Helper()
	return startServerOpts(t, "rhizome", serverOpts{env: env}, func() (string, []string) {
		client := "http://" + testbin.Addr(t)
		return client, append([]string{bin, "serve",
			"--name", "e2e",
			"--data-dir", dataDir,
			"--listen-client-urls", client,
			"--advertise-client-urls", client,
		}, extra...)
	})
}

// startEtcd runs a single-member etcd on free loopback ports with a fresh
// data directory, named like the Rhizome site so member lists compare.
func startEtcd(t *testing.T, bin string, extra ...string) *proc {
	t.Helper()
	dataDir := t.TempDir()
	return startServer(t, "etcd", func() (string, []string) {
		client, peer := "http://"+testbin.Addr(t), "http://"+testbin.Addr(t)
		return client, append([]string{bin,
			"--name", "e2e",
			"--data-dir", dataDir,
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", "e2e=" + peer,
			"--log-level", "warn",
		}, extra...)
	})
}

// startServer starts the command that argv returns and waits until its
// client URL answers a Status call. A free port can be taken by someone else
// between freeAddr and the server's listen, so a server that exits before
// answering is retried on new ports a few times. Its output goes to a log
// file in a temporary directory, shown when the test fails.
func startServer(t *testing.T, name string, argv func() (clientURL string, argv []string)) *proc {
	t.Helper()
	return startServerTLS(t, name, nil, argv)
}

// startServerTLS is startServer for a server whose clients connect with
// tlsCfg.
func startServerTLS(t *testing.T, name string, tlsCfg *tls.Config, argv func() (clientURL string, argv []string)) *proc {
	t.Helper()
	return startServerOpts(t, name, serverOpts{tls: tlsCfg}, argv)
}

// serverOpts are the less common ways to start a server.
type serverOpts struct {
	tls *tls.Config // how clients connect; nil for plain gRPC
	env []string    // added to the test process's environment
}

// startServerOpts is startServer with opts.
func startServerOpts(t *testing.T, name string, opts serverOpts, argv func() (clientURL string, argv []string)) *proc {
	t.Helper()
	tlsCfg := opts.tls
	logDir := t.TempDir()
	var lastErr error
	for attempt := range 3 {
		client, args := argv()
		cfg := testbin.DefaultProcessConfig()
		cfg.Name, cfg.Path, cfg.Args = name, args[0], args[1:]
		cfg.LogPath = filepath.Join(logDir, fmt.Sprintf("%s-%d.log", name, attempt))
		cfg.ReadyInterval = 20 * time.Millisecond
		if opts.env != nil {
			cfg.Env = append(os.Environ(), opts.env...)
		}
		tp, err := testbin.StartProcess(cfg)
		if err != nil {
			t.Fatalf("e2e: %v", err)
		}
		p := &proc{name: name, ep: strings.TrimPrefix(strings.TrimPrefix(client, "http://"), "https://"), tls: tlsCfg, Process: tp}
		if lastErr = tp.WaitReady(context.Background(), startTimeout, p.answers); lastErr == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					log, _ := p.Log()
					t.Logf("%s output:\n%s", p.name, log)
				}
			})
			return p
		}
		p.kill()
		t.Logf("e2e: %s did not start: %v", name, lastErr)
	}
	t.Fatalf("e2e: %s did not start: %v", name, lastErr)
	return nil
}

// answers is a readiness check: the server answers a Status call.
func (p *proc) answers(ctx context.Context) error {
	cli, err := newTLSClient(p.ep, p.tls)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = cli.Status(ctx, p.ep)
	return err
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() { p.Kill() }

// stop asks the process to shut down (SIGTERM) and kills it if it takes long.
func (p *proc) stop() { _ = p.Stop() }

// newClient returns a clientv3 client for one endpoint; it dials lazily.
func newClient(ep string) (*clientv3.Client, error) { return newTLSClient(ep, nil) }

// newTLSClient is newClient over TLS when tlsCfg is not nil.
func newTLSClient(ep string, tlsCfg *tls.Config) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{ep},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsCfg,
	})
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", ep, err)
	}
	return cli, nil
}

// syncBuffer is a bytes.Buffer that a subprocess writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until cond holds for the buffer's contents or timeout passes.
func (b *syncBuffer) waitFor(timeout time.Duration, cond func(string) bool) error {
	deadline := time.Now().Add(timeout)
	for !cond(b.String()) {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
