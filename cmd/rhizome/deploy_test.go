package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/site"
)

// TestDeployConfigFile: the example config file of deploy/systemd is accepted
// by serve as it stands.
func TestDeployConfigFile(t *testing.T) {
	cfg := site.DefaultConfig()
	f := newServeFlags(&cfg)
	path := filepath.Join(moduleRoot, "deploy", "systemd", "rhizome.yaml")
	if err := f.fs.Parse([]string{"--config-file", path}); err != nil {
		t.Fatal(err)
	}
	noEnv := configSource{lookupEnv: func(string) (string, bool) { return "", false }, readFile: os.ReadFile}
	if err := noEnv.fill(f.fs, "config-file", "help-md"); err != nil {
		t.Fatal(err)
	}
	if err := f.apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/rhizome" || len(cfg.Join) != 1 || len(cfg.ListenPeerURLs) != 1 {
		t.Errorf("the file was not read as written: data dir %q, join %v, peer URLs %v", cfg.DataDir, cfg.Join, cfg.ListenPeerURLs)
	}
}

// TestGrafanaDashboard: the dashboard is valid JSON and every panel queries
// the selected sites.
func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(moduleRoot, "deploy", "grafana", "rhizome-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type, Title string
			Targets     []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	panels := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		panels++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: query %q ignores the site selector", p.Title, q.Expr)
			}
		}
	}
	if panels < 10 {
		t.Errorf("%d panels", panels)
	}
}
