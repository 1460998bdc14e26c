package bench

import (
	"bytes"
	"image/png"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSitesConfigValidate(t *testing.T) {
	if err := DefaultSitesConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*SitesConfig){
		"one site":       func(c *SitesConfig) { c.Sites = 1 },
		"no duration":    func(c *SitesConfig) { c.Duration = 0 },
		"no clients":     func(c *SitesConfig) { c.Clients = 0 },
		"negative delay": func(c *SitesConfig) { c.Delay.Delay = -time.Millisecond },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultSitesConfig()
			mut(&c)
			if c.Validate() == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// TestSitesQuick runs `rhizome bench sites` briefly: three Rhizome sites and
// a three-member etcd, each in its own network namespace, with 20 ms
// one-way links between them, then the last site cut off for 3 s. Every
// site must serve Puts without errors; an etcd member's Put must take at
// least a round trip to the quorum, which shows the delay layer carries
// etcd's peer traffic; during the cut every Rhizome site keeps writing and
// etcd's cut-off member does not; after the heal both converge.
func TestSitesQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six servers")
	}
	if os.Geteuid() != 0 {
		t.Skip("the sites' network namespaces need root")
	}
	cfg := DefaultSitesConfig()
	cfg.Delay.Delay, cfg.Delay.Jitter = 20*time.Millisecond, 2*time.Millisecond
	cfg.Duration, cfg.Clients, cfg.CutDuration = 2*time.Second, 2, 3*time.Second
	cfg.Progress = testWriter{t}
	rep, err := RunSites(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rtt := 2 * (cfg.Delay.Delay - cfg.Delay.Jitter)
	followersDelayed, cut := 0, cfg.Sites-1
	for _, r := range rep.Results {
		switch {
		case r.Phase == "load" && (r.Requests == 0 || r.Errors > 0):
			t.Errorf("%s site %d: %d requests, %d errors (%s)", r.System, r.Site, r.Requests, r.Errors, r.LastError)
		case r.Phase == "load" && r.System == SystemEtcd && time.Duration(r.P50Ms*float64(time.Millisecond)) >= rtt:
			followersDelayed++
		// During the cut every Rhizome site keeps writing; etcd's cut-off
		// member cannot commit.
		case r.Phase == "cut" && r.System == SystemRhizome && r.SuccessRate < 0.99:
			t.Errorf("rhizome site %d during the cut: %.1f%% of writes succeeded (%s)", r.Site, 100*r.SuccessRate, r.LastError)
		case r.Phase == "cut" && r.System == SystemEtcd && r.Site == cut && r.SuccessRate > 0.1:
			t.Errorf("etcd's cut-off member: %.1f%% of writes succeeded", 100*r.SuccessRate)
		}
	}
	if len(rep.Results) != 4*cfg.Sites {
		t.Errorf("%d results, want a load and a cut phase per site and system", len(rep.Results))
	}
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		if _, ok := rep.ConvergeSeconds[sys]; !ok {
			t.Errorf("%s: no convergence time", sys)
		}
	}
	// Every member waits at least a round trip for a quorum; the leader's
	// round trip is to its nearest follower.
	if followersDelayed < cfg.Sites {
		t.Errorf("%d of %d etcd members had a Put p50 of at least %v", followersDelayed, cfg.Sites, rtt)
	}
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		if rep.LinkBytes[sys] == 0 {
			t.Errorf("no %s bytes crossed the peer links", sys)
		}
	}
	var buf bytes.Buffer
	if err := rep.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
	if table := rep.Table(); !strings.Contains(table, "etcd v3.7.3") {
		t.Errorf("table:\n%s", table)
	}
	t.Log("\n" + rep.Table())
}
