package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/simulator"
)

// Layout of the sweep chart, in pixels.
const (
	chartWidth  = 640 // the plot area
	chartHeight = 360
	chartLeft   = 70  // the y axis's labels
	chartRight  = 240 // the legend
	chartTop    = 44  // the title
	chartBottom = 52  // the x axis's labels
)

// palette colours the lines of a chart, in order.
var palette = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

// dashes tell lines apart where they lie on top of each other, in order
// with palette.
var dashes = []string{"none", "8 4", "2 3", "10 3 2 3", "4 4", "1 2", "12 2", "6 2 2 2"}

// ParamValue reads a swept parameter's value as a number for a chart's x
// axis: seconds for a duration ("2.5s" is 2.5), else the number itself.
func ParamValue(v string) (float64, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("regroup: parameter value %q is neither a number nor a duration", v)
	}
	return d.Seconds(), nil
}

// SweepSVG writes a self-contained SVG line chart of a sweep: for metric,
// one line per variant (colour and dashes of its own) through its means at
// each value of the parameter,
// in a band (and whiskers) spanning the 95% confidence interval, with
// axes, ticks and a legend. rows are StatRows of one parameter, in the
// order the sweep ran them (variant by variant, values increasing).
func SweepSVG(w io.Writer, rows []StatRow, metric, title string) error {
	type point struct{ x, mean, lo, hi float64 }
	var lines [][]point
	var names []string
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	param := ""
	for _, r := range rows {
		x, err := ParamValue(r.Value)
		if err != nil {
			return err
		}
		param = r.Param
		name := lineName(r.Variant, rows)
		if len(names) == 0 || names[len(names)-1] != name {
			names = append(names, name)
			lines = append(lines, nil)
		}
		for _, s := range r.Stats {
			if s.Metric != metric || s.N == 0 {
				continue
			}
			lines[len(lines)-1] = append(lines[len(lines)-1], point{x, s.Mean, s.Lo, s.Hi})
			xmin, xmax, ymax = min(xmin, x), max(xmax, x), max(ymax, s.Hi, s.Mean)
		}
	}
	if math.IsInf(xmin, 1) {
		return fmt.Errorf("regroup: no values of metric %q to draw", metric)
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	ystep := niceStep(ymax / 5)
	if ymax <= 0 {
		ystep = 1
	}
	ytop := ystep * math.Ceil(ymax/ystep)
	if ytop <= 0 {
		ytop = ystep
	}
	x := func(v float64) float64 { return chartLeft + chartWidth*(v-xmin)/(xmax-xmin) }
	y := func(v float64) float64 { return chartTop + chartHeight*(1-max(v, 0)/ytop) }

	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	width, height := chartLeft+chartWidth+chartRight, chartTop+chartHeight+chartBottom
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", chartLeft, html.EscapeString(title))
	// Grid, ticks and labels.
	for v := 0.0; v <= ytop+ystep/2; v += ystep {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			chartLeft, y(v), chartLeft+chartWidth, y(v), chartLeft-6, y(v)+4, tick(v))
	}
	xstep := niceStep((xmax - xmin) / 8)
	for v := xstep * math.Ceil(xmin/xstep); v <= xmax+xstep/1e6; v += xstep {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n",
			x(v), chartTop, x(v), chartTop+chartHeight, x(v), chartTop+chartHeight+16, tick(v))
	}
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", chartLeft, chartTop, chartWidth, chartHeight)
	p(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", chartLeft+chartWidth/2, chartTop+chartHeight+38, html.EscapeString(axisLabel(param)))
	p(`<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">%s (mean, 95%% interval)</text>`+"\n", chartTop+chartHeight/2, html.EscapeString(metricLabel(metric)))
	// Bands, whiskers, lines and points.
	for i, pts := range lines {
		c := palette[i%len(palette)]
		if len(pts) > 1 {
			p(`<polygon fill="%s" fill-opacity="0.15" stroke="none" points="`, c)
			for _, q := range pts {
				p("%.1f,%.1f ", x(q.x), y(q.hi))
			}
			for k := len(pts) - 1; k >= 0; k-- {
				p("%.1f,%.1f ", x(pts[k].x), y(pts[k].lo))
			}
			p(`"/>` + "\n")
		}
		for _, q := range pts {
			p(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`+"\n", x(q.x), y(q.lo), x(q.x), y(q.hi), c)
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s" points="`, c, dashes[i%len(dashes)])
		for _, q := range pts {
			p("%.1f,%.1f ", x(q.x), y(q.mean))
		}
		p(`"/>` + "\n")
		for _, q := range pts {
			p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s = %s: %s [%s, %s]</title></circle>`+"\n",
				x(q.x), y(q.mean), c, html.EscapeString(param), tick(q.x), num(q.mean), num(q.lo), num(q.hi))
		}
		ly := chartTop + 10 + 20*i
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3" stroke-dasharray="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			chartLeft+chartWidth+14, ly, chartLeft+chartWidth+44, ly, c, dashes[i%len(dashes)], chartLeft+chartWidth+50, ly+4, html.EscapeString(names[i]))
	}
	p("</svg>\n")
	return bw.Flush()
}

// lineName names v's line by what sets it apart from the other rows'
// variants: its protocol, assignor and membership, leaving out what all
// share.
func lineName(v simulator.Variant, rows []StatRow) string {
	if v.Assignor == "" {
		return "as scenario"
	}
	parts := []func(simulator.Variant) string{
		func(v simulator.Variant) string { return v.ProtocolName() },
		func(v simulator.Variant) string { return v.Assignor },
		membership,
	}
	var name []string
	for _, part := range parts {
		same := true
		for _, r := range rows {
			same = same && part(r.Variant) == part(v)
		}
		if !same {
			name = append(name, part(v))
		}
	}
	if len(name) == 0 {
		return v.String()
	}
	return strings.Join(name, ", ")
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// tick formats an axis value without trailing zeros.
func tick(v float64) string { return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64) }

// axisLabel names a parameter's axis with its unit.
func axisLabel(param string) string {
	switch param {
	case "members", "partitions":
		return param
	}
	return param + " (s)"
}

// metricLabel names a metric's axis with its unit.
func metricLabel(metric string) string {
	switch metric {
	case "unowned", "not-processing":
		return metric + " (partition-seconds)"
	case "rebalance-median", "rebalance-max", "settled-max", "stable":
		return metric + " (s)"
	}
	return metric
}
