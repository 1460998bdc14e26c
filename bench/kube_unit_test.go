package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestKubeObjectSizes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		obj      any
		min, max int
	}{
		{"pod", benchPod("kb-c64-0", "c063-000001", 63, 1), 2048, 4096},
		{"configmap", benchConfigMap("kb-c64-0", "c063-000001", 63, 1), 512, 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := json.Marshal(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(data); n < tc.min || n > tc.max {
				t.Errorf("%d bytes of JSON, want %d..%d", n, tc.min, tc.max)
			}
		})
	}
}

func TestKubeTouch(t *testing.T) {
	p := benchPod("ns", "p", 1, 1)
	touchPod(p, 7)
	if got := p.Spec.Containers[0].Image; got != "registry.example.com/storefront/svc-01:1.7.0" {
		t.Errorf("image after touch = %q", got)
	}
	if p.Annotations["bench/generation"] != "7" {
		t.Errorf("annotations after touch = %v", p.Annotations)
	}
	cm := benchConfigMap("ns", "c", 1, 1)
	before := cm.Data["rollout.id"]
	touchConfigMap(cm, 2)
	if cm.Data["rollout.id"] == before || cm.Data["generation"] != "2" {
		t.Errorf("configmap not changed: %v", cm.Data)
	}
}

func TestKubeClientPick(t *testing.T) {
	cfg := DefaultKubeConfig()
	// The same seed gives the same sequence; an empty pool only creates.
	a, b := newKubeClient(3, "ns", nil, cfg, 1), newKubeClient(3, "ns", nil, cfg, 1)
	counts := map[kubeOp]int{}
	for range 1000 {
		opA, kindA := a.pick()
		opB, kindB := b.pick()
		if opA != opB || kindA != kindB {
			t.Fatal("two clients with the same seed diverged")
		}
		counts[opA]++
	}
	if len(counts) != 2 || counts[opCreate] == 0 || counts[opList] == 0 {
		t.Errorf("with empty pools: %v, want only create and list", counts)
	}
	// A full pool turns creates into deletes.
	c := newKubeClient(3, "ns", nil, cfg, 1)
	for range 2 * cfg.PoolPerClient {
		c.pods = append(c.pods, &corev1.Pod{})
		c.cms = append(c.cms, &corev1.ConfigMap{})
	}
	for range 1000 {
		if op, _ := c.pick(); op == opCreate {
			t.Fatal("create picked with a pool twice its size")
		}
	}
}

func TestKubeConfig(t *testing.T) {
	for name, c := range map[string]KubeConfig{"default": DefaultKubeConfig(), "quick": QuickKubeConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := DefaultKubeConfig()
	c.JSON = true
	if len(c.systems()) != 3 {
		t.Errorf("with JSON: systems %v", c.systems())
	}
	for name, mut := range map[string]func(*KubeConfig){
		"no duration":   func(c *KubeConfig) { c.Duration = 0 },
		"no clients":    func(c *KubeConfig) { c.Clients = nil },
		"repeat level":  func(c *KubeConfig) { c.Clients = []int{4, 4} },
		"empty mix":     func(c *KubeConfig) { c.Mix = KubeMix{} },
		"negative mix":  func(c *KubeConfig) { c.Mix[opGet] = -1 },
		"no namespaces": func(c *KubeConfig) { c.Namespaces = 0 },
		"no rounds":     func(c *KubeConfig) { c.Rounds = 0 },
		"no timeout":    func(c *KubeConfig) { c.StartTimeout = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultKubeConfig()
			mut(&c)
			if c.Validate() == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// sampleKubeReport is a report as a run would produce it, without servers.
func sampleKubeReport() *KubeReport {
	cfg := DefaultKubeConfig()
	cfg.JSON = true
	r := &KubeReport{
		Started: "2026-01-02T03:04:05Z",
		Host:    Host{OS: "linux", Arch: "amd64", CPUs: 2, EtcdVersion: "etcd v3.7.3", RhizomeCommit: "abc1234", LoadBefore: 0.5, LoadAfter: 1.5},
		Config:  cfg.report(),
	}
	r.Config.APIServer = "Kubernetes v1.36.3"
	for _, n := range cfg.Clients {
		for _, sys := range cfg.systems() {
			speed := map[string]float64{SystemRhizome: 1.1, SystemEtcd: 1, SystemRhizomeJSON: 0.9}[sys.Name]
			c := kubeCell{System: sys.Name, Clients: n, Conns: 8, Seconds: 30, Rounds: 3, RoundThroughputs: []float64{100, 110, 120}, DatastoreCPUPerOpUs: 300, APIServerCPUPerOpUs: 900, OtherCores: 0.1, LoadEnd: 2}
			var total float64
			for op := range numKubeOps {
				tp := speed * float64(n) * float64(10+int(op))
				total += tp
				c.Ops = append(c.Ops, kubeOpStats{Op: op.String(), Requests: int64(tp * 25), Throughput: tp, P50Ms: 2 / speed, P99Ms: 20 / speed})
			}
			c.Ops = append(c.Ops, kubeOpStats{Op: kubeOpAll, Requests: int64(total * 25), Throughput: total, P50Ms: 2 / speed, P99Ms: 20 / speed})
			r.Cells = append(r.Cells, c)
		}
	}
	r.Cells[0].Conflicts = 1
	r.compare()
	return r
}

func TestKubeReport(t *testing.T) {
	r := sampleKubeReport()
	if want := 2 * 2 * 6; len(r.Comparisons) != want {
		t.Fatalf("%d comparisons, want %d", len(r.Comparisons), want)
	}
	if len(r.Targets) != 2 || !r.Targets[0].Met || !r.Targets[1].Met {
		t.Errorf("targets %+v, want two met (rhizome is 1.1x)", r.Targets)
	}
	table := r.Table()
	for _, want := range []string{"rhizome-json", "1.10x", "0.90x", "all calls, 64 clients: throughput", "met", "should be 0", "Kubernetes v1.36.3", "100 110 120"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if _, err := r.JSON(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.PNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Errorf("plot is %v", b)
	}
}
