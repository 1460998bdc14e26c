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
	pods, err := newPodSet(100, 100)
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
	}
	if _, v := pods.fill(7); !bytes.Contains(v, []byte(`"Pending"`)) {
		t.Error("the fill does not write the pending form")
	}
}

// A sample of the pods is updated, spread evenly, every pass in the same
// order; lastUpdated is the last write of the phase.
func TestPodSetUpdateSample(t *testing.T) {
	pods, err := newPodSet(100, 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 30 {
		key, _ := pods.update(i)
		keys = append(keys, key)
	}
	if keys[0] != podKey(0) || keys[1] != podKey(10) || keys[9] != podKey(90) || keys[10] != podKey(0) || keys[29] != podKey(90) {
		t.Errorf("updated keys %v", keys)
	}
	key, v := pods.lastUpdated(3)
	if _, want := pods.update(29); key != podKey(90) || !bytes.Equal(v, want) || !bytes.Contains(v, []byte(`"restartCount":2`)) {
		t.Errorf("lastUpdated: %s %s", key, v)
	}
}

// Every mark is reached by exactly the write it stands for, whatever n.
func TestMarksEndingAt(t *testing.T) {
	for _, n := range []int{100, 101, 999, 50000} {
		seen := make([]int, markParts+1)
		for d := 0; d <= n; d++ {
			lo, hi := marksEndingAt(d, n, markParts)
			for j := lo; j <= hi; j++ {
				if j*n/markParts != d {
					t.Fatalf("n=%d: mark %d said to end at %d", n, j, d)
				}
				seen[j]++
			}
		}
		for j, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: mark %d reached %d times", n, j, c)
			}
		}
	}
}

// Tenths of the writes made, whether the phase made all n or stopped early.
func TestTenthRates(t *testing.T) {
	const n = 20000
	marks := make([]time.Time, markParts+1)
	t0 := time.Unix(0, 0)
	for j := range marks[:markParts/2+1] { // half the writes made, 1000 a second
		marks[j] = t0.Add(time.Duration(j*n/markParts) * time.Millisecond)
	}
	rates := tenthRates(marks, n, n/2)
	if len(rates) != 10 {
		t.Fatalf("%d tenths of the made writes: %v", len(rates), rates)
	}
	for _, r := range rates {
		if r < 999 || r > 1001 {
			t.Errorf("rate %v, want 1000", r)
		}
	}
	if rates := tenthRates(marks, n, n); len(rates) != 5 {
		t.Errorf("%d tenths of n when half was timed", len(rates))
	}
}

// A budget that runs out mid-pass ends the phase with that pass.
func TestTakerStopAtPass(t *testing.T) {
	tk := &taker{limit: 100}
	for range 23 {
		tk.take()
	}
	tk.stopAtPass(10)
	var got int
	for _, ok := tk.take(); ok; _, ok = tk.take() {
		got++
	}
	if got != 7 || tk.writes() != 30 {
		t.Errorf("took %d more, %d in all; want 7, 30", got, tk.writes())
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
		// Compacted at the end of every pass, to the previous pass's end.
		if s.DiskAfterFill <= 0 || s.Compactions != cfg.Updates || s.CompactErrors != 0 {
			t.Errorf("%s: disk after fill %d, %d compactions (%d failed: %s); want %d", s.System, s.DiskAfterFill, s.Compactions, s.CompactErrors, s.LastCompactError, cfg.Updates)
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
