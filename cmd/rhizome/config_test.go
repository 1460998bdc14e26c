package main

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/site"
)

// fakeSource is a configSource over a map environment and one in-memory file.
func fakeSource(env map[string]string, path, file string) configSource {
	return configSource{
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		readFile: func(p string) ([]byte, error) {
			if p != path {
				return nil, fs.ErrNotExist
			}
			return []byte(file), nil
		},
	}
}

// TestConfigPrecedence: a flag on the command line beats the environment, which
// beats the config file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	const file = `
name: from-file
data-dir: /file/dir
max-request-bytes: 4096
listen-client-urls: [http://127.0.0.1:1, http://127.0.0.1:2]
gossip-lan: true
anti-entropy-interval:
`
	env := map[string]string{
		"RHIZOME_CONFIG_FILE": "/etc/rhizome.yaml",
		"RHIZOME_NAME":        "from-env",
		"RHIZOME_DATA_DIR":    "/env/dir",
	}
	cfg := site.DefaultConfig()
	f := newServeFlags(&cfg)
	if err := f.fs.Parse([]string{"--name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := fakeSource(env, "/etc/rhizome.yaml", file).fill(f.fs, "config-file", "help-md"); err != nil {
		t.Fatal(err)
	}
	def := site.DefaultConfig()
	for _, c := range []struct{ what, got, want string }{
		{"flag beats env and file", cfg.Name, "from-flag"},
		{"env beats file", *f.dataDir, "/env/dir"},
		{"file beats default", *f.listen, "http://127.0.0.1:1,http://127.0.0.1:2"},
		{"file int", f.fs.Lookup("max-request-bytes").Value.String(), "4096"},
		{"file bool", f.fs.Lookup("gossip-lan").Value.String(), "true"},
		{"empty key keeps the default", cfg.AntiEntropyInterval.String(), def.AntiEntropyInterval.String()},
		{"default", cfg.ClusterToken, def.ClusterToken},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}

// TestConfigErrors: every bad source is one line naming the flag, the value and
// where it came from.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{"bad env value", nil, map[string]string{"RHIZOME_MAX_REQUEST_BYTES": "lots"}, "",
			[]string{"--max-request-bytes", `"lots"`, "RHIZOME_MAX_REQUEST_BYTES"}},
		{"bad file value", []string{"--config-file", "/c.yaml"}, nil, "lease-takeover-timeout: soon\n",
			[]string{"--lease-takeover-timeout", `"soon"`, "/c.yaml"}},
		{"unknown key", []string{"--config-file", "/c.yaml"}, nil, "name: a\ndata-dri: /x\n",
			[]string{"/c.yaml", "line 2", `"data-dri"`}},
		{"config-file in the file", []string{"--config-file", "/c.yaml"}, nil, "config-file: /other.yaml\n",
			[]string{`unknown key "config-file"`}},
		{"not a mapping", []string{"--config-file", "/c.yaml"}, nil, "- a\n- b\n",
			[]string{"/c.yaml", "mapping"}},
		{"nested value", []string{"--config-file", "/c.yaml"}, nil, "name: {a: b}\n",
			[]string{"line 1", "name"}},
		{"bad yaml", []string{"--config-file", "/c.yaml"}, nil, "name: [a\n",
			[]string{"--config-file /c.yaml", "yaml"}},
		{"missing file", []string{"--config-file", "/missing.yaml"}, nil, "",
			[]string{"--config-file", "/missing.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := site.DefaultConfig()
			f := newServeFlags(&cfg)
			if err := f.fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			err := fakeSource(c.env, "/c.yaml", c.file).fill(f.fs, "config-file", "help-md")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not name %s", msg, w)
				}
			}
		})
	}
}

// TestServeValueErrors: values wrong on their own are refused by apply, naming
// the flag and the value, and never printing the gossip key.
func TestServeValueErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--max-request-bytes", "-5"}, "--max-request-bytes -5"},
		{[]string{"--name", ""}, "--name"},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--anti-entropy-interval", "0s"}, "--anti-entropy-interval 0s"},
		{[]string{"--lease-takeover-timeout", "-1s"}, "--lease-takeover-timeout -1s"},
		{[]string{"--watch-progress-notify-interval", "-1m"}, "--watch-progress-notify-interval -1m0s"},
		{[]string{"--listen-client-urls", "127.0.0.1:2379"}, `--listen-client-urls "127.0.0.1:2379"`},
		{[]string{"--listen-metrics-urls", "https://127.0.0.1:2381"}, `--listen-metrics-urls "https://127.0.0.1:2381"`},
		{[]string{"--join", "10.0.0.1"}, `--join "10.0.0.1"`},
		{[]string{"--cert-file", "/nonexistent/cert.pem"}, `--cert-file "/nonexistent/cert.pem"`},
		{[]string{"--gossip-key", "c2VjcmV0"}, "--gossip-key"},
		{[]string{"--memory-budget", "1024"}, "--memory-budget 1024"},
		{[]string{"--memory-limit", "1024"}, "--memory-limit 1024"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "="), func(t *testing.T) {
			cfg := site.DefaultConfig()
			f := newServeFlags(&cfg)
			if err := f.fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			err := f.apply(&cfg)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got %v, want an error starting %q", err, c.want)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error repeats the gossip key: %v", err)
			}
		})
	}
	cfg := site.DefaultConfig()
	f := newServeFlags(&cfg)
	if err := f.apply(&cfg); err != nil {
		t.Fatalf("the defaults are refused: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the defaults fail site.Config.Validate: %v", err)
	}
}
