package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// KubeReport is everything one RunKube measured. Its JSON form is
// the archived result; Table and PNG are views of it.
type KubeReport struct {
	Started     string           `json:"started"`
	Finished    string           `json:"finished"`
	Host        Host             `json:"host"`
	Config      kubeReportConfig `json:"config"`
	Cells       []kubeCell       `json:"cells"`
	Comparisons []kubeComparison `json:"comparisons"`
	Targets     []Target         `json:"targets"`
}

// kubeReportConfig is the part of KubeConfig that shapes the figures.
type kubeReportConfig struct {
	APIServer      string         `json:"kube_apiserver"`
	Duration       string         `json:"duration_per_round"`
	Rounds         int            `json:"rounds_per_cell"`
	Warmup         string         `json:"warmup"`
	Clients        []int          `json:"clients"`
	Conns          int            `json:"max_conns"`
	Namespaces     int            `json:"namespaces"`
	PoolPerClient  int            `json:"objects_per_client_and_kind"`
	PageSize       int            `json:"list_page_size"`
	Mix            map[string]int `json:"mix"`
	Seed           uint64         `json:"seed"`
	PodBytes       int            `json:"pod_json_bytes"`       // as the client sends it
	ConfigMapBytes int            `json:"configmap_json_bytes"` // as the client sends it
	Fsync          bool           `json:"fsync"`
	DatastoreTLS   bool           `json:"datastore_tls"`
	Replicated     bool           `json:"replicated,omitempty"` // KubeConfig.Replicated
}

func (c KubeConfig) report() kubeReportConfig {
	mix := map[string]int{}
	for op, w := range c.Mix {
		mix[kubeOp(op).String()] = w
	}
	pod, _ := json.Marshal(benchPod("kb-c64-0", "c063-000001", 63, 1))
	cm, _ := json.Marshal(benchConfigMap("kb-c64-0", "c063-000001", 63, 1))
	return kubeReportConfig{
		Duration: c.Duration.String(), Rounds: c.Rounds, Warmup: c.Warmup.String(), Clients: c.Clients, Conns: c.Conns,
		Namespaces: c.Namespaces, PoolPerClient: c.PoolPerClient, PageSize: c.PageSize, Mix: mix, Seed: c.Seed,
		PodBytes: len(pod), ConfigMapBytes: len(cm),
		Fsync:      true, // neither datastore gets --unsafe-no-fsync
		Replicated: c.Replicated,
	}
}

// kubeCell is one concurrency level against one system.
type kubeCell struct {
	System    string  `json:"system"`
	Datastore string  `json:"datastore"`
	Encoding  string  `json:"encoding"`
	Clients   int     `json:"clients"`
	Conns     int     `json:"conns"`
	Seconds   float64 `json:"seconds"` // measured, all rounds together
	Rounds    int     `json:"rounds"`
	// RoundThroughputs are the calls per second of each round, to show
	// how steady the cell was.
	RoundThroughputs []float64 `json:"round_throughputs_rps"`
	// Ops has one row per operation, pods and ConfigMaps together, then
	// the row "all"; Kinds splits each operation by resource.
	Ops       []kubeOpStats `json:"ops"`
	Kinds     []kubeOpStats `json:"by_kind"`
	ListPages int64         `json:"list_pages"`
	ListItems int64         `json:"list_items"`
	Conflicts int64         `json:"update_conflicts"` // should be 0: clients own their objects
	// Server CPU time (user+system) during the measured phase per call.
	DatastoreCPUPerOpUs float64 `json:"datastore_cpu_us_per_op"`
	APIServerCPUPerOpUs float64 `json:"apiserver_cpu_us_per_op"`
	DatastoreRSSBytes   int64   `json:"datastore_rss_bytes"`
	APIServerRSSBytes   int64   `json:"apiserver_rss_bytes"`
	DatastoreDBBytes    int64   `json:"datastore_db_bytes"` // etcd Status dbSize after the cell
	// OtherCores is the CPU the rest of the machine used during the measured
	// phase, in processors: busy time minus the benchmark's and every
	// control plane's datastore and apiserver. -1 when /proc cannot tell.
	OtherCores float64 `json:"other_cores"`
	LoadStart  float64 `json:"load1_start"`
	LoadEnd    float64 `json:"load1_end"`
}

// kubeOpStats is one operation's figures in a cell.
type kubeOpStats struct {
	Op         string  `json:"op"`
	Kind       string  `json:"kind,omitempty"`
	Requests   int64   `json:"requests"` // that succeeded
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput_rps"`
	MeanMs     float64 `json:"mean_ms"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	LastError  string  `json:"last_error,omitempty"`
}

// op returns the row of operation op ("all" for the sum).
func (c kubeCell) op(op string) kubeOpStats {
	i := slices.IndexFunc(c.Ops, func(s kubeOpStats) bool { return s.Op == op })
	if i < 0 {
		return kubeOpStats{Op: op}
	}
	return c.Ops[i]
}

func (c kubeCell) summary() string {
	a := c.op(kubeOpAll)
	s := fmt.Sprintf("%-12s clients=%-3d %7.0f calls/s  p50 %7.2f ms  p99 %7.2f ms  datastore %s us/call  apiserver %s us/call  (load1 %.2f, other cores %s)",
		c.System, c.Clients, a.Throughput, a.P50Ms, a.P99Ms, fmtCPU(c.DatastoreCPUPerOpUs), fmtCPU(c.APIServerCPUPerOpUs), c.LoadEnd, fmtCores(c.OtherCores))
	if a.Errors > 0 {
		s += fmt.Sprintf("  %d errors, last: %s", a.Errors, a.LastError)
	}
	return s
}

// kubeComparison is one Rhizome system against etcd for one operation at one
// level. A ratio above 1 means Rhizome's figure is the larger: better for
// throughput, worse for latency and CPU.
type kubeComparison struct {
	System          string  `json:"system"`
	Clients         int     `json:"clients"`
	Op              string  `json:"op"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	P50Ratio        float64 `json:"p50_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
}

func (r *KubeReport) cell(system string, clients int) (kubeCell, bool) {
	i := slices.IndexFunc(r.Cells, func(c kubeCell) bool { return c.System == system && c.Clients == clients })
	if i < 0 {
		return kubeCell{}, false
	}
	return r.Cells[i], true
}

// systems lists the systems measured, in the order of their first cell,
// etcd last.
func (r *KubeReport) systems() []string {
	var s []string
	for _, c := range r.Cells {
		if !slices.Contains(s, c.System) && c.System != SystemEtcd {
			s = append(s, c.System)
		}
	}
	slices.SortStableFunc(s, func(a, b string) int { return strings.Compare(a, b) })
	return append(s, SystemEtcd)
}

func kubeOpNames() []string {
	var names []string
	for op := range numKubeOps {
		names = append(names, op.String())
	}
	return append(names, kubeOpAll)
}

// compare fills in Comparisons and Targets from Cells.
func (r *KubeReport) compare() {
	r.Comparisons = nil
	for _, sys := range r.systems() {
		if sys == SystemEtcd {
			continue
		}
		for _, n := range r.Config.Clients {
			rz, ok1 := r.cell(sys, n)
			et, ok2 := r.cell(SystemEtcd, n)
			if !ok1 || !ok2 {
				continue
			}
			for _, op := range kubeOpNames() {
				a, b := rz.op(op), et.op(op)
				r.Comparisons = append(r.Comparisons, kubeComparison{
					System: sys, Clients: n, Op: op,
					ThroughputRatio: ratio(a.Throughput, b.Throughput),
					P50Ratio:        ratio(a.P50Ms, b.P50Ms),
					P99Ratio:        ratio(a.P99Ms, b.P99Ms),
				})
			}
		}
	}
	// Issue 3: at least etcd's throughput through kube-apiserver, in its
	// default (protobuf) encoding, at every level measured.
	r.Targets = nil
	for _, n := range r.Config.Clients {
		i := slices.IndexFunc(r.Comparisons, func(c kubeComparison) bool {
			return c.System == SystemRhizome && c.Clients == n && c.Op == kubeOpAll
		})
		t := Target{Name: fmt.Sprintf("all calls, %d clients: throughput", n), Want: ">= 1.0x etcd", Measured: i >= 0}
		if i >= 0 {
			t.Ratio = r.Comparisons[i].ThroughputRatio
			t.Met = t.Ratio >= 1.0
		}
		r.Targets = append(r.Targets, t)
	}
}

// Table renders the report as aligned text: per level and operation both
// systems side by side with the ratios, then each cell's resources, then the
// targets.
func (r *KubeReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rhizome %s%s vs %s through %s (storage only: no controller-manager, scheduler)\n",
		orDash(r.Host.RhizomeCommit), siteRole(r.Config.Replicated), orDash(r.Host.EtcdVersion), orDash(r.Config.APIServer))
	fmt.Fprintf(&b, "%d rounds of %s per cell, each after %s warm-up, interleaved across systems; fsync on; protobuf storage unless the system says json; %d HTTP/2 connections\n",
		r.Config.Rounds, r.Config.Duration, r.Config.Warmup, r.Config.Conns)
	fmt.Fprintf(&b, "mix: %s; pods %d B, configmaps %d B (JSON as sent); %d of each per client; %d namespaces; list pages of %d\n",
		mixString(r.Config.Mix), r.Config.PodBytes, r.Config.ConfigMapBytes, r.Config.PoolPerClient, r.Config.Namespaces, r.Config.PageSize)
	fmt.Fprintf(&b, "%s/%s, %d CPUs, %s; started %s; load1 %.2f before, %.2f after\n",
		r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Host.GoVersion, r.Started, r.Host.LoadBefore, r.Host.LoadAfter)
	if lo, hi, ok := r.otherCores(); ok {
		fmt.Fprintf(&b, "other processes on the machine used %.2f to %.2f cores during the cells\n", lo, hi)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tclients\top\treq/s\tetcd req/s\tratio\tp50\tetcd p50\tp99\tetcd p99\tp99 ratio\t")
	var notes []string
	for _, c := range r.Comparisons {
		rz, _ := r.cell(c.System, c.Clients)
		et, _ := r.cell(SystemEtcd, c.Clients)
		a, e := rz.op(c.Op), et.op(c.Op)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%.0f\t%.2fx\t%s\t%s\t%s\t%s\t%.2fx\t\n",
			c.System, c.Clients, c.Op, a.Throughput, e.Throughput, c.ThroughputRatio,
			fmtMs(a.P50Ms), fmtMs(e.P50Ms), fmtMs(a.P99Ms), fmtMs(e.P99Ms), c.P99Ratio)
	}
	tw.Flush()
	b.WriteString("\nratio = system/etcd at the same level: above 1 is better for req/s, worse for p99. A list reads every page.\n\n")

	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\tclients\tcalls\tdatastore cpu us/call\tapiserver cpu us/call\tdatastore rss\tapiserver rss\tdb size\tlist pages\tother cores\tload1 start|end\treq/s by round\t")
	for _, n := range r.Config.Clients {
		for _, sys := range r.systems() {
			c, ok := r.cell(sys, n)
			if !ok {
				continue
			}
			a := c.op(kubeOpAll)
			var byRound []string
			for _, v := range c.RoundThroughputs {
				byRound = append(byRound, fmt.Sprintf("%.0f", v))
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.2f|%.2f\t%s\t\n",
				sys, n, a.Requests, fmtCPU(c.DatastoreCPUPerOpUs), fmtCPU(c.APIServerCPUPerOpUs),
				fmtBytes(c.DatastoreRSSBytes), fmtBytes(c.APIServerRSSBytes), fmtBytes(c.DatastoreDBBytes),
				c.ListPages, fmtCores(c.OtherCores), c.LoadStart, c.LoadEnd, orDash(strings.Join(byRound, " ")))
			if a.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%s clients=%d: %d errors, last: %s", sys, n, a.Errors, a.LastError))
			}
			if c.Conflicts > 0 {
				notes = append(notes, fmt.Sprintf("%s clients=%d: %d updates conflicted (each client owns its objects: should be 0)", sys, n, c.Conflicts))
			}
		}
	}
	tw.Flush()
	b.WriteString("\ncpu = process CPU time per call during the measured rounds; other cores = CPU used by everything but this benchmark and the\n" +
		"control planes (other users of the machine); load1 = 1-minute load average (includes the benchmark itself).\n")
	writeNotesAndTargets(&b, notes, "issue 3", r.Targets)
	return b.String()
}

func mixString(m map[string]int) string {
	var parts []string
	for op := range numKubeOps {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op.String()]))
	}
	return strings.Join(parts, ", ")
}

func fmtBytes(n int64) string {
	switch {
	case n <= 0:
		return "-"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
}

func (r *KubeReport) otherCores() (lo, hi float64, ok bool) {
	return coreRange(r.Cells, func(c kubeCell) float64 { return c.OtherCores })
}

// JSON returns the report as indented JSON.
func (r *KubeReport) JSON() ([]byte, error) {
	return indentJSON(r)
}

// WriteFiles writes <name>.json, <name>.txt and <name>.png into dir.
func (r *KubeReport) WriteFiles(dir, name string) ([]string, error) {
	return writeFiles(dir, name, r.JSON, r.Table(), r.PNG)
}

// PNG draws the report with the KV plot's layout: the throughput ratio
// against etcd per level and operation, then every system's p99 and p50 on a
// log scale.
func (r *KubeReport) PNG(w io.Writer) error {
	sub := fmt.Sprintf("pods and configmaps, %dx%s per cell, fsync on; %d CPUs, load1 %.2f before, %.2f after; %s",
		r.Config.Rounds, r.Config.Duration, r.Host.CPUs, r.Host.LoadBefore, r.Host.LoadAfter, r.Started)
	if lo, hi, ok := r.otherCores(); ok {
		sub += fmt.Sprintf("; others used %.2f-%.2f cores", lo, hi)
	}
	c := chart{
		title:     fmt.Sprintf("Rhizome %s vs %s via %s", orDash(r.Host.RhizomeCommit), orDash(r.Host.EtcdVersion), orDash(r.Config.APIServer)),
		subtitle:  sub,
		ratioAxis: "throughput / etcd (higher is better)",
		latAxis:   "latency, ms (log; filled p99, hollow p50)",
	}
	systems := r.systems()
	for _, sys := range systems {
		if sys != SystemEtcd {
			c.ratios = append(c.ratios, series{name: sys + "/etcd", colour: systemColour(sys)})
		}
		c.p99 = append(c.p99, series{name: sys, colour: systemColour(sys)})
		c.p50 = append(c.p50, series{name: sys, colour: systemColour(sys)})
	}
	for _, n := range r.Config.Clients {
		for _, op := range kubeOpNames() {
			c.slots = append(c.slots, fmt.Sprintf("%s\nc=%d", op, n))
			for j := range c.ratios {
				v := math.NaN()
				if cmp, ok := r.comparison(systems[j], n, op); ok {
					v = cmp.ThroughputRatio
				}
				c.ratios[j].values = append(c.ratios[j].values, v)
			}
			for j, sys := range systems {
				cell, _ := r.cell(sys, n)
				c.p99[j].values = append(c.p99[j].values, cell.op(op).P99Ms)
				c.p50[j].values = append(c.p50[j].values, cell.op(op).P50Ms)
			}
		}
	}
	return c.png(w)
}

// comparison returns sys against etcd for op at clients.
func (r *KubeReport) comparison(sys string, clients int, op string) (kubeComparison, bool) {
	i := slices.IndexFunc(r.Comparisons, func(c kubeComparison) bool {
		return c.System == sys && c.Clients == clients && c.Op == op
	})
	if i < 0 {
		return kubeComparison{}, false
	}
	return r.Comparisons[i], true
}
