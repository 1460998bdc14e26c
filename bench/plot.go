package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"
)

// Plot geometry and colours. The plot has two panels over the same cells:
// the throughput ratio, then p99 latency of both systems on a log scale.
const (
	plotW, plotH   = 1280, 900
	marginL        = 110
	marginR        = 30
	panelH         = 290
	panel1Top      = 90
	panel2Top      = 500
	labelScale     = 2
	valueScale     = 2
	smallTextScale = 1
)

// palette holds the plot's colours; a function, not package variables, so
// nothing in the package is mutable shared state.
type palette struct {
	background, axis, grid, text color.RGBA
	better, worse                color.RGBA // ratio bars at or above parity, below it
	rhizome, etcd                color.RGBA // p99 bars
	parity                       color.RGBA
}

func defaultPalette() palette {
	return palette{
		background: color.RGBA{255, 255, 255, 255},
		axis:       color.RGBA{40, 40, 40, 255},
		grid:       color.RGBA{225, 225, 225, 255},
		text:       color.RGBA{20, 20, 20, 255},
		better:     color.RGBA{46, 139, 87, 255},
		worse:      color.RGBA{214, 96, 40, 255},
		rhizome:    color.RGBA{49, 110, 190, 255},
		etcd:       color.RGBA{150, 150, 150, 255},
		parity:     color.RGBA{200, 30, 30, 255},
	}
}

// PNG draws the report: the Rhizome/etcd throughput ratio per cell, and both
// systems' p99 latency per cell.
func (r *Report) PNG(w io.Writer) error {
	pal := defaultPalette()
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), &image.Uniform{pal.background}, image.Point{}, draw.Src)
	f := parseFont()

	title := fmt.Sprintf("Rhizome %s vs %s", orDash(r.Host.RhizomeCommit), orDash(r.Host.EtcdVersion))
	f.drawText(img, marginL, 16, title, 3, pal.text)
	per := r.Config.Duration + " per cell"
	if r.Config.Requests > 0 {
		per = fmt.Sprintf("%d requests per cell", r.Config.Requests)
	}
	sub := fmt.Sprintf("%s in %d alternating rounds, %s warm-up, fsync on, %dB keys, %dB values; %d CPUs, load1 %.2f before, %.2f after; %s",
		per, r.Config.Rounds, r.Config.Warmup, r.Config.KeySize, r.Config.ValueSize, r.Host.CPUs, r.Host.LoadBefore, r.Host.LoadAfter, r.Started)
	if lo, hi, ok := r.otherCores(); ok {
		sub += fmt.Sprintf("; other processes used %.2f-%.2f cores", lo, hi)
	}
	f.drawText(img, marginL, 48, sub, 1, pal.text)

	n := len(r.Comparisons)
	if n == 0 {
		f.drawText(img, marginL, panel1Top+40, "no cells measured", labelScale, pal.text)
		return encodePNG(w, img)
	}
	slot := float64(plotW-marginL-marginR) / float64(n)
	slotX := func(i int) int { return marginL + int(float64(i)*slot) }

	// Panel 1: throughput ratio, linear from 0.
	maxRatio := 1.25
	for _, c := range r.Comparisons {
		maxRatio = max(maxRatio, c.ThroughputRatio*1.15)
	}
	step := niceStep(maxRatio / 5)
	top := math.Ceil(maxRatio/step) * step
	y1 := func(v float64) int { return panel1Top + panelH - int(v/top*panelH) }
	f.drawText(img, marginL, panel1Top-26, "Throughput, Rhizome/etcd (higher is better; red line = parity)", labelScale, pal.text)
	for v := 0.0; v <= top+step/2; v += step {
		y := y1(v)
		hline(img, marginL, plotW-marginR, y, pal.grid)
		label := strings.TrimSuffix(fmt.Sprintf("%.2f", v), "0") + "x"
		f.drawText(img, marginL-10-textWidth(label, labelScale), y-glyphH*labelScale/2, label, labelScale, pal.text)
	}
	for i, c := range r.Comparisons {
		x0, x1 := slotX(i), slotX(i+1)
		bw := int(slot * 0.5)
		bx := (x0+x1)/2 - bw/2
		col := pal.better
		if c.ThroughputRatio < 1 {
			col = pal.worse
		}
		fill(img, image.Rect(bx, y1(c.ThroughputRatio), bx+bw, y1(0)), col)
	}
	dashedHLine(img, marginL, plotW-marginR, y1(1), pal.parity)
	// Values go on top of the parity line, on a clear background, so a
	// ratio near 1 stays legible.
	for i, c := range r.Comparisons {
		x0, x1 := slotX(i), slotX(i+1)
		v := fmt.Sprintf("%.2fx", c.ThroughputRatio)
		tx, ty := (x0+x1)/2-textWidth(v, valueScale)/2, y1(c.ThroughputRatio)-glyphH*valueScale-6
		fill(img, image.Rect(tx-3, ty-3, tx+textWidth(v, valueScale)+3, ty+glyphH*valueScale+3), pal.background)
		f.drawText(img, tx, ty, v, valueScale, pal.text)
	}
	axes(img, panel1Top, pal.axis)
	cellLabels(img, f, r.Comparisons, slotX, panel1Top+panelH+8, pal.text)

	// Panel 2: p99 of both systems, log scale over whole decades.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range r.Comparisons {
		for _, sys := range []string{SystemRhizome, SystemEtcd} {
			if x, ok := r.cell(c.Workload, c.Clients, sys); ok && x.P99Ms > 0 {
				lo, hi = min(lo, x.P99Ms), max(hi, x.P99Ms)
			}
		}
	}
	y2 := logPanel(img, f, pal, lo, hi, "p99 latency, ms (log scale; lower is better)")
	for i, c := range r.Comparisons {
		x0, x1 := slotX(i), slotX(i+1)
		bw := int(slot * 0.3)
		mid := (x0 + x1) / 2
		for j, sys := range []string{SystemRhizome, SystemEtcd} {
			x, ok := r.cell(c.Workload, c.Clients, sys)
			if !ok {
				continue
			}
			bx := mid - bw - 2
			col := pal.rhizome
			if j == 1 {
				bx, col = mid+2, pal.etcd
			}
			fill(img, image.Rect(bx, y2(x.P99Ms), bx+bw, y2(0)), col)
			v := trimFloat(x.P99Ms)
			f.drawText(img, bx+bw/2-textWidth(v, smallTextScale)/2, y2(x.P99Ms)-glyphH*smallTextScale-4, v, smallTextScale, pal.text)
		}
	}
	axes(img, panel2Top, pal.axis)
	cellLabels(img, f, r.Comparisons, slotX, panel2Top+panelH+8, pal.text)
	// Legend, top right of panel 2.
	lx := plotW - marginR - 300
	for j, item := range []struct {
		name string
		col  color.Color
	}{{"rhizome", pal.rhizome}, {"etcd", pal.etcd}} {
		x := lx + j*150
		fill(img, image.Rect(x, panel2Top-26, x+20, panel2Top-26+glyphH*labelScale), item.col)
		f.drawText(img, x+28, panel2Top-26, item.name, labelScale, pal.text)
	}
	return encodePNG(w, img)
}

// logPanel draws the second panel's title and a log-scale grid over whole decades
// spanning [lo, hi] (lo = +Inf: no data), and returns the value-to-y mapping.
func logPanel(img *image.RGBA, f font, pal palette, lo, hi float64, title string) func(float64) int {
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi)+0.15)
	if dHi <= dLo {
		dHi = dLo + 1
	}
	y2 := func(v float64) int {
		v = max(v, math.Pow(10, dLo))
		return panel2Top + panelH - int((math.Log10(v)-dLo)/(dHi-dLo)*panelH)
	}
	f.drawText(img, marginL, panel2Top-26, title, labelScale, pal.text)
	for d := dLo; d <= dHi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if d == dHi && m > 1 {
				break
			}
			y := y2(v)
			hline(img, marginL, plotW-marginR, y, pal.grid)
			label := trimFloat(v)
			scale := labelScale
			if m > 1 {
				scale = smallTextScale
			}
			f.drawText(img, marginL-10-textWidth(label, scale), y-glyphH*scale/2, label, scale, pal.text)
		}
	}
	return y2
}

// cellLabels writes each cell's workload and client count under its slot.
func cellLabels(img *image.RGBA, f font, cs []Comparison, slotX func(int) int, y int, c color.Color) {
	for i, cmp := range cs {
		mid := (slotX(i) + slotX(i+1)) / 2
		name := shortWorkload(cmp.Workload)
		f.drawText(img, mid-textWidth(name, labelScale)/2, y, name, labelScale, c)
		n := fmt.Sprintf("%d clients", cmp.Clients)
		if cmp.Clients == 1 {
			n = "1 client"
		}
		f.drawText(img, mid-textWidth(n, labelScale)/2, y+glyphH*labelScale+6, n, labelScale, c)
	}
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

func axes(img *image.RGBA, top int, c color.Color) {
	vline(img, marginL, top, top+panelH, c)
	hline(img, marginL, plotW-marginR, top+panelH, c)
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
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

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r.Canon(), &image.Uniform{c}, image.Point{}, draw.Src)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	fill(img, image.Rect(x0, y, x1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	fill(img, image.Rect(x, y0, x+1, y1), c)
}

func dashedHLine(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x < x1; x += 12 {
		fill(img, image.Rect(x, y-1, min(x+7, x1), y+1), c)
	}
}

func encodePNG(w io.Writer, img image.Image) error {
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("bench: png: %w", err)
	}
	return nil
}
