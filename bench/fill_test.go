package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"strings"
	"testing"
	"time"
)

func TestFillConfigValidate(t *testing.T) {
	if err := DefaultFillConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*FillConfig){
		"few objects": func(c *FillConfig) { c.Objects = 10 },
		"no clients":  func(c *FillConfig) { c.Clients = 0 },
		"no conns":    func(c *FillConfig) { c.Conns = 0 },
		"idle < 0":    func(c *FillConfig) { c.Idle = -time.Second },
		"no sampling": func(c *FillConfig) { c.SampleEvery = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultFillConfig()
			mut(&c)
			if c.Validate() == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// The pods are the size issue 10 names, valid JSON of a Pod, and the same
// bytes for the same index.
func TestPodObject(t *testing.T) {
	for _, running := range []bool{false, true} {
		a, err := podObject(1234, running)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := podObject(1234, running)
		if !bytes.Equal(a, b) {
			t.Error("podObject is not deterministic")
		}
		if len(a) < 1900 || len(a) > 2800 {
			t.Errorf("running=%v: %d bytes, want 2.2-2.8 KB", running, len(a))
		}
		var pod struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			}
			Status struct{ Phase string }
		}
		if err := json.Unmarshal(a, &pod); err != nil {
			t.Fatal(err)
		}
		if pod.Kind != "Pod" || !strings.HasSuffix(podKey(1234), "/"+pod.Metadata.Namespace+"/"+pod.Metadata.Name) {
			t.Errorf("pod %+v at %s", pod, podKey(1234))
		}
		if want := map[bool]string{false: "Pending", true: "Running"}[running]; pod.Status.Phase != want {
			t.Errorf("phase %q, want %q", pod.Status.Phase, want)
		}
	}
}

// Each update pass gives every pod a new value; the last pass's is what a
// restarted server must serve.
func TestPodSetUpdate(t *testing.T) {
	pods, err := newPodSet(100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for pass := range 3 {
		key, v := pods.update(pass*100 + 7)
		if key != podKey(7) || seen[string(v)] || !json.Valid(v) {
			t.Fatalf("pass %d: %s, repeated %v, valid %v", pass, key, seen[string(v)], json.Valid(v))
		}
		seen[string(v)] = true
		if pass == 2 && !bytes.Equal(v, pods.lastValue(7, 3)) {
			t.Error("lastValue is not the last pass's value")
		}
	}
	if _, v := pods.fill(7); !bytes.Contains(v, []byte(`"Pending"`)) {
		t.Error("the fill does not write the pending form")
	}
}

func TestTenthEndingAt(t *testing.T) {
	for _, n := range []int{100, 101, 999, 50000} {
		var got []int
		for d := 1; d <= n; d++ {
			if k, ok := tenthEndingAt(d, n); ok {
				if d != k*n/10 {
					t.Fatalf("n=%d: tenth %d said to end at %d", n, k, d)
				}
				got = append(got, k)
			}
		}
		if len(got) != 10 || got[0] != 1 || got[9] != 10 {
			t.Errorf("n=%d: tenths %v", n, got)
		}
	}
}

// TestFillQuick runs `rhizome bench fill --quick` against a real etcd: both
// systems take every write, the report has every figure, the restart serves
// the data again and the plot renders. It judges no target: a quick run on a
// shared machine says nothing about them.
func TestFillQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	cfg := QuickFillConfig()
	cfg.Objects, cfg.Updates = 1000, 2
	cfg.Progress = testWriter{t}
	rep, err := RunFill(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Systems) != 2 {
		t.Fatalf("%d systems", len(rep.Systems))
	}
	for _, s := range rep.Systems {
		if len(s.Phases) != 2 {
			t.Errorf("%s: %d phases", s.System, len(s.Phases))
		}
		for _, p := range s.Phases {
			want := int64(cfg.Objects)
			if p.Name == phaseUpdate {
				want *= int64(cfg.Updates)
			}
			if p.Errors > 0 || p.Writes != want || len(p.TenthRates) != 10 || p.Decay <= 0 {
				t.Errorf("%s %s: %+v", s.System, p.Name, p)
			}
		}
		if s.RSSAfterUpdate <= 0 || s.RSSAfterIdle <= 0 || s.RestartSeconds <= 0 || s.DiskBytes <= 0 || len(s.Samples) < 3 {
			t.Errorf("%s: missing figures: %+v", s.System, s)
		}
	}
	for _, tg := range rep.Targets {
		if !tg.Measured {
			t.Errorf("target %q not measured", tg.Name)
		}
	}
	var buf bytes.Buffer
	if err := rep.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
	if table := rep.Table(); !strings.Contains(table, "rss after idle") || !strings.Contains(table, "etcd v3.7.3") {
		t.Errorf("table:\n%s", table)
	}
	t.Log("\n" + rep.Table())
}
