package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is everything one run measured. Its JSON form is the archived
// result; Table and PNG are views of it.
type Report struct {
	Started     string       `json:"started"`
	Finished    string       `json:"finished"`
	Host        Host         `json:"host"`
	Config      ReportConfig `json:"config"`
	Cells       []Cell       `json:"cells"`
	Comparisons []Comparison `json:"comparisons"`
	Targets     []Target     `json:"targets"`
}

// Host describes where and against what the run happened.
type Host struct {
	OS            string  `json:"os"`
	Arch          string  `json:"arch"`
	CPUs          int     `json:"cpus"`
	GoVersion     string  `json:"go_version"`
	RhizomeCommit string  `json:"rhizome_commit,omitempty"`
	RhizomeBin    string  `json:"rhizome_bin"`
	EtcdBin       string  `json:"etcd_bin"`
	EtcdVersion   string  `json:"etcd_version"`
	LoadBefore    float64 `json:"load1_before"`
	LoadAfter     float64 `json:"load1_after"`
}

// ReportConfig is the part of Config that shapes the figures.
type ReportConfig struct {
	Duration         string `json:"duration_per_cell"`
	Requests         int    `json:"requests_per_cell,omitempty"`
	Warmup           string `json:"warmup"`
	Rounds           int    `json:"rounds"`
	Clients          []int  `json:"clients"`
	Conns            int    `json:"max_conns"`
	KeySize          int    `json:"key_size"`
	ValueSize        int    `json:"value_size"`
	KeySpace         int    `json:"put_key_space"`
	RangeKeys        int    `json:"range_keys"`
	TxnKeysPerClient int    `json:"txn_keys_per_client"`
	Fsync            bool   `json:"fsync"`
}

func reportConfig(c Config) ReportConfig {
	r := ReportConfig{
		Duration: c.Duration.String(), Requests: c.Requests, Warmup: c.Warmup.String(), Rounds: c.Rounds,
		Clients: c.Clients, Conns: c.Conns, KeySize: c.KeySize, ValueSize: c.ValueSize,
		KeySpace: c.KeySpace, RangeKeys: c.RangeKeys, TxnKeysPerClient: c.TxnKeysPerClient,
		Fsync: true, // both servers run with their defaults, which fsync
	}
	if c.Requests > 0 {
		r.Duration = ""
	}
	return r
}

// Cell is one workload at one concurrency level against one system.
type Cell struct {
	Workload   string  `json:"workload"`
	Clients    int     `json:"clients"`
	Conns      int     `json:"conns"`
	System     string  `json:"system"`
	Requests   int64   `json:"requests"` // that succeeded
	Errors     int64   `json:"errors"`
	Conflicts  int64   `json:"txn_conflicts,omitempty"` // Txn compares that failed
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput_rps"`
	MeanMs     float64 `json:"mean_ms"`
	P50Ms      float64 `json:"p50_ms"`
	P90Ms      float64 `json:"p90_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	// ServerCPUPerRequestUs is the server's user+system CPU time during the
	// measured phase divided by its requests; -1 when /proc cannot tell.
	ServerCPUPerRequestUs float64 `json:"server_cpu_us_per_request"`
	ServerRSSBytes        int64   `json:"server_rss_bytes"`
	// OtherCores is the CPU the rest of the machine used during the
	// measured phase (busy time minus the benchmark's and both servers'), in
	// processors; -1 when /proc cannot tell. Unlike the load average it
	// excludes the benchmark itself.
	OtherCores float64 `json:"other_cores"`
	LoadStart  float64 `json:"load1_start"`
	LoadEnd    float64 `json:"load1_end"`
	LastError  string  `json:"last_error,omitempty"`
}

func (c Cell) summary() string {
	s := fmt.Sprintf("%-18s clients=%-4d conns=%-3d %-7s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  (load1 %.2f, other cores %s)",
		c.Workload, c.Clients, c.Conns, c.System, c.Throughput, c.P50Ms, c.P99Ms, c.LoadEnd, fmtCores(c.OtherCores))
	if c.Errors > 0 {
		s += fmt.Sprintf("  %d errors, last: %s", c.Errors, c.LastError)
	}
	return s
}

// Comparison is Rhizome against etcd in one cell. A ratio above 1 means
// Rhizome's figure is the larger: better for throughput, worse for latency.
type Comparison struct {
	Workload        string  `json:"workload"`
	Clients         int     `json:"clients"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	P50Ratio        float64 `json:"p50_ratio"`
	P99Ratio        float64 `json:"p99_ratio"`
	CPURatio        float64 `json:"server_cpu_per_request_ratio,omitempty"`
}

// Target is one goal of issue 2 and whether this run met it.
type Target struct {
	Name     string  `json:"name"`
	Want     string  `json:"want"`
	Ratio    float64 `json:"ratio"`
	Measured bool    `json:"measured"`
	Met      bool    `json:"met"`
}

// cell returns the measurement of one system in one cell.
func (r *Report) cell(workload string, clients int, system string) (Cell, bool) {
	i := slices.IndexFunc(r.Cells, func(c Cell) bool {
		return c.Workload == workload && c.Clients == clients && c.System == system
	})
	if i < 0 {
		return Cell{}, false
	}
	return r.Cells[i], true
}

// compare fills in Comparisons and Targets from Cells.
func (r *Report) compare() {
	r.Comparisons = nil
	for _, c := range r.Cells {
		if c.System != SystemRhizome {
			continue
		}
		e, ok := r.cell(c.Workload, c.Clients, SystemEtcd)
		if !ok {
			continue
		}
		cmp := Comparison{
			Workload: c.Workload, Clients: c.Clients,
			ThroughputRatio: ratio(c.Throughput, e.Throughput),
			P50Ratio:        ratio(c.P50Ms, e.P50Ms),
			P99Ratio:        ratio(c.P99Ms, e.P99Ms),
		}
		if c.ServerCPUPerRequestUs > 0 && e.ServerCPUPerRequestUs > 0 {
			cmp.CPURatio = ratio(c.ServerCPUPerRequestUs, e.ServerCPUPerRequestUs)
		}
		r.Comparisons = append(r.Comparisons, cmp)
	}
	// Issue 2 states its targets at 100 clients; a run without that level
	// is judged at its highest one.
	high := slices.Max(r.Config.Clients)
	if slices.Contains(r.Config.Clients, 100) {
		high = 100
	}
	find := func(w string) (Comparison, bool) {
		i := slices.IndexFunc(r.Comparisons, func(c Comparison) bool { return c.Workload == w && c.Clients == high })
		if i < 0 {
			return Comparison{}, false
		}
		return r.Comparisons[i], true
	}
	put, okPut := find(WorkloadPut)
	rng, okRange := find(WorkloadRangeSerializable)
	r.Targets = []Target{
		{Name: fmt.Sprintf("put, %d clients: throughput", high), Want: ">= 1.0x etcd", Ratio: put.ThroughputRatio, Measured: okPut, Met: okPut && put.ThroughputRatio >= 1.0},
		{Name: fmt.Sprintf("put, %d clients: p99 latency", high), Want: "<= 1.0x etcd", Ratio: put.P99Ratio, Measured: okPut, Met: okPut && put.P99Ratio <= 1.0},
		{Name: fmt.Sprintf("range-serializable, %d clients: throughput", high), Want: ">= 1.2x etcd", Ratio: rng.ThroughputRatio, Measured: okRange, Met: okRange && rng.ThroughputRatio >= 1.2},
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Table renders the report as aligned text: one row per workload and
// concurrency level with both systems side by side, then the targets.
func (r *Report) Table() string {
	var b strings.Builder
	per := r.Config.Duration + " per cell"
	if r.Config.Requests > 0 {
		per = fmt.Sprintf("%d requests per cell", r.Config.Requests)
	}
	fmt.Fprintf(&b, "Rhizome %s vs %s: %s (%d alternating rounds) after %s warm-up; fsync on; %d-byte keys, %d-byte values\n",
		orDash(r.Host.RhizomeCommit), orDash(r.Host.EtcdVersion), per, r.Config.Rounds, r.Config.Warmup, r.Config.KeySize, r.Config.ValueSize)
	fmt.Fprintf(&b, "%s/%s, %d CPUs, %s; started %s; load1 %.2f before, %.2f after\n",
		r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Host.GoVersion, r.Started, r.Host.LoadBefore, r.Host.LoadAfter)

	if lo, hi, ok := r.otherCores(); ok {
		fmt.Fprintf(&b, "other processes on the machine used %.2f to %.2f cores during the cells\n", lo, hi)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload          \tclients\tconns\trhizome req/s\tetcd req/s\tratio\trhizome p50\tetcd p50\trhizome p99\tetcd p99\tratio\tcpu us/req rz|etcd\tother cores rz|etcd\tload1\t")
	var notes []string
	for _, c := range r.Comparisons {
		rz, _ := r.cell(c.Workload, c.Clients, SystemRhizome)
		et, _ := r.cell(c.Workload, c.Clients, SystemEtcd)
		fmt.Fprintf(tw, "%-18s\t%d\t%d\t%.0f\t%.0f\t%.2fx\t%s\t%s\t%s\t%s\t%.2fx\t%s|%s\t%s|%s\t%.2f\t\n",
			c.Workload, c.Clients, rz.Conns, rz.Throughput, et.Throughput, c.ThroughputRatio,
			fmtMs(rz.P50Ms), fmtMs(et.P50Ms), fmtMs(rz.P99Ms), fmtMs(et.P99Ms), c.P99Ratio,
			fmtCPU(rz.ServerCPUPerRequestUs), fmtCPU(et.ServerCPUPerRequestUs), fmtCores(rz.OtherCores), fmtCores(et.OtherCores), max(rz.LoadEnd, et.LoadEnd))
		for _, x := range []Cell{rz, et} {
			if x.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%s %s clients=%d: %d errors, last: %s", x.System, x.Workload, x.Clients, x.Errors, x.LastError))
			}
			if x.Conflicts > 0 {
				notes = append(notes, fmt.Sprintf("%s %s clients=%d: %d compares failed (clients never share keys; this should be 0 after warm-up)", x.System, x.Workload, x.Clients, x.Conflicts))
			}
		}
	}
	tw.Flush()
	b.WriteString("\nratio = rhizome/etcd: above 1 is better for req/s, worse for p99. cpu = server CPU time per request.\n" +
		"other cores = CPU used by everything but this benchmark and its two servers during that system's rounds (other users of the machine);\n" +
		"load1 = 1-minute load average at the end of the cell (includes the benchmark itself).\n")
	writeNotesAndTargets(&b, notes, "issue 2", r.Targets)
	return b.String()
}

// writeNotesAndTargets ends a report's table: its notes, then each target
// (named after the issue that set it) with the ratio measured and whether it
// was met.
func writeNotesAndTargets(b *strings.Builder, notes []string, source string, targets []Target) {
	for _, n := range notes {
		b.WriteString("note: " + n + "\n")
	}
	fmt.Fprintf(b, "\ntargets (%s):\n", source)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, t := range targets {
		switch {
		case !t.Measured:
			fmt.Fprintf(tw, "  %s\t%s\tnot measured\t\n", t.Name, t.Want)
		case t.Met:
			fmt.Fprintf(tw, "  %s\t%s\t%.2fx\tmet\n", t.Name, t.Want, t.Ratio)
		default:
			fmt.Fprintf(tw, "  %s\t%s\t%.2fx\tNOT MET\n", t.Name, t.Want, t.Ratio)
		}
	}
	tw.Flush()
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func fmtCPU(us float64) string {
	if us < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", us)
}

func fmtCores(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// otherCores returns the least and most CPU, in cores, that the rest of the
// machine used during any cell.
func (r *Report) otherCores() (lo, hi float64, ok bool) {
	return coreRange(r.Cells, func(c Cell) float64 { return c.OtherCores })
}

// coreRange returns the least and most of cores over cells, skipping the
// negative values that mean "not measured".
func coreRange[C any](cells []C, cores func(C) float64) (lo, hi float64, ok bool) {
	lo = math.Inf(1)
	for _, c := range cells {
		if v := cores(c); v >= 0 {
			lo, hi, ok = min(lo, v), max(hi, v), true
		}
	}
	return lo, hi, ok
}

// indentJSON is a report's JSON form: indented, ending in a newline.
func indentJSON(report any) ([]byte, error) {
	data, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return append(data, '\n'), nil
}

// progressOrDiscard is where a run's progress lines go: w, or nowhere.
func progressOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// newHost describes this machine as a run starts.
func newHost() Host {
	return Host{
		OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		GoVersion: runtime.Version(), LoadBefore: loadAvg(),
	}
}

// JSON returns the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	return indentJSON(r)
}

// WriteFiles writes the report into dir as <name>.json, <name>.txt (the
// table) and <name>.png (the plot), creating dir if needed, and returns the
// paths written.
func (r *Report) WriteFiles(dir, name string) ([]string, error) {
	return writeFiles(dir, name, r.JSON, r.Table(), r.PNG)
}

// writeMarkdownFiles is writeFiles for a report whose table is markdown:
// <name>.md rather than <name>.txt.
func writeMarkdownFiles(dir, name string, js func() ([]byte, error), table string, plot func(io.Writer) error) ([]string, error) {
	paths, err := writeFiles(dir, name, js, table, plot)
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		if md, ok := strings.CutSuffix(p, ".txt"); ok {
			if err := os.Rename(p, md+".md"); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
			paths[i] = filepath.Clean(md + ".md")
		}
	}
	return paths, nil
}

// writeFiles writes a report's JSON, table and plot as <name>.json, .txt and .png
// into dir, creating it if needed, and returns the paths written, sorted.
func writeFiles(dir, name string, js func() ([]byte, error), table string, plot func(io.Writer) error) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	data, err := js()
	if err != nil {
		return nil, err
	}
	var png bytes.Buffer
	if err := plot(&png); err != nil {
		return nil, err
	}
	var paths []string
	for ext, data := range map[string][]byte{".json": data, ".txt": []byte(table), ".png": png.Bytes()} {
		p := filepath.Join(dir, name+ext)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths, nil
}
