package bench

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// results returns the rows of one system, phase, workload and delay, by site.
func (r *SitesReport) results(system, phase, workload string, delayMs float64) []SiteResult {
	var out []SiteResult
	for _, x := range r.Results {
		if x.System == system && x.Phase == phase && x.Workload == workload && (phase == "cut" || x.DelayMs == delayMs) {
			out = append(out, x)
		}
	}
	return out
}

// worst sums a phase's sites: total throughput, the highest p50 and p99,
// the lowest success rate and the errors.
func worst(rows []SiteResult) (sum SiteResult, ok bool) {
	if len(rows) == 0 {
		return SiteResult{}, false
	}
	sum.SuccessRate = 1
	for _, x := range rows {
		sum.Throughput += x.Throughput
		sum.P50Ms, sum.P99Ms = max(sum.P50Ms, x.P50Ms), max(sum.P99Ms, x.P99Ms)
		sum.SuccessRate = min(sum.SuccessRate, x.SuccessRate)
		sum.Errors += x.Errors
	}
	return sum, true
}

// judge fills in Targets: issue 12's, against etcd measured in the same run.
func (r *SitesReport) judge() {
	r.Targets = nil
	add := func(name, want string, v float64, measured, met bool) {
		r.Targets = append(r.Targets, Target{Name: name, Want: want, Ratio: v, Measured: measured, Met: measured && met})
	}
	// The latency targets compare equal offered load: the fixed-rate Put.
	load := fmt.Sprintf("equal load, %g Puts/s per site", r.Rate)
	rz25, ok1 := worst(r.results(SystemRhizome, "load", WorkloadPutRate, 25))
	et25 := r.results(SystemEtcd, "load", WorkloadPutRate, 25)
	ok2 := len(et25) > 0
	etBest := bestP(et25)
	p50, p99 := ratio(etBest.P50Ms, rz25.P50Ms), ratio(etBest.P99Ms, rz25.P99Ms)
	add("25 ms, "+load+": etcd's best put p50 / Rhizome's worst", ">= 25x", p50, ok1 && ok2, p50 >= 25)
	add("25 ms, "+load+": etcd's best put p99 / Rhizome's worst", ">= 25x", p99, ok1 && ok2, p99 >= 25)

	base, okBase := worst(r.results(SystemRhizome, "load", WorkloadPutRate, 0))
	far, okFar := worst(r.results(SystemRhizome, "load", WorkloadPutRate, 100))
	v := ratio(far.P99Ms, base.P99Ms)
	add("Rhizome put p99 at 100 ms / at 0 ms, "+load, "<= 1.5x", v, okBase && okFar, v <= 1.5)
	cutRz, okCut := worst(r.results(SystemRhizome, "cut", WorkloadPutRate, 0))
	v = ratio(cutRz.P99Ms, base.P99Ms)
	add("Rhizome put p99 during the cut / at 0 ms, "+load, "<= 1.5x", v, okBase && okCut, v <= 1.5)
	add("during the cut: lowest Rhizome site's write success", "= 1.00", cutRz.SuccessRate, okCut, cutRz.SuccessRate == 1)
	isolated := r.results(SystemEtcd, "cut", WorkloadPutRate, 0)
	okIso := len(isolated) == r.Sites
	var iso float64
	if okIso {
		iso = isolated[r.Sites-1].SuccessRate
	}
	add("during the cut: etcd's isolated member's write success", "= 0.00", iso, okIso, iso == 0)

	conv, okConv := r.ConvergeSeconds[SystemRhizome]
	v = conv / convergeBound(r.CutDelayMs)
	add(fmt.Sprintf("Rhizome convergence after the cut under load / (round trip + 0.5 s), %d writes pending", r.Pending[SystemRhizome]), "<= 1.0x", v, okConv && r.CutDelayMs > 0, v <= 1)
	r.judgeConvergence(add)

	var perChange float64
	okEdit := false
	for _, u := range r.Links {
		if u.System == SystemRhizome && u.Workload == WorkloadEdit {
			perChange, okEdit = max(perChange, u.PerChange/float64(u.ChangedBytes)), true
		}
	}
	add(fmt.Sprintf("Rhizome link bytes per %d-byte edit / its size (worst delay)", editBytes), "<= 1.5x", perChange, okEdit, perChange <= 1.5)
}

// bestP returns the lowest p50 and p99 among a phase's sites.
func bestP(rows []SiteResult) SiteResult {
	best := SiteResult{P50Ms: math.Inf(1), P99Ms: math.Inf(1)}
	for _, x := range rows {
		best.P50Ms, best.P99Ms = min(best.P50Ms, x.P50Ms), min(best.P99Ms, x.P99Ms)
	}
	return best
}

// Table renders the report as markdown: the sweep (every site at once,
// per workload and delay), the bytes per change, the cut per site, the
// Kubernetes mix, then the targets.
func (r *SitesReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Rhizome %s (%d sites) vs %s (%d members) over slow links\n\n", orDash(r.Host.RhizomeCommit), r.Sites, orDash(r.Host.EtcdVersion), r.Sites)
	fmt.Fprintf(&b, "Clients at every site at once against their own site, %d per site, %.0fs per cell; one-way delay ±%.0f%%; fsync on. %s/%s, %d CPUs; started %s, finished %s; load1 %.2f before, %.2f after.\n\n",
		r.Clients, r.Seconds, 100*r.Jitter, r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Started, r.Finished, r.Host.LoadBefore, r.Host.LoadAfter)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "%s\n\n", n)
	}
	b.WriteString("## Delay sweep\n\nClosed loop: each client sends its next request when the last returns, so each system runs as fast as it can and the latencies compare different loads. req/s = all sites together; p50, p99 = the worst site's.\n\n")
	b.WriteString("| workload | delay | rhizome req/s | etcd req/s | rhizome p50 | etcd p50 | rhizome p99 | etcd p99 | p99 etcd/rz | errors rz / etcd |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, w := range SitesWorkloads() {
		if w == WorkloadPutRate {
			continue // its own table
		}
		for _, d := range r.DelaysMs {
			rz, ok1 := worst(r.results(SystemRhizome, "load", w, d))
			et, ok2 := worst(r.results(SystemEtcd, "load", w, d))
			if !ok1 && !ok2 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %g ms | %.0f | %.0f | %s | %s | %s | %s | %.1fx | %d / %d |\n", w, d, rz.Throughput, et.Throughput,
				fmtMs(rz.P50Ms), fmtMs(et.P50Ms), fmtMs(rz.P99Ms), fmtMs(et.P99Ms), ratio(et.P99Ms, rz.P99Ms), rz.Errors, et.Errors)
		}
	}
	r.rateTable(&b)
	r.linksTable(&b)
	r.cutTable(&b)
	r.convergeTable(&b)
	r.kubeTable(&b)
	fmt.Fprintf(&b, "\nBytes over the peer links in the whole run (setup included): rhizome %s, etcd %s.\n", fmtBytes(r.LinkBytes[SystemRhizome]), fmtBytes(r.LinkBytes[SystemEtcd]))
	b.WriteString("\n## Targets (issue 12)\n\n| target | want | measured | |\n|---|---|--:|---|\n")
	for _, t := range r.Targets {
		switch {
		case !t.Measured:
			fmt.Fprintf(&b, "| %s | %s | - | not measured |\n", t.Name, t.Want)
		case t.Met:
			fmt.Fprintf(&b, "| %s | %s | %.2fx | met |\n", t.Name, t.Want, t.Ratio)
		default:
			fmt.Fprintf(&b, "| %s | %s | %.2fx | NOT MET |\n", t.Name, t.Want, t.Ratio)
		}
	}
	return b.String()
}

// linksTable writes the bytes per change of each write workload.
func (r *SitesReport) linksTable(b *strings.Builder) {
	if len(r.Links) == 0 {
		return
	}
	b.WriteString("\n## Bytes between sites per change\n\nBytes crossing the inter-site links, both ways, from a write workload's start until every site held the same data, per write made (in brackets: against the changed bytes).\n\n")
	b.WriteString("| workload | delay | changed bytes | rhizome | etcd |\n|---|--:|--:|--:|--:|\n")
	for _, u := range r.Links {
		if u.System != SystemRhizome {
			continue
		}
		var e LinkUse
		if i := slices.IndexFunc(r.Links, func(x LinkUse) bool {
			return x.System == SystemEtcd && x.Workload == u.Workload && x.DelayMs == u.DelayMs
		}); i >= 0 {
			e = r.Links[i]
		}
		fmt.Fprintf(b, "| %s | %g ms | %d | %.0f (%.1fx) | %.0f (%.1fx) |\n", u.Workload, u.DelayMs, u.ChangedBytes,
			u.PerChange, u.PerChange/float64(u.ChangedBytes), e.PerChange, e.PerChange/float64(max(1, e.ChangedBytes)))
	}
	r.peerBytesTable(b)
}

// peerBytesTable sets Rhizome's link bytes per change beside its peer
// messages as sent (compressed; framing, HTTP/2 control frames and gossip
// come on top), and says how many times each change was merged.
func (r *SitesReport) peerBytesTable(b *strings.Builder) {
	if !slices.ContainsFunc(r.Links, func(u LinkUse) bool { return u.PeerMessageBytes > 0 }) {
		return
	}
	fmt.Fprintf(b, "\nRhizome's share, per change: link bytes against its peer messages as sent, compressed (rhizome_peer_sent_bytes_total, all sites; the links also carry gRPC framing, HTTP/2 control frames and gossip), and merges (rhizome_merges_applied_total; %d sites: %d per change when each arrives once).\n\n", r.Sites, r.Sites-1)
	b.WriteString("| workload | delay | link bytes | peer messages | link / messages | merges |\n|---|--:|--:|--:|--:|--:|\n")
	for _, u := range r.Links {
		if u.System != SystemRhizome || u.Changes == 0 {
			continue
		}
		per := func(v int64) float64 { return float64(v) / float64(u.Changes) }
		fmt.Fprintf(b, "| %s | %g ms | %.0f | %.0f | %.2f | %.2f |\n", u.Workload, u.DelayMs, u.PerChange, per(u.PeerMessageBytes), float64(u.Bytes)/float64(max(u.PeerMessageBytes, 1)), per(u.Merges))
	}
}

// cutTable writes every site's requests during the cut and the
// convergence after it.
func (r *SitesReport) cutTable(b *strings.Builder) {
	if r.CutDelayMs <= 0 {
		return
	}
	fmt.Fprintf(b, "\n## Cut\n\nSite %d cut off for %.1fs at %g ms (open connections stall, new ones are refused), Put at %g/s at every site throughout (the fixed rate; latency from each request's scheduled start).\n\n",
		r.Sites-1, r.CutEnd-r.CutStart, r.CutDelayMs, r.Rate)
	b.WriteString("| system | site | req/s | succeeded | p50 | p99 |\n|---|--:|--:|--:|--:|--:|\n")
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		for _, x := range r.results(sys, "cut", WorkloadPutRate, 0) {
			fmt.Fprintf(b, "| %s | %d | %.0f | %.1f%% | %s | %s |\n", sys, x.Site, x.Throughput, 100*x.SuccessRate, fmtMs(x.P50Ms), fmtMs(x.P99Ms))
		}
	}
	fmt.Fprintf(b, "\nAfter the heal, identical data at every site in (polled as below): rhizome %.2fs (%d writes made during the cut), etcd %.2fs.\n",
		r.ConvergeSeconds[SystemRhizome], r.Pending[SystemRhizome], r.ConvergeSeconds[SystemEtcd])
}

// kubeRows returns the Kubernetes part's rows of one system, delay and
// verb, by site.
func (r *SitesReport) kubeRows(system string, delayMs float64, op string) []KubeSiteResult {
	var out []KubeSiteResult
	for _, x := range r.Kube {
		if x.System == system && x.DelayMs == delayMs && x.Op == op {
			out = append(out, x)
		}
	}
	return out
}

// kubeDelays are the delays the Kubernetes part ran at, in order.
func (r *SitesReport) kubeDelays() []float64 {
	var ds []float64
	for _, x := range r.Kube {
		if !slices.Contains(ds, x.DelayMs) {
			ds = append(ds, x.DelayMs)
		}
	}
	return ds
}

// kubeTable writes each site's calls/s and each verb's p50 / p99.
func (r *SitesReport) kubeTable(b *strings.Builder) {
	if len(r.Kube) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Kubernetes mix across sites\n\nOne kube-apiserver per site (Rhizome: against its site; etcd: against its own member), %d clients per site at once, each creating, getting, listing, updating and deleting its own Pods and ConfigMaps in namespaces of its site (the mix of `rhizome bench kube`), %.0fs per delay. Per verb: p50 / p99.\n\n",
		r.KubeClients, r.KubeSeconds)
	ops := []string{}
	for op := range numKubeOps {
		ops = append(ops, op.String())
	}
	fmt.Fprintf(b, "| delay | system | site | calls/s | errors | %s |\n|--:|---|--:|--:|--:|%s\n", strings.Join(ops, " | "), strings.Repeat("--:|", len(ops)))
	for _, d := range r.kubeDelays() {
		for _, sys := range []string{SystemRhizome, SystemEtcd} {
			for _, all := range r.kubeRows(sys, d, kubeOpAll) {
				var cells []string
				for _, op := range ops {
					for _, x := range r.kubeRows(sys, d, op) {
						if x.Site == all.Site {
							cells = append(cells, fmtMs(x.P50Ms)+" / "+fmtMs(x.P99Ms))
						}
					}
				}
				fmt.Fprintf(b, "| %g ms | %s | %d | %.0f | %d | %s |\n", d, sys, all.Site, all.Throughput, all.Errors, strings.Join(cells, " | "))
			}
		}
	}
}

// JSON returns the report as indented JSON.
func (r *SitesReport) JSON() ([]byte, error) { return indentJSON(r) }

// WriteFiles writes <name>.md (the report), <name>.json, <name>.png (the
// sweep and the cut) and, with the Kubernetes part, <name>-kube.png into
// dir.
func (r *SitesReport) WriteFiles(dir, name string) ([]string, error) {
	paths, err := writeMarkdownFiles(dir, name, r.JSON, r.Table(), r.PNG)
	if err != nil || len(r.Kube) == 0 {
		return paths, err
	}
	path := filepath.Join(dir, name+"-kube.png")
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := errors.Join(r.KubePNG(f), f.Close()); err != nil {
		return nil, err
	}
	return append(paths, path), nil
}

// KubePNG draws the Kubernetes part: the mix's p50 and p99 (the worst
// site's) against the delay, and each site's calls/s.
func (r *SitesReport) KubePNG(w io.Writer) error {
	lat := latencyByDelayPlot(fmt.Sprintf("Kubernetes mix (create/get/list/update/delete of Pods and ConfigMaps), one kube-apiserver per site, %d clients per site\nRhizome %s (%d sites) vs %s (%d members); %s", r.KubeClients, orDash(r.Host.RhizomeCommit), r.Sites, orDash(r.Host.EtcdVersion), r.Sites, r.Started), 12, "call latency")
	tput := plot.New()
	tput.X.Label.Text = lat.X.Label.Text
	tput.Y.Label.Text = "calls/s per site"
	tput.Add(horizontalGrid())
	tput.Legend.Top = true
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		for _, q := range []string{"p99", "p50"} {
			var xys plotter.XYs
			for _, d := range r.kubeDelays() {
				v := 0.0
				for _, x := range r.kubeRows(sys, d, kubeOpAll) {
					v = max(v, map[string]float64{"p99": x.P99Ms, "p50": x.P50Ms}[q])
				}
				if v > 0 {
					xys = append(xys, plotter.XY{X: d, Y: v})
				}
			}
			if err := addSeries(lat, xys, sys+" "+q, systemColour(sys), q == "p50", 2); err != nil {
				return err
			}
		}
		for site := range r.Sites {
			var xys plotter.XYs
			for _, d := range r.kubeDelays() {
				for _, x := range r.kubeRows(sys, d, kubeOpAll) {
					if x.Site == site {
						xys = append(xys, plotter.XY{X: d, Y: x.Throughput})
					}
				}
			}
			if err := addSeries(tput, xys, fmt.Sprintf("%s site %d", sys, site), systemColour(sys), site > 0, 1.5); err != nil {
				return err
			}
		}
	}
	return writePanels(w, plotH+300, lat, tput)
}

// addSeries adds a line with points to p and its legend (none for no
// points).
func addSeries(p *plot.Plot, xys plotter.XYs, label string, colour color.Color, dashed bool, width float64) error {
	if len(xys) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	line.Color, points.Color, line.Width = colour, colour, vg.Points(width)
	if dashed {
		line.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
	}
	p.Add(line, points)
	p.Legend.Add(label, line)
	return nil
}

// PNG draws up to five panels: closed-loop Put latency against the
// injected delay (log), the same at the fixed rate, every site's write
// success rate and p99 over the cut, the cut shaded, and
// the convergence time against the writes pending.
func (r *SitesReport) PNG(w io.Writer) error {
	sweep, err := r.delayPanel()
	if err != nil {
		return err
	}
	panels := []*plot.Plot{sweep}
	rate, err := r.ratePanel()
	if err != nil {
		return err
	}
	if rate != nil {
		panels = append(panels, rate)
	}
	if len(r.Timeline) > 0 {
		success, err := r.timelinePanel("write success rate", false, func(b Bucket) float64 { return ratio(float64(b.Succeeded), float64(b.Succeeded+b.Failed)) })
		if err != nil {
			return err
		}
		lat, err := r.timelinePanel("Put p99, ms (log)", true, func(b Bucket) float64 { return b.P99Ms })
		if err != nil {
			return err
		}
		panels = append(panels, success, lat)
	}
	if len(r.Convergence) > 0 {
		conv, err := r.convergePanel()
		if err != nil {
			return err
		}
		panels = append(panels, conv)
	}
	return writePanels(w, plotH+300*(len(panels)-1), panels...)
}

// delayPanel plots each system's worst-site closed-loop Put p50 and p99
// against the one-way delay.
func (r *SitesReport) delayPanel() (*plot.Plot, error) {
	p := latencyByDelayPlot(fmt.Sprintf("Rhizome %s (%d sites) vs %s (%d members), Put at every site, %d closed-loop clients per site, fsync on\n%d CPUs; %s",
		orDash(r.Host.RhizomeCommit), r.Sites, orDash(r.Host.EtcdVersion), r.Sites, r.Clients, r.Host.CPUs, r.Started), 13, "Put latency")
	plotted, err := r.delaySeries(p, WorkloadPut)
	if err != nil {
		return nil, err
	}
	if plotted == 0 {
		// A run without Put: an empty log axis cannot be drawn.
		p.Title.Text += "\n(no Put workload in this run)"
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 1, 10
	}
	return p, nil
}

// timelinePanel plots value per bucket for every site of both systems over
// the cut run, the cut shaded.
func (r *SitesReport) timelinePanel(label string, logY bool, value func(Bucket) float64) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = fmt.Sprintf("seconds (site %d cut off in the shaded span; %g ms one way)", r.Sites-1, r.CutDelayMs)
	p.Y.Label.Text = label
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	p.Add(horizontalGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	var lines []plot.Plotter // drawn over the shading
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		for site := range r.Sites {
			var xys plotter.XYs
			for _, b := range r.Timeline {
				if v := value(b); b.System == sys && b.Site == site && b.Succeeded+b.Failed > 0 && (!logY || v > 0) {
					xys = append(xys, plotter.XY{X: b.Seconds, Y: v})
					lo, hi = min(lo, v), max(hi, v)
				}
			}
			if len(xys) == 0 {
				continue
			}
			line, err := plotter.NewLine(xys)
			if err != nil {
				return nil, fmt.Errorf("bench: plot: %w", err)
			}
			line.Color, line.Width = systemColour(sys), vg.Points(1.5)
			if site == r.Sites-1 {
				line.Width = vg.Points(3) // the site that is cut off
			}
			lines = append(lines, line)
			p.Legend.Add(fmt.Sprintf("%s site %d", sys, site), line)
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0.01, 1
	}
	if !logY {
		lo, hi = 0, max(hi, 1)*1.05
	}
	shade, err := plotter.NewPolygon(plotter.XYs{{X: r.CutStart, Y: lo}, {X: r.CutEnd, Y: lo}, {X: r.CutEnd, Y: hi}, {X: r.CutStart, Y: hi}})
	if err != nil {
		return nil, fmt.Errorf("bench: plot: %w", err)
	}
	shade.Color, shade.LineStyle.Width = color.NRGBA{200, 30, 30, 40}, 0
	p.Add(shade)
	p.Add(lines...)
	p.Legend.Add("cut", shade)
	p.Legend.Top = true
	return p, nil
}

// latencyByDelayPlot is an empty plot of a latency (what) against the one-way
// delay between sites: log latency axis, grid, legend top left.
func latencyByDelayPlot(title string, titlePoints float64, what string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(titlePoints)
	p.X.Label.Text = "one-way delay between sites, ms"
	p.Y.Label.Text = what + ", ms (log; worst site; solid p99, dashed p50)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	p.Add(horizontalGrid())
	p.Legend.Top, p.Legend.Left = true, true
	return p
}
