package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"time"

	"github.com/regroup-dev/regroup/simulator"
)

// Layout of the timeline, in pixels.
const (
	svgLeft   = 90  // member names
	svgWidth  = 960 // the time axis
	svgRow    = 16  // one member
	svgTop    = 56  // title and legend
	svgBottom = 40  // time axis labels
)

// SVG writes a self-contained SVG timeline of tl: one row per member,
// filled in proportion to the partitions it owns over time, with its
// pauses (orange), its cuts from the coordinator (red hatching), its
// crashes (red crosses) and the times it was not running (blank); purple
// bands mark rebalances (hover for the cause) and grey bands failovers; the
// last row shows how many partitions had no owner.
func SVG(w io.Writer, tl *simulator.Timeline, title string) error {
	bw := bufio.NewWriter(w)
	end := tl.End
	if end <= 0 {
		end = time.Second
	}
	x := func(t time.Duration) float64 { return svgLeft + float64(svgWidth)*float64(t)/float64(end) }
	maxOwned := 1
	for _, m := range tl.Members {
		for _, s := range m.Owned {
			maxOwned = max(maxOwned, s.Value)
		}
	}
	maxParts := 1
	for _, s := range tl.Partitions {
		maxParts = max(maxParts, s.Value)
	}
	rows := len(tl.Members) + 1
	height := svgTop + rows*svgRow + 8 + svgBottom
	width := svgLeft + svgWidth + 20
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	p(`<defs><pattern id="cut" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#d62728" fill-opacity="0.45"/></pattern></defs>` + "\n")
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(title))
	legend := []struct{ color, label string }{
		{"#1f77b4", fmt.Sprintf("partitions owned (row full = %d)", maxOwned)},
		{"#ff7f0e", "paused"}, {"url(#cut)", "cut off"}, {"#9467bd", "rebalance"}, {"#7f7f7f", "failover"}, {"#d62728", "no owner / crash"},
	}
	lx := svgLeft
	for _, l := range legend {
		p(`<rect x="%d" y="30" width="12" height="10" fill="%s" fill-opacity="0.7"/><text x="%d" y="39">%s</text>`+"\n", lx, l.color, lx+16, html.EscapeString(l.label))
		lx += 24 + 6*len(l.label)
	}
	bottom := svgTop + rows*svgRow
	for i, m := range tl.Members {
		y := svgTop + i*svgRow
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLeft-6, y+svgRow-4, html.EscapeString(m.Name))
		for _, s := range m.Running {
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#e8eef5"/>`+"\n", x(s.From), y+1, max(x(s.To)-x(s.From), 0.5), svgRow-2)
		}
		steps(bw, m.Owned, end, x, float64(y+svgRow-1), float64(svgRow-2)/float64(maxOwned), "#1f77b4")
		for _, s := range m.Paused {
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#ff7f0e" fill-opacity="0.6"><title>paused %v to %v</title></rect>`+"\n",
				x(s.From), y+1, max(x(s.To)-x(s.From), 1), svgRow-2, round(s.From), round(s.To))
		}
		for _, s := range m.Cut {
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="url(#cut)"><title>cut off %v to %v</title></rect>`+"\n",
				x(s.From), y+1, max(x(s.To)-x(s.From), 1), svgRow-2, round(s.From), round(s.To))
		}
		for _, c := range m.Crashes {
			cx, cy := x(c), float64(y+svgRow/2)
			p(`<path d="M%.1f %.1fl8 8m0 -8l-8 8" stroke="#d62728" stroke-width="2"><title>crash at %v</title></path>`+"\n", cx-4, cy-4, round(c))
		}
	}
	for _, r := range tl.Rebalances {
		x0, x1 := x(r.Start), x(r.End)
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#9467bd" fill-opacity="0.25"><title>%s</title></rect>`+"\n",
			x0, svgTop, max(x1-x0, 1.5), rows*svgRow, html.EscapeString(fmt.Sprintf("generation %d (%s) %v to %v: %s", r.Generation, r.CauseKind, round(r.Start), round(r.End), r.Cause)))
	}
	for _, f := range tl.Failovers {
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#7f7f7f" fill-opacity="0.35"><title>failover %v to %v</title></rect>`+"\n",
			x(f.From), svgTop, max(x(f.To)-x(f.From), 1), rows*svgRow, round(f.From), round(f.To))
	}
	y := svgTop + len(tl.Members)*svgRow
	p(`<text x="%d" y="%d" text-anchor="end" fill="#d62728">no owner</text>`+"\n", svgLeft-6, y+svgRow-4)
	steps(bw, tl.Unowned, end, x, float64(y+svgRow-1), float64(svgRow-2)/float64(maxParts), "#d62728")
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", svgLeft, bottom+4, svgLeft+svgWidth, bottom+4)
	tick := niceTick(end)
	for t := time.Duration(0); t <= end; t += tick {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/><text x="%.1f" y="%d" text-anchor="middle">%v</text>`+"\n",
			x(t), bottom+4, x(t), bottom+8, x(t), bottom+20, t)
	}
	p(`<text x="%d" y="%d" text-anchor="middle">virtual time</text>`+"\n", svgLeft+svgWidth/2, bottom+34)
	p("</svg>\n")
	return bw.Flush()
}

// steps draws a step function as bars rising from base.
func steps(w io.Writer, ss []simulator.Step, end time.Duration, x func(time.Duration) float64, base, scale float64, color string) {
	for i, s := range ss {
		if s.Value <= 0 {
			continue
		}
		to := end
		if i+1 < len(ss) {
			to = ss[i+1].At
		}
		h := float64(s.Value) * scale
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="0.8"/>`+"\n",
			x(s.At), base-h, max(x(to)-x(s.At), 0.3), h, color)
	}
}

// niceTick returns a round tick interval giving 5 to 12 ticks over end.
func niceTick(end time.Duration) time.Duration {
	for _, t := range []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
	} {
		if end/t <= 12 {
			return t
		}
	}
	return end / 10
}
