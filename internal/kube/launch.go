package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Launch starts a control plane as Start does, for a command rather than a
// test (`rhizome bench kube`): cfg names every binary, dir receives the
// certificates, kubeconfigs and (unless cfg.LogDir is set) the logs, and
// the caller stops everything with Close. On error nothing is left running.
func Launch(cfg Config, dir string) (*Cluster, error) {
	if cfg.Kube.APIServer == "" || (cfg.Datastore == Etcd && cfg.EtcdBinary == "") {
		return nil, errors.New("kube: Launch needs Config.Kube and, for etcd, Config.EtcdBinary")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{Config: cfg, Dir: dir, LogDir: cfg.LogDir, kubectl: cfg.Kube.Kubectl, processes: map[string]*process{}}
	if c.LogDir == "" {
		c.LogDir = filepath.Join(dir, "logs")
	}
	for _, d := range []string{dir, c.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
	}
	if err := c.launch(); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// launch starts the components in order, each once the one before is ready.
func (c *Cluster) launch() error {
	pki, err := c.writePKI()
	if err != nil {
		return err
	}
	if err := c.startDatastore(pki); err != nil {
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
	}
	return nil
}

// Close stops the components of a Launched cluster, the last started first.
func (c *Cluster) Close() error {
	var errs []error
	for _, name := range []string{ComponentScheduler, ComponentControllerManager, ComponentAPIServer, ComponentDatastore} {
		if p := c.processes[name]; p != nil {
			errs = append(errs, p.Stop())
		}
	}
	return errors.Join(errs...)
}

// NewDatastoreClient returns an etcd v3 client for the datastore; the
// caller closes it.
func (c *Cluster) NewDatastoreClient() (*clientv3.Client, error) { return c.newEtcdClient() }
