package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestThreeSitesDemo runs deploy/demo/three-sites.sh as a user would: three
// sites in network namespaces, each site's status printed, a cut with writes on
// both sides, a heal after which every site holds every write, then down.
// RHIZOME_DEMO_KUBE=1 includes each site's kube-apiserver (slow: three
// apiservers on the test machine).
func TestThreeSitesDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("three-sites.sh needs root for network namespaces")
	}
	script := filepath.Join(moduleRoot, "deploy", "demo", "three-sites.sh")
	env := append(os.Environ(), "RHIZOME_DEMO_DIR="+filepath.Join(t.TempDir(), "demo"))
	run := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	upArgs := []string{"up", "--cut-demo"}
	if os.Getenv("RHIZOME_DEMO_KUBE") != "1" {
		upArgs = append(upArgs, "--no-kube")
	}
	out, err := run(20*time.Minute, upArgs...)
	t.Cleanup(func() {
		if out, err := run(time.Minute, "down"); err != nil {
			t.Errorf("three-sites.sh down: %v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("three-sites.sh %s: %v\n%s", strings.Join(upArgs, " "), err, out)
	}
	for _, want := range []string{
		"== rhizome status at site a", "== rhizome status at site b", "== rhizome status at site c",
		"site a: /demo/from-a /demo/from-c", "site b: /demo/from-a /demo/from-c", "site c: /demo/from-a /demo/from-c",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}
