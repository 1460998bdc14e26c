package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The figure both reports draw: 1280×900 pixels at 96 dpi, two panels over
// the same cells — throughput ratios against etcd (linear), then every
// system's latency (log scale).
const (
	plotW, plotH = 1280, 900
	plotDPI      = 96
)

// series is one system's (or one ratio's) value per slot of a chart; NaN
// or a non-positive value is a gap.
type series struct {
	name   string
	values []float64
	colour color.Color
}

// chart is the two-panel figure of a report.
type chart struct {
	title     string
	subtitle  string
	slots     []string // x labels, one per cell; "\n" splits lines
	ratioAxis string   // panel 1: the ratio's name
	ratios    []series // panel 1: one bar per series and slot
	latAxis   string   // panel 2: the latency's name
	p50, p99  []series // panel 2: per system; p50 may be nil
}

// systemColour is the colour a system has in every plot.
func systemColour(sys string) color.Color {
	switch sys {
	case SystemRhizome:
		return color.RGBA{49, 110, 190, 255}
	case SystemRhizomeJSON:
		return color.RGBA{120, 80, 170, 255}
	}
	return color.RGBA{120, 120, 120, 255}
}

// parityColour marks the line where Rhizome equals etcd.
func parityColour() color.Color { return color.RGBA{200, 30, 30, 255} }

// png renders the chart.
func (c chart) png(w io.Writer) error {
	top, err := c.ratioPanel()
	if err != nil {
		return err
	}
	bottom, err := c.latencyPanel()
	if err != nil {
		return err
	}
	return writePanels(w, plotH, top, bottom)
}

// writePanels renders plots one above the other, aligned, plotW wide and
// height pixels high in all, as a PNG.
func writePanels(w io.Writer, height int, panels ...*plot.Plot) error {
	img := vgimg.NewWith(vgimg.UseWH(px(plotW), px(height)), vgimg.UseDPI(plotDPI))
	rows := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		rows[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(16), PadY: vg.Points(18)}
	canvases := plot.Align(rows, tiles, draw.New(img))
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("bench: png: %w", err)
	}
	return nil
}

// px converts pixels at plotDPI to a vg length.
func px(n int) vg.Length { return vg.Length(n) * vg.Inch / plotDPI }

// ratioPanel draws the ratios as bars per slot, with the parity line.
func (c chart) ratioPanel() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = c.title + "\n" + c.subtitle
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = c.ratioAxis
	p.Y.Min = 0
	p.NominalX(c.slots...)
	p.Add(horizontalGrid())
	width := barWidth(len(c.slots), len(c.ratios))
	for j, s := range c.ratios {
		vals := make(plotter.Values, len(s.values))
		labels := plotter.XYLabels{}
		for i, v := range s.values {
			if math.IsNaN(v) || v < 0 {
				v = 0
			}
			vals[i] = v
			x := float64(i) + offsetFor(j, len(c.ratios))
			labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: v})
			labels.Labels = append(labels.Labels, fmt.Sprintf("%.2fx", v))
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, fmt.Errorf("bench: plot: %w", err)
		}
		bars.Color, bars.LineStyle.Width = s.colour, 0
		bars.Offset = (vg.Length(j) - vg.Length(len(c.ratios)-1)/2) * width
		p.Add(bars)
		if len(c.ratios) > 1 {
			p.Legend.Add(s.name, bars)
		}
		if err := addLabels(p, labels, s.colour); err != nil {
			return nil, err
		}
	}
	parity, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1}, {X: float64(len(c.slots)) - 0.5, Y: 1}})
	if err != nil {
		return nil, fmt.Errorf("bench: plot: %w", err)
	}
	parity.Color, parity.Width, parity.Dashes = parityColour(), vg.Points(1.5), []vg.Length{vg.Points(6), vg.Points(4)}
	p.Add(parity)
	p.Legend.Add("parity (1x)", parity)
	// Headroom above the bars for the values and the legend.
	p.Legend.Top = true
	p.Y.Max = max(p.Y.Max, 1.1) * 1.35
	return p, nil
}

// latencyPanel draws each system's p99 (filled) and p50 (hollow) per slot
// on a log scale, p99 values written beside the points.
func (c chart) latencyPanel() (*plot.Plot, error) {
	p := plot.New()
	p.Y.Label.Text = c.latAxis
	p.NominalX(c.slots...)
	// The same slots as the bar panel above, however far the points spread.
	p.X.Min, p.X.Max = -0.5, float64(len(c.slots))-0.5
	p.Add(horizontalGrid())
	lo, hi := math.Inf(1), 0.0
	for j, s := range c.p99 {
		off := offsetFor(j, len(c.p99))
		pts, labels := plotter.XYs{}, plotter.XYLabels{}
		for i, v := range s.values {
			if v > 0 {
				pts = append(pts, plotter.XY{X: float64(i) + off, Y: v})
				labels.XYs = append(labels.XYs, plotter.XY{X: float64(i) + off, Y: v})
				labels.Labels = append(labels.Labels, trimFloat(v))
			}
		}
		if len(pts) == 0 {
			continue
		}
		for _, pt := range pts {
			lo, hi = min(lo, pt.Y), max(hi, pt.Y)
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, fmt.Errorf("bench: plot: %w", err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: s.colour, Radius: vg.Points(4), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		p.Legend.Add(s.name, sc)
		if err := addLabels(p, labels, s.colour); err != nil {
			return nil, err
		}
		if j < len(c.p50) {
			l, err := addP50(p, c.p50[j], off)
			if err != nil {
				return nil, err
			}
			lo = min(lo, l)
		}
	}
	p.Legend.Top = true
	if hi > 0 {
		// Whole decades, so both ends carry a label, and more than half a
		// decade above the highest point for its label and the legend.
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi)+0.6))
	}
	return p, nil
}

// addP50 draws one system's p50 as hollow points and returns the lowest
// (+Inf for none).
func addP50(p *plot.Plot, s series, off float64) (float64, error) {
	pts, lo := plotter.XYs{}, math.Inf(1)
	for i, v := range s.values {
		if v > 0 {
			pts = append(pts, plotter.XY{X: float64(i) + off, Y: v})
			lo = min(lo, v)
		}
	}
	if len(pts) == 0 {
		return lo, nil
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return lo, fmt.Errorf("bench: plot: %w", err)
	}
	sc.GlyphStyle = draw.GlyphStyle{Color: s.colour, Radius: vg.Points(3), Shape: draw.RingGlyph{}}
	p.Add(sc)
	return lo, nil
}

// addLabels writes labels just above their points, in colour.
func addLabels(p *plot.Plot, l plotter.XYLabels, colour color.Color) error {
	if len(l.Labels) == 0 {
		return nil
	}
	lab, err := plotter.NewLabels(l)
	if err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	for i := range lab.TextStyle {
		lab.TextStyle[i].Color = colour
		lab.TextStyle[i].Font.Size = vg.Points(8)
		lab.TextStyle[i].XAlign = draw.XCenter
	}
	lab.Offset = vg.Point{Y: vg.Points(4)}
	p.Add(lab)
	return nil
}

func horizontalGrid() *plotter.Grid {
	g := plotter.NewGrid()
	g.Vertical.Width = 0
	g.Horizontal.Color = color.Gray{Y: 225}
	return g
}

// offsetFor is where the j-th of n series sits within a slot, in slots.
func offsetFor(j, n int) float64 { return (float64(j) - float64(n-1)/2) * 0.8 / float64(max(n, 1)) }

// barWidth divides 80% of a slot's width among n bars.
func barWidth(slots, n int) vg.Length {
	return px(plotW-160) * 0.8 / vg.Length(max(slots, 1)*max(n, 1))
}

// trimFloat prints v with about three significant digits.
func trimFloat(v float64) string {
	var s string
	switch {
	case v >= 100:
		s = fmt.Sprintf("%.0f", v)
	case v >= 10:
		s = fmt.Sprintf("%.1f", v)
	case v >= 1:
		s = fmt.Sprintf("%.2f", v)
	default:
		s = fmt.Sprintf("%.3f", v)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// PNG draws the report: the Rhizome/etcd throughput ratio per cell, and
// both systems' p99 (and p50) latency per cell on a log scale.
func (r *Report) PNG(w io.Writer) error {
	per := r.Config.Duration + " per cell"
	if r.Config.Requests > 0 {
		per = fmt.Sprintf("%d requests per cell", r.Config.Requests)
	}
	sub := fmt.Sprintf("%s in %d alternating rounds, %s warm-up, fsync on, %dB keys, %dB values; %d CPUs, load1 %.2f before, %.2f after; %s",
		per, r.Config.Rounds, r.Config.Warmup, r.Config.KeySize, r.Config.ValueSize, r.Host.CPUs, r.Host.LoadBefore, r.Host.LoadAfter, r.Started)
	if lo, hi, ok := r.otherCores(); ok {
		sub += fmt.Sprintf("; other processes used %.2f-%.2f cores", lo, hi)
	}
	c := chart{
		title:     fmt.Sprintf("Rhizome %s vs %s", orDash(r.Host.RhizomeCommit), orDash(r.Host.EtcdVersion)),
		subtitle:  sub,
		ratioAxis: "throughput, Rhizome/etcd (higher is better)",
		latAxis:   "latency, ms (log; filled p99, hollow p50)",
		ratios:    []series{{name: "rhizome/etcd", colour: systemColour(SystemRhizome)}},
	}
	for _, sys := range []string{SystemRhizome, SystemEtcd} {
		c.p99 = append(c.p99, series{name: sys, colour: systemColour(sys)})
		c.p50 = append(c.p50, series{name: sys, colour: systemColour(sys)})
	}
	for _, cmp := range r.Comparisons {
		n := fmt.Sprintf("%d clients", cmp.Clients)
		if cmp.Clients == 1 {
			n = "1 client"
		}
		c.slots = append(c.slots, shortWorkload(cmp.Workload)+"\n"+n)
		c.ratios[0].values = append(c.ratios[0].values, cmp.ThroughputRatio)
		for j, sys := range []string{SystemRhizome, SystemEtcd} {
			x, ok := r.cell(cmp.Workload, cmp.Clients, sys)
			if !ok {
				x = Cell{}
			}
			c.p99[j].values = append(c.p99[j].values, x.P99Ms)
			c.p50[j].values = append(c.p50[j].values, x.P50Ms)
		}
	}
	return c.png(w)
}

func shortWorkload(w string) string {
	switch w {
	case WorkloadRangeSerializable:
		return "range-ser"
	case WorkloadRangeLinearizable:
		return "range-lin"
	}
	return w
}

// logTicks labels a log axis at 1, 2 and 5 times each power of ten, in
// plain numbers (gonum's LogTicks labels the powers alone, and in exponent
// form).
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: trimFloat(v)})
			}
		}
	}
	return ticks
}
