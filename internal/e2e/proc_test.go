package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startTimeout bounds how long a server may take to answer its first request.
const startTimeout = 30 * time.Second

// proc is a server running as a subprocess.
type proc struct {
	name string
	ep   string // host:port of its client listener
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr, shown when the test fails
	done chan struct{}
	err  error // from Wait; valid once done is closed
}

// startRhizome runs `rhizome serve` on dataDir with clients on a free
// loopback port, waits until it answers, and stops it when the test ends.
// extra flags come last, so they may override the defaults (--name).
func startRhizome(t *testing.T, bin, dataDir string, extra ...string) *proc {
	t.Helper()
	return startServer(t, "rhizome", func() (string, []string) {
		client := "http://" + freeAddr(t)
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
		client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)
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
// client URL answers. A free port can be taken by someone else between
// freeAddr and the server's listen, so a server that exits before answering is
// retried on new ports a few times.
func startServer(t *testing.T, name string, argv func() (clientURL string, argv []string)) *proc {
	t.Helper()
	var lastErr error
	for range 3 {
		client, args := argv()
		p := &proc{name: name, ep: strings.TrimPrefix(client, "http://"), out: &syncBuffer{}, done: make(chan struct{})}
		p.cmd = exec.Command(args[0], args[1:]...)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		p.cmd.SysProcAttr = childAttrs()
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("e2e: start %s: %v", name, err)
		}
		go func() {
			p.err = p.cmd.Wait()
			close(p.done)
		}()
		if lastErr = p.waitReady(); lastErr == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("%s output:\n%s", p.name, p.out.String())
				}
			})
			return p
		}
		p.kill()
		t.Logf("e2e: %s did not start (%v); output:\n%s", name, lastErr, p.out.String())
	}
	t.Fatalf("e2e: %s did not start: %v", name, lastErr)
	return nil
}

// waitReady polls the server with a Status call until it answers, it exits,
// or startTimeout passes.
func (p *proc) waitReady() error {
	cli, err := newClient(p.ep)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Status(ctx, p.ep)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %v: %w", startTimeout, err)
		}
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to shut down (SIGTERM) and kills it if it takes long.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// newClient returns a clientv3 client for one endpoint; it dials lazily.
func newClient(ep string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{ep},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", ep, err)
	}
	return cli, nil
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("e2e: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
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
