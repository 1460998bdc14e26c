package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// Launch starts a control plane as Start does, for a command rather than a
// test (`rhizome bench kube`): cfg names every binary, dir receives the
// certificates, kubeconfigs and (unless cfg.LogDir is set) the logs, and
// the caller stops everything with Close. On error nothing is left running.
func Launch(cfg Config, dir string) (*Cluster, error) {
	if cfg.Kube.APIServer == "" || (cfg.Datastore == Etcd && cfg.EtcdBinary == "" && cfg.DatastoreEndpoint == "") {
		return nil, errors.New("kube: Launch needs Config.Kube and, for etcd, Config.EtcdBinary")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newCluster(cfg, dir)
	if err != nil {
		return nil, err
	}
	if err := c.launch(); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// newCluster prepares c's directories; nothing runs yet.
func newCluster(cfg Config, dir string) (*Cluster, error) {
	c := &Cluster{Config: cfg, Dir: dir, LogDir: cfg.LogDir, kubectl: cfg.Kube.Kubectl,
		processes: map[string]*testbin.Process{}, restarts: map[string]int{}, closed: make(chan struct{})}
	if c.LogDir == "" {
		c.LogDir = filepath.Join(dir, "logs")
	}
	for _, d := range []string{dir, c.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	return c, nil
}

// launch starts the components in order, each once the one before is ready.
func (c *Cluster) launch() error {
	pki, err := c.writePKI()
	if err != nil {
		return err
	}
	if c.Config.DatastoreEndpoint != "" {
		c.DatastoreEndpoint = c.Config.DatastoreEndpoint
	} else if err := c.startDatastore(pki); err != nil {
		return err
	}
	if err := c.afterDatastore(); err != nil {
		return err
	}
	if err := c.startAPIServer(pki); err != nil {
		return err
	}
	for _, name := range []string{ComponentControllerManager, ComponentScheduler} {
		on := c.Config.ControllerManager
		if name == ComponentScheduler {
			on = c.Config.Scheduler
		}
		if !on {
			continue
		}
		if err := c.startController(pki, name); err != nil {
			return err
		}
		if c.Config.RestartDelay > 0 {
			c.wg.Go(func() { c.supervise(pki, name) })
		}
	}
	return nil
}

// afterDatastore runs Config.AfterDatastore, bounded by StartTimeout.
func (c *Cluster) afterDatastore() error {
	if c.Config.AfterDatastore == nil {
		return nil
	}
	cli, err := c.newEtcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.Config.StartTimeout)
	defer cancel()
	if err := c.Config.AfterDatastore(ctx, cli); err != nil {
		return fmt.Errorf("kube: after the datastore started: %w", err)
	}
	return nil
}

// supervise restarts the controller component name RestartDelay after each
// exit until Close, as systemd's Restart=always does.
func (c *Cluster) supervise(pki *pkiFiles, name string) {
	for {
		select {
		case <-c.proc(name).Done():
		case <-c.closed:
			return
		}
		select {
		case <-time.After(c.Config.RestartDelay):
		case <-c.closed:
			return
		}
		c.mu.Lock()
		c.restarts[name]++
		c.mu.Unlock()
		// A failed start is in the log; the next round tries again, as
		// systemd does.
		_ = c.startController(pki, name)
	}
}

// Restarts returns how often RestartDelay has restarted a component.
func (c *Cluster) Restarts(component string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts[component]
}

// Close stops the supervisors, then the components, the last started
// first. It may be called more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	c.wg.Wait()
	var errs []error
	for _, name := range []string{ComponentScheduler, ComponentControllerManager, ComponentAPIServer, ComponentDatastore} {
		if p := c.proc(name); p != nil {
			errs = append(errs, p.Stop())
		}
	}
	return errors.Join(errs...)
}

// StopComponent stops one component (SIGTERM, then SIGKILL after a grace
// period); with RestartDelay a controller comes back as after an exit.
func (c *Cluster) StopComponent(component string) error {
	if p := c.proc(component); p != nil {
		return p.Stop()
	}
	return nil
}

func (c *Cluster) proc(name string) *testbin.Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.processes[name]
}

func (c *Cluster) setProc(name string, p *testbin.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.processes[name] = p
}

// stopGrace is how long a component gets to exit after SIGTERM before it is
// killed: kube-apiserver drains requests for a few seconds on shutdown.
const stopGrace = 15 * time.Second

// startProcess starts a component, its output appended to its log file,
// inside the configured namespace and hostname.
func (c *Cluster) startProcess(name, bin string, args []string) (*testbin.Process, error) {
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.LogPath, cfg.StopGrace = name, c.LogPath(name), stopGrace
	cfg.ReadyInterval = 250 * time.Millisecond
	cfg.Path, cfg.Args = c.command(bin, args)
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	return p, nil
}

// freePort returns a loopback port that was free a moment ago (see
// testbin.FreePort); callers retry on fresh ports when it was taken.
func freePort() (int, error) {
	addr, err := testbin.FreePort()
	if err != nil {
		return 0, fmt.Errorf("kube: %w", err)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("kube: free port %s: %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0, fmt.Errorf("kube: free port %s: %w", addr, err)
	}
	return n, nil
}

// command returns how to run bin with args inside Config.Namespace and
// with Config.Hostname. Both wrappers exec in place, so the process id is
// bin's and the parent-death signal reaches it.
func (c *Cluster) command(bin string, args []string) (string, []string) {
	if h := c.Config.Hostname; h != "" {
		args = append([]string{"-u", "--", "sh", "-c", `hostname "$0" && exec "$@"`, h, bin}, args...)
		bin = "unshare"
	}
	if ns := c.Config.Namespace; ns != nil {
		bin, args = ns.Command(bin, args...)
	}
	return bin, args
}

// Dial connects to a component's address (127.0.0.1:port), inside
// Config.Namespace if set: what an HTTP or gRPC client of the harness's
// components uses as its dialer.
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if ns := c.Config.Namespace; ns != nil {
		return ns.DialTCP(addr)(ctx)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// NewDatastoreClient returns an etcd v3 client for the datastore; the
// caller closes it.
func (c *Cluster) NewDatastoreClient() (*clientv3.Client, error) { return c.newEtcdClient() }
