package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// FillReport is everything one `rhizome bench fill` run measured. Its JSON
// form is the archived result; Table and PNG are views of it.
type FillReport struct {
	Started  string           `json:"started"`
	Finished string           `json:"finished"`
	Host     Host             `json:"host"`
	Config   fillReportConfig `json:"config"`
	Systems  []FillResult     `json:"systems"`
	Targets  []Target         `json:"targets"`
}

type fillReportConfig struct {
	Objects int  `json:"objects"`
	Updated int  `json:"objects_updated"`
	Compact bool `json:"compact_each_pass"`
	Updates int  `json:"updates_per_object"`
	// UpdatesAsked is the updates per object asked for, when an update
	// budget made fewer.
	UpdatesAsked int    `json:"updates_asked,omitempty"`
	UpdateBudget string `json:"update_budget,omitempty"`
	PodBytes     int    `json:"pod_bytes"`
	Clients      int    `json:"clients"`
	Conns        int    `json:"conns"`
	Idle         string `json:"idle"`
	Restarted    bool   `json:"restarted"`
	// Replicated: Rhizome ran as one of several sites (FillConfig.Replicated).
	Replicated bool `json:"replicated,omitempty"`
}

func (c FillConfig) report() fillReportConfig {
	pod, _ := podObject(0, true)
	budget := ""
	if c.UpdateBudget > 0 {
		budget = c.UpdateBudget.String()
	}
	return fillReportConfig{UpdatesAsked: c.Updates, UpdateBudget: budget, Objects: c.Objects, Updated: c.updated(), Compact: c.Compact, Updates: c.Updates, PodBytes: len(pod), Clients: c.Clients, Conns: c.Conns, Idle: c.Idle.String(), Restarted: c.Restart, Replicated: c.Replicated}
}

// FillResult is one system's run.
type FillResult struct {
	System string      `json:"system"`
	Phases []FillPhase `json:"phases"`
	// Resident memory after each phase, after the idle period, and just
	// after the restart served the last pod.
	RSSAfterFill    int64 `json:"rss_after_fill_bytes"`
	RSSAfterUpdate  int64 `json:"rss_after_update_bytes"`
	RSSAfterIdle    int64 `json:"rss_after_idle_bytes"`
	RSSAfterRestart int64 `json:"rss_after_restart_bytes,omitempty"`
	// RestartSeconds is from starting the process on the old data until it
	// served the last pod's update.
	RestartSeconds float64 `json:"restart_seconds,omitempty"`
	// DiskAfterFill is the size of the data directory after the fill,
	// DiskBytes at the end.
	DiskAfterFill int64 `json:"disk_after_fill_bytes"`
	DiskBytes     int64 `json:"disk_bytes"`
	// Compactions were made during the update phase; CompactErrors failed.
	Compactions      int         `json:"compactions"`
	CompactErrors    int         `json:"compact_errors"`
	LastCompactError string      `json:"last_compact_error,omitempty"`
	Samples          []RSSSample `json:"rss_samples"`
}

// FillPhase is one phase's writes.
type FillPhase struct {
	Name       string  `json:"name"`
	Writes     int64   `json:"writes"`
	Errors     int64   `json:"errors"`
	LastError  string  `json:"last_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"writes_per_second"`
	// TenthRates is the write rate over each tenth of the phase's writes;
	// Decay is the last tenth's over the first's.
	TenthRates    []float64 `json:"tenth_rates"`
	Decay         float64   `json:"decay"`
	P50Ms         float64   `json:"p50_ms"`
	P99Ms         float64   `json:"p99_ms"`
	CPUPerWriteUs float64   `json:"server_cpu_per_write_us"`
}

// RSSSample is the server's resident memory at one moment of the run.
type RSSSample struct {
	Seconds  float64 `json:"seconds"`
	Phase    string  `json:"phase"`
	Written  int64   `json:"written"`
	RSSBytes int64   `json:"rss_bytes"`
}

func (r *FillReport) system(name string) (FillResult, bool) {
	i := slices.IndexFunc(r.Systems, func(s FillResult) bool { return s.System == name })
	if i < 0 {
		return FillResult{}, false
	}
	return r.Systems[i], true
}

// updates is how many passes over the updated pods the update phase made.
func (s FillResult) updates(updated int) int {
	p, _ := s.phase(phaseUpdate)
	return int(p.Writes) / max(updated, 1)
}

func (s FillResult) phase(name string) (FillPhase, bool) {
	i := slices.IndexFunc(s.Phases, func(p FillPhase) bool { return p.Name == name })
	if i < 0 {
		return FillPhase{}, false
	}
	return s.Phases[i], true
}

// judge fills in Targets: issue 10's, against etcd measured in the same run.
func (r *FillReport) judge() {
	rz, ok1 := r.system(SystemRhizome)
	et, ok2 := r.system(SystemEtcd)
	both := ok1 && ok2
	r.Targets = nil
	add := func(name, want string, v float64, measured, met bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Ratio: v, Measured: measured, Met: measured && met})
	}
	for _, m := range []struct {
		name   string
		rz, et int64
	}{{"resident memory after the updates", rz.RSSAfterUpdate, et.RSSAfterUpdate}, {"resident memory after idle", rz.RSSAfterIdle, et.RSSAfterIdle}} {
		v := ratio(float64(m.rz), float64(m.et))
		add(m.name, "<= 1.5x etcd", v, both && m.et > 0, v <= 1.5)
	}
	for _, ph := range []string{phaseFill, phaseUpdate} {
		a, okA := rz.phase(ph)
		b, okB := et.phase(ph)
		v := ratio(a.Throughput, b.Throughput)
		add(fmt.Sprintf("%s throughput, %d clients", ph, r.Config.Clients), ">= 1.0x etcd", v, both && okA && okB, v >= 1.0)
		add(ph+": last tenth's write rate / first tenth's (Rhizome)", ">= 0.8", a.Decay, okA && a.Decay > 0, a.Decay >= 0.8)
	}
	v := ratio(float64(rz.DiskBytes), float64(et.DiskBytes))
	add("bytes on disk per object after the updates (issue 12)", "<= 1.5x etcd", v, both && et.DiskBytes > 0, v <= 1.5)
	v = ratio(rz.RestartSeconds, et.RestartSeconds)
	add("restart until the last pod is served", "<= 2.0x etcd", v, both && r.Config.Restarted && et.RestartSeconds > 0, v <= 2.0)
}

// Table renders the report as aligned text: one row per figure with both
// systems side by side, then the targets.
func (r *FillReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Rhizome %s%s vs %s: %d pod-shaped JSON objects (%d bytes), written by %d clients over %d conns, then %d status update(s) each to %s, then %s idle; fsync on%s\n",
		orDash(r.Host.RhizomeCommit), siteRole(r.Config.Replicated), orDash(r.Host.EtcdVersion), r.Config.Objects, r.Config.PodBytes, r.Config.Clients, r.Config.Conns, r.Config.Updates, r.updatedWhich(), r.Config.Idle,
		map[bool]string{true: "; history compacted after every update pass to the previous pass's end", false: ""}[r.Config.Compact])
	if r.Config.UpdatesAsked > r.Config.Updates {
		fmt.Fprintf(&b, "%d updates per object were asked for; the update budget (%s) ran out during Rhizome's pass %d, so both systems made %d\n",
			r.Config.UpdatesAsked, r.Config.UpdateBudget, r.Config.Updates, r.Config.Updates)
	}
	fmt.Fprintf(&b, "%s/%s, %d CPUs, %s; started %s; load1 %.2f before, %.2f after; each system ran alone\n\n",
		r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Host.GoVersion, r.Started, r.Host.LoadBefore, r.Host.LoadAfter)
	rz, _ := r.system(SystemRhizome)
	et, _ := r.system(SystemEtcd)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\trhizome\tetcd\tratio\t")
	bytesRow := func(name string, a, e int64) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\t\n", name, fmtBytes(a), fmtBytes(e), ratio(float64(a), float64(e)))
	}
	bytesRow("rss after fill", rz.RSSAfterFill, et.RSSAfterFill)
	bytesRow("rss after updates", rz.RSSAfterUpdate, et.RSSAfterUpdate)
	bytesRow("rss after idle", rz.RSSAfterIdle, et.RSSAfterIdle)
	if r.Config.Restarted {
		bytesRow("rss after restart", rz.RSSAfterRestart, et.RSSAfterRestart)
		fmt.Fprintf(tw, "restart s\t%.2f\t%.2f\t%.2fx\t\n", rz.RestartSeconds, et.RestartSeconds, ratio(rz.RestartSeconds, et.RestartSeconds))
	}
	if rz.DiskAfterFill > 0 || et.DiskAfterFill > 0 {
		bytesRow("data on disk after fill", rz.DiskAfterFill, et.DiskAfterFill)
	}
	bytesRow("data on disk", rz.DiskBytes, et.DiskBytes)
	fmt.Fprintf(tw, "disk bytes per object\t%.0f\t%.0f\t%.2fx\t\n", float64(rz.DiskBytes)/float64(r.Config.Objects), float64(et.DiskBytes)/float64(r.Config.Objects), ratio(float64(rz.DiskBytes), float64(et.DiskBytes)))
	if rz.DiskAfterFill > 0 && et.DiskAfterFill > 0 {
		grow := func(s FillResult) float64 { return float64(s.DiskBytes-s.DiskAfterFill) / float64(r.updated()) }
		fmt.Fprintf(tw, "disk growth per updated object\t%.0f\t%.0f\t%.2fx\t\n", grow(rz), grow(et), ratio(grow(rz), grow(et)))
	}
	var notes []string
	for _, s := range []FillResult{rz, et} {
		if s.CompactErrors > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d of %d compactions failed, last: %s", s.System, s.CompactErrors, s.Compactions, s.LastCompactError))
		}
	}
	for _, ph := range []string{phaseFill, phaseUpdate} {
		a, _ := rz.phase(ph)
		e, _ := et.phase(ph)
		fmt.Fprintf(tw, "%s writes/s\t%.0f\t%.0f\t%.2fx\t\n", ph, a.Throughput, e.Throughput, ratio(a.Throughput, e.Throughput))
		fmt.Fprintf(tw, "%s last/first tenth\t%.2f\t%.2f\t\t\n", ph, a.Decay, e.Decay)
		fmt.Fprintf(tw, "%s p99\t%s\t%s\t%.2fx\t\n", ph, fmtMs(a.P99Ms), fmtMs(e.P99Ms), ratio(a.P99Ms, e.P99Ms))
		fmt.Fprintf(tw, "%s cpu us/write\t%s\t%s\t%.2fx\t\n", ph, fmtCPU(a.CPUPerWriteUs), fmtCPU(e.CPUPerWriteUs), ratio(a.CPUPerWriteUs, e.CPUPerWriteUs))
		for _, x := range []struct {
			sys string
			p   FillPhase
		}{{SystemRhizome, a}, {SystemEtcd, e}} {
			if x.p.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%s %s: %d errors, last: %s", x.sys, ph, x.p.Errors, x.p.LastError))
			}
		}
	}
	tw.Flush()
	b.WriteString("\nratio = rhizome/etcd. rss = resident set size of the server process (for etcd it includes the pages of its mmapped bbolt file it touched).\ndata on disk = allocated blocks of the data directory, preallocated files included (etcd preallocates 64 MiB WAL segments).\n")
	writeNotesAndTargets(&b, notes, "issue 10", r.Targets)
	return b.String()
}

// updated is how many pods the update phase updated (reports from before
// the sample existed updated all).
func (r *FillReport) updated() int {
	if r.Config.Updated > 0 {
		return r.Config.Updated
	}
	return r.Config.Objects
}

func (r *FillReport) updatedWhich() string {
	if n := r.updated(); n < r.Config.Objects {
		return fmt.Sprintf("%d of them (every %.0fth)", n, float64(r.Config.Objects)/float64(n))
	}
	return "all of them"
}

// JSON returns the report as indented JSON.
func (r *FillReport) JSON() ([]byte, error) { return indentJSON(r) }

// WriteFiles writes the report into dir as <name>.json, .txt and .png.
func (r *FillReport) WriteFiles(dir, name string) ([]string, error) {
	return writeFiles(dir, name, r.JSON, r.Table(), r.PNG)
}

// PNG draws two panels: each system's resident memory against the writes
// done (the idle period at the right end), and each phase's write rate per
// tenth.
func (r *FillReport) PNG(w io.Writer) error {
	mem, err := r.memoryPanel()
	if err != nil {
		return err
	}
	rates, err := r.ratePanel()
	if err != nil {
		return err
	}
	return writePanels(w, plotH, mem, rates)
}

func (r *FillReport) memoryPanel() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Rhizome %s vs %s: %d pods written, then updated, then %s idle\n%d clients; %d CPUs; %s",
		orDash(r.Host.RhizomeCommit), orDash(r.Host.EtcdVersion), r.Config.Objects, r.Config.Idle, r.Config.Clients, r.Host.CPUs, r.Started)
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = "seconds since the server started"
	p.Y.Label.Text = "resident memory, MiB"
	p.Y.Min = 0
	p.Add(horizontalGrid())
	p.Legend.Top, p.Legend.Left = true, true
	for _, s := range r.Systems {
		xys := make(plotter.XYs, len(s.Samples))
		for i, smp := range s.Samples {
			xys[i] = plotter.XY{X: smp.Seconds, Y: float64(smp.RSSBytes) / (1 << 20)}
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("bench: plot: %w", err)
		}
		line.Color, line.Width = systemColour(s.System), vg.Points(2)
		p.Add(line)
		p.Legend.Add(s.System, line)
	}
	return p, nil
}

func (r *FillReport) ratePanel() (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "tenth of the phase's writes"
	p.Y.Label.Text = "writes per second"
	p.Y.Min = 0
	p.Add(horizontalGrid())
	p.Legend.Top = true
	for _, s := range r.Systems {
		for _, ph := range s.Phases {
			xys := make(plotter.XYs, len(ph.TenthRates))
			for i, v := range ph.TenthRates {
				xys[i] = plotter.XY{X: float64(i + 1), Y: v}
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, fmt.Errorf("bench: plot: %w", err)
			}
			line.Color, points.Color, line.Width = systemColour(s.System), systemColour(s.System), vg.Points(2)
			if ph.Name == phaseUpdate {
				line.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
				points.Shape = draw.BoxGlyph{}
			}
			p.Add(line, points)
			p.Legend.Add(s.System+" "+ph.Name, line, points)
		}
	}
	p.Y.Max *= 1.25 // room for the legend
	return p, nil
}

// siteRole says, for a report's first line, how Rhizome ran: alone, or as
// one of several sites (startRhizomeSite).
func siteRole(replicated bool) string {
	if replicated {
		return " (as one of several sites: documents edited field by field, changes logged)"
	}
	return " (alone: values written whole)"
}
