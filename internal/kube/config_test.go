package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.RhizomeBinary = "/bin/rhizome"
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string // "" for valid
	}{
		{"default with a binary", func(*Config) {}, ""},
		{"etcd needs no rhizome", func(c *Config) { c.Datastore, c.RhizomeBinary = Etcd, "" }, ""},
		{"json", func(c *Config) { c.Encoding = JSON }, ""},
		{"no compaction", func(c *Config) { c.CompactionInterval = 0 }, ""},
		{"storage only", func(c *Config) { c.ControllerManager, c.Scheduler = false, false }, ""},
		{"rhizome without binary", func(c *Config) { c.RhizomeBinary = "" }, "RhizomeBinary"},
		{"unknown datastore", func(c *Config) { c.Datastore = "zookeeper" }, "unknown datastore"},
		{"unknown encoding", func(c *Config) { c.Encoding = "application/yaml" }, "unknown encoding"},
		{"sub-second event TTL", func(c *Config) { c.EventTTL = 500 * time.Millisecond }, "EventTTL"},
		{"negative compaction", func(c *Config) { c.CompactionInterval = -time.Second }, "CompactionInterval"},
		{"scheduler alone", func(c *Config) { c.ControllerManager = false }, "Scheduler needs ControllerManager"},
		{"no start timeout", func(c *Config) { c.StartTimeout = 0 }, "StartTimeout"},
		{"another site's datastore", func(c *Config) { c.DatastoreEndpoint, c.RhizomeBinary = "http://127.0.0.1:2379", "" }, ""},
		{"running datastore over TLS", func(c *Config) { c.DatastoreEndpoint, c.DatastoreTLS = "http://127.0.0.1:2379", true }, "DatastoreEndpoint"},
		{"running datastore with flags", func(c *Config) {
			c.DatastoreEndpoint, c.DatastoreArgs = "http://127.0.0.1:2379", []string{"--name=a"}
		}, "DatastoreEndpoint"},
		{"supervised", func(c *Config) { c.RestartDelay = 2 * time.Second }, ""},
		{"negative restart delay", func(c *Config) { c.RestartDelay = -time.Second }, "RestartDelay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestNodesConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*NodesConfig)
		valid bool
	}{
		{"default", func(*NodesConfig) {}, true},
		{"no names", func(c *NodesConfig) { c.Names = nil }, false},
		{"bad cpu", func(c *NodesConfig) { c.CPU = "lots" }, false},
		{"no pods", func(c *NodesConfig) { c.Pods = 0 }, false},
		{"short lease", func(c *NodesConfig) { c.LeaseDuration = time.Second }, false},
		{"jobs complete", func(c *NodesConfig) { c.CompleteAfter = time.Second }, true},
		{"negative completion", func(c *NodesConfig) { c.CompleteAfter = -time.Second }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultNodesConfig()
			tc.edit(&cfg)
			if err := cfg.Validate(); (err == nil) != tc.valid {
				t.Errorf("Validate() = %v, want valid: %v", err, tc.valid)
			}
		})
	}
}

func TestPoll(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		cond    func(calls int) (bool, string, error)
		wantErr string // "" for success
		wantMin int    // calls at least
	}{
		{"done at once", func(int) (bool, string, error) { return true, "", nil }, "", 1},
		{"done on the third call", func(n int) (bool, string, error) { return n == 3, "not yet", nil }, "", 3},
		{"error stops it", func(int) (bool, string, error) { return false, "", boom }, "boom", 1},
		{"timeout keeps the last status", func(n int) (bool, string, error) { return false, "still waiting", nil }, "still waiting", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Poll(context.Background(), 50*time.Millisecond, 5*time.Millisecond, func(context.Context) (bool, string, error) {
				calls++
				return tc.cond(calls)
			})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Poll = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Poll = %v, want an error containing %q", err, tc.wantErr)
			}
			if calls < tc.wantMin {
				t.Errorf("cond called %d times, want at least %d", calls, tc.wantMin)
			}
		})
	}
}
