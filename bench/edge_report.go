package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crdtkube "github.com/rhizome-kv/rhizome/crdt/kube"
	"github.com/rhizome-kv/rhizome/internal/kube"
)

// EdgeReport is what RunEdge saw.
type EdgeReport struct {
	Started string `json:"started"`
	Host    Host   `json:"host"`
	Sites   int    `json:"sites"`
	// Delay is the one-way delay of every inter-site link.
	Delay      string  `json:"one_way_delay"`
	CutSite    string  `json:"cut_site"`
	CutSeconds float64 `json:"cut_seconds"`
	// LeaderTakeoverSeconds is the time from the cut until every side had
	// a controller-manager leader of its own; -1 if that never happened.
	LeaderTakeoverSeconds float64 `json:"leader_takeover_seconds"`
	// Requests are the writes made during the cut, per site.
	Requests []EdgeRequests `json:"requests_during_cut"`
	// ConvergeSeconds: from the heal until every store held the same
	// /registry/ (-1: not within SettleTimeout). ControllersQuietSeconds:
	// from the heal until the last write of a controller (-1: still
	// writing at SettleTimeout).
	ConvergeSeconds         float64 `json:"converge_seconds"`
	ControllersQuietSeconds float64 `json:"controllers_quiet_seconds"`
	// Leader is the controller-manager Lease's holder at the end, as each
	// site sees it; Restarts counts each site's controller-manager and
	// scheduler restarts (they exit on losing their lease).
	Leader   map[string]string `json:"leader_by_site"`
	Restarts map[string]int    `json:"restarts_by_site"`
	// Workloads: the most pods each workload had at once at any site.
	Workloads      []EdgeWorkload      `json:"workloads"`
	DoubleBindings []EdgeDoubleBinding `json:"double_bindings"`
	// Conflicts are what each site's /rhizome/conflicts listed at the end.
	Conflicts []EdgeConflict `json:"conflicts"`
	// Final describes each workload at the end, at the first site.
	Final    []string     `json:"final"`
	Timeline EdgeTimeline `json:"timeline"`
}

// EdgeRequests counts one site's writes during the cut.
type EdgeRequests struct {
	Site      string `json:"site"`
	Requests  int    `json:"requests"`
	Failed    int    `json:"failed"`
	LastError string `json:"last_error,omitempty"`
}

// EdgeWorkload is the most pods of one workload that existed at once.
type EdgeWorkload struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Spec is the largest replicas (a Job: parallelism) the story set.
	Spec int `json:"spec"`
	// Bound is the checker's derived per-replica bound, S·R for the two
	// sides of the cut with R the spec plus a rolling update's surge; 0
	// for a workload created on both sides (two objects: none derived).
	Bound      int     `json:"bound"`
	MaxPods    int     `json:"max_pods"`
	MaxSite    string  `json:"max_site"`
	MaxSeconds float64 `json:"max_at_seconds"`
}

// EdgeDoubleBinding is a pod name two sites saw bound to different nodes
// at the same moment.
type EdgeDoubleBinding struct {
	Pod        string            `json:"pod"`
	Seconds    float64           `json:"at_seconds"`
	NodeBySite map[string]string `json:"node_by_site"`
}

// EdgeConflict is one conflict a site recorded (site.Conflict's fields).
type EdgeConflict struct {
	Site   string    `json:"site"` // the site that listed it
	Key    string    `json:"key"`
	Kind   string    `json:"kind"`
	Winner string    `json:"winner"`
	Loser  string    `json:"loser"`
	Sites  []string  `json:"sites"` // the winner's site, then the loser's
	Time   time.Time `json:"time,omitzero"`
}

// EdgeTimeline is every site's pod count per workload over time, in
// seconds from when the workloads were deployed.
type EdgeTimeline struct {
	CutStart float64      `json:"cut_start"`
	CutEnd   float64      `json:"cut_end"`
	Samples  []EdgeSample `json:"samples"`
}

// EdgeSample is one site's pods (not terminating, not finished) per
// workload at one moment.
type EdgeSample struct {
	Seconds float64        `json:"t"`
	Site    string         `json:"site"`
	Pods    map[string]int `json:"pods"`
}

// converge polls until every site's store holds the same /registry/ (read
// at all sites at once) and returns how long that took.
func (r *edgeRun) converge(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	var clis []*clientv3.Client
	for _, s := range r.sites {
		clis = append(clis, s.etcd)
	}
	err := kubePoll(ctx, r.cfg.SettleTimeout, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		same, err := sameRegistry(ctx, clis)
		return same, fmt.Sprint(err)
	})
	if err != nil {
		return 0, fmt.Errorf("bench: edge: stores not identical: %w", err)
	}
	return time.Since(start), nil
}

// sameRegistry reads /registry/ at every client at once and compares.
func sameRegistry(ctx context.Context, clis []*clientv3.Client) (bool, error) {
	states := make([]map[string]string, len(clis))
	errs := make([]error, len(clis))
	var wg sync.WaitGroup
	for i, cli := range clis {
		wg.Go(func() {
			res, err := cli.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithSerializable())
			if err != nil {
				errs[i] = err
				return
			}
			states[i] = make(map[string]string, len(res.Kvs))
			for _, kv := range res.Kvs {
				states[i][string(kv.Key)] = string(crdtkube.Canonical(kv.Value))
			}
		})
	}
	wg.Wait()
	for i := range states {
		if errs[i] != nil {
			return false, errs[i]
		}
		if i > 0 && !maps.Equal(states[0], states[i]) {
			return false, fmt.Errorf("site %d differs from site 0 (%d and %d keys)", i, len(states[i]), len(states[0]))
		}
	}
	return true, nil
}

// leaderState reads the Lease's holder at every site and the restarts.
func (r *edgeRun) leaderState(ctx context.Context) (map[string]string, map[string]int) {
	holders, restarts := map[string]string{}, map[string]int{}
	for _, s := range r.sites {
		holders[s.name] = "site-" + leaseHolderSite(ctx, s.kube.Client)
		restarts[s.name] = s.kube.Restarts("kube-controller-manager") + s.kube.Restarts("kube-scheduler")
	}
	return holders, restarts
}

// finalState describes every workload as the first site sees it.
func (r *edgeRun) finalState(ctx context.Context) []string {
	cs := r.sites[0].kube.Client
	var out []string
	owners := map[string]bool{} // uids of the workloads that own pods
	if ds, err := cs.AppsV1().Deployments(edgeNS).List(ctx, metav1.ListOptions{}); err == nil {
		for _, d := range ds.Items {
			out = append(out, fmt.Sprintf("Deployment %s: spec %d × %s, generation %d observed %d, %d updated, %d ready",
				d.Name, *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image, d.Generation, d.Status.ObservedGeneration,
				d.Status.UpdatedReplicas, d.Status.ReadyReplicas))
		}
	}
	if ss, err := cs.AppsV1().StatefulSets(edgeNS).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range ss.Items {
			owners[string(s.UID)] = true
			out = append(out, fmt.Sprintf("StatefulSet %s: spec %d, generation %d observed %d, %d replicas, %d ready",
				s.Name, *s.Spec.Replicas, s.Generation, s.Status.ObservedGeneration, s.Status.Replicas, s.Status.ReadyReplicas))
		}
	}
	if js, err := cs.BatchV1().Jobs(edgeNS).List(ctx, metav1.ListOptions{}); err == nil {
		for _, j := range js.Items {
			owners[string(j.UID)] = true
			out = append(out, fmt.Sprintf("Job %s: image %s, %d of %d succeeded", j.Name, j.Spec.Template.Spec.Containers[0].Image, j.Status.Succeeded, *j.Spec.Completions))
		}
	}
	if rss, err := cs.AppsV1().ReplicaSets(edgeNS).List(ctx, metav1.ListOptions{}); err == nil {
		for _, rs := range rss.Items {
			owners[string(rs.UID)] = true
		}
	}
	if pods, err := cs.CoreV1().Pods(edgeNS).List(ctx, metav1.ListOptions{}); err == nil {
		states := map[string]int{}
		for _, p := range pods.Items {
			state := fmt.Sprintf("%s %s ready=%v", p.Labels[edgeLabel], p.Status.Phase, kube.PodReady(&p))
			if p.DeletionTimestamp != nil {
				state += " terminating"
			}
			if ref := metav1.GetControllerOf(&p); ref != nil && !owners[string(ref.UID)] {
				state += " orphaned" // its controller is gone: the garbage collector's to delete
			}
			states[state]++
		}
		out = append(out, "Pods: "+fmtMap(states))
	}
	if cm, err := cs.CoreV1().ConfigMaps(edgeNS).Get(ctx, "shared", metav1.GetOptions{}); err == nil {
		out = append(out, fmt.Sprintf("ConfigMap shared: %v", cm.Data))
	}
	return out
}

// conflicts lists what every site's /rhizome/conflicts holds.
func (r *edgeRun) conflicts(ctx context.Context) []EdgeConflict {
	var out []EdgeConflict
	for _, s := range r.sites {
		hc := &http.Client{Transport: &http.Transport{DialContext: s.kube.Dial}, Timeout: 10 * time.Second}
		var cs []EdgeConflict
		err := getJSON(ctx, hc, s.kube.DatastoreEndpoint+"/rhizome/conflicts", &cs)
		hc.CloseIdleConnections()
		if err != nil {
			r.logf("site %s: conflicts: %v", s.name, err)
			continue
		}
		for _, c := range cs {
			c.Site = s.name
			out = append(out, c)
		}
	}
	return out
}

func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Table renders the report as markdown.
func (r *EdgeReport) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The edge story: %d sites, site %s cut off for %.0fs\n\n", r.Sites, r.CutSite, r.CutSeconds)
	fmt.Fprintf(&b, "Rhizome %s; every site runs Rhizome and the unmodified kube-apiserver, kube-controller-manager and kube-scheduler (default flags, leader election on; the controllers restarted 2s after they exit, as deploy/systemd does) and two stand-in kubelets; inter-site links %s one way. %s/%s, %d CPUs; started %s; load1 %.2f before, %.2f after.\n\n",
		orDash(r.Host.RhizomeCommit), r.Delay, r.Host.OS, r.Host.Arch, r.Host.CPUs, r.Started, r.Host.LoadBefore, r.Host.LoadAfter)
	fmt.Fprintf(&b, "## During the cut\n\nEvery side had its own controller-manager leader %s after the cut.\n\n", secs(r.LeaderTakeoverSeconds))
	fmt.Fprintf(&b, "| site | writes | failed | last error |\n|---|---|---|---|\n")
	for _, q := range r.Requests {
		fmt.Fprintf(&b, "| %s | %d | %d | %s |\n", q.Site, q.Requests, q.Failed, orDash(q.LastError))
	}
	fmt.Fprintf(&b, "\n## After the heal\n\n- stores identical after %s\n- controllers stopped writing (anything but Leases and Events) after %s\n", secs(r.ConvergeSeconds), secs(r.ControllersQuietSeconds))
	fmt.Fprintf(&b, "- controller-manager leader as each site sees it: %s; restarts of controller-manager and scheduler per site: %s\n\n", fmtMap(r.Leader), fmtMap(r.Restarts))
	fmt.Fprintf(&b, "## Pods at once\n\nThe most pods of each workload one site held at once (not terminating, not finished), against the largest spec the story set and the checker's derived per-replica bound S·R (checker/k8s, over-replication bounds; S = 2 sides, R = spec plus a rolling update's surge).\n\n")
	fmt.Fprintf(&b, "| workload | kind | spec | most at once | where, when | bound S·R | within |\n|---|---|---|---|---|---|---|\n")
	for _, w := range r.Workloads {
		bound, within := "none derived (two objects)", "-"
		if w.Bound > 0 {
			bound, within = fmt.Sprint(w.Bound), fmt.Sprint(w.MaxPods <= w.Bound)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | site %s at %.0fs | %s | %s |\n", w.Name, w.Kind, w.Spec, w.MaxPods, orDash(w.MaxSite), w.MaxSeconds, bound, within)
	}
	fmt.Fprintf(&b, "\nPod names bound to two nodes at once (seen by different sites at the same moment): ")
	if len(r.DoubleBindings) == 0 {
		fmt.Fprintf(&b, "none.\n")
	}
	for _, d := range r.DoubleBindings {
		fmt.Fprintf(&b, "\n- %s at %.0fs: %s", d.Pod, d.Seconds, fmtMap(d.NodeBySite))
	}
	fmt.Fprintf(&b, "\n\n## Conflicts and how they were resolved\n\n")
	if len(r.Conflicts) == 0 {
		fmt.Fprintf(&b, "No site listed a conflict.\n")
	} else {
		fmt.Fprintf(&b, "Each concurrent incarnation of a key was resolved whole: the winner's object kept, the loser's dropped.\n\n| key | kind | kept (site) | dropped (site) | listed at |\n|---|---|---|---|---|\n")
		for _, c := range groupConflicts(r.Conflicts) {
			win, lose := "", ""
			if len(c.Sites) > 0 {
				win = c.Sites[0]
			}
			if len(c.Sites) > 1 {
				lose = c.Sites[1]
			}
			fmt.Fprintf(&b, "| %s | %s | %s (%s) | %s (%s) | %s |\n", c.Key, c.Kind, c.Winner, win, c.Loser, lose, c.Site)
		}
	}
	fmt.Fprintf(&b, "\n## Final state at the first site\n\n")
	for _, f := range r.Final {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	return b.String()
}

// groupConflicts merges the records of one conflict listed at several
// sites into one, its Site naming them all.
func groupConflicts(cs []EdgeConflict) []EdgeConflict {
	var out []EdgeConflict
	at := map[string]int{}
	for _, c := range cs {
		id := c.Key + "\x00" + c.Kind + "\x00" + c.Winner + "\x00" + c.Loser
		if i, ok := at[id]; ok {
			out[i].Site += ", " + c.Site
			continue
		}
		at[id] = len(out)
		out = append(out, c)
	}
	return out
}

func secs(s float64) string {
	if s < 0 {
		return "never (timed out)"
	}
	return fmt.Sprintf("%.1fs", s)
}

func fmtMap[V any](m map[string]V) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %v", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// JSON returns the report as indented JSON.
func (r *EdgeReport) JSON() ([]byte, error) { return indentJSON(r) }

// WriteFiles writes <name>.md (the report), <name>.json and <name>.png
// (the timeline) into dir.
func (r *EdgeReport) WriteFiles(dir, name string) ([]string, error) {
	return writeMarkdownFiles(dir, name, r.JSON, r.Table(), r.PNG)
}

// PNG draws the timeline: one panel per workload, its pods at every site
// over time, the cut shaded.
func (r *EdgeReport) PNG(w io.Writer) error {
	var panels [][]*plot.Plot
	sites := map[string]bool{}
	for _, s := range r.Timeline.Samples {
		sites[s.Site] = true
	}
	names := slices.Sorted(maps.Keys(sites))
	for i, wl := range r.Workloads {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (%s): spec %d, most at once %d", wl.Name, wl.Kind, wl.Spec, wl.MaxPods)
		if i == 0 {
			p.Title.Text = fmt.Sprintf("Pods per workload per site; site %s cut off for %.0fs (shaded), links %s\n%s", r.CutSite, r.CutSeconds, r.Delay, p.Title.Text)
		}
		p.Y.Label.Text = "pods"
		p.Y.Min = 0
		p.Y.Max = float64(max(wl.MaxPods, wl.Spec) + 1)
		if i == len(r.Workloads)-1 {
			p.X.Label.Text = "seconds since the workloads were deployed"
		}
		if err := r.shadeCut(p); err != nil {
			return err
		}
		for j, site := range names {
			var xys plotter.XYs
			for _, s := range r.Timeline.Samples {
				if s.Site == site {
					xys = append(xys, plotter.XY{X: s.Seconds, Y: float64(s.Pods[wl.Name])})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return fmt.Errorf("bench: plot: %w", err)
			}
			l.Color, l.Width = siteColour(j), vg.Points(1.5)
			l.Dashes = []vg.Length{vg.Points(float64(2 + 3*j)), vg.Points(2)}
			p.Add(l)
			p.Legend.Add("site "+site, l)
		}
		p.Legend.Top, p.Legend.Left = true, true
		panels = append(panels, []*plot.Plot{p})
	}
	if len(panels) == 0 {
		return fmt.Errorf("bench: edge: no workloads to plot")
	}
	img := vgimg.NewWith(vgimg.UseWH(px(plotW), px(180*len(panels))), vgimg.UseDPI(plotDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(16), PadY: vg.Points(10)}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		panels[i][0].Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("bench: png: %w", err)
	}
	return nil
}

// shadeCut adds the cut's span to p as a grey band.
func (r *EdgeReport) shadeCut(p *plot.Plot) error {
	lo, hi := r.Timeline.CutStart, r.Timeline.CutEnd
	if hi <= lo {
		return nil
	}
	band, err := plotter.NewPolygon(plotter.XYs{{X: lo, Y: 0}, {X: hi, Y: 0}, {X: hi, Y: p.Y.Max}, {X: lo, Y: p.Y.Max}})
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	band.Color, band.LineStyle.Width = color.RGBA{225, 225, 225, 255}, 0
	p.Add(band)
	return nil
}

func siteColour(i int) color.Color {
	colours := []color.Color{color.RGBA{49, 110, 190, 255}, color.RGBA{230, 140, 20, 255}, color.RGBA{200, 30, 30, 255}, color.RGBA{40, 150, 70, 255}, color.RGBA{120, 80, 170, 255}}
	return colours[i%len(colours)]
}
