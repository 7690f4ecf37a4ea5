package report

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/regroup-dev/regroup/simulator"
)

// Layout of the timeline, in pixels.
const (
	svgLeft   = 90  // member names
	svgWidth  = 960 // the time axis
	svgRow    = 16  // one member
	svgTotal  = 28  // the no-owner and not-processing rows
	svgTop    = 74  // title and legend
	svgBottom = 40  // time axis labels
	// svgRes is the steps' resolution: half a pixel. A step function is
	// drawn with one value per column, the largest (or smallest) it takes
	// there, so that a blip shorter than a column still shows.
	svgRes = 0.5
)

// svgStyle gives every state its class: a test, or a reader's stylesheet,
// finds them by name.
const svgStyle = `<style>
.running{stroke:#eef2f7;stroke-width:14}
.owned{fill:#9ecae1}
.processing{fill:#1f77b4}
.revoking{stroke:#bcbd22;stroke-opacity:.75;stroke-width:14}
rect.revoking{fill:#bcbd22;stroke:none}
.paused{fill:#ff7f0e;fill-opacity:.6}
.cut{fill:url(#cut)}
.lost{fill:url(#lost)}
path.lost{fill:none;stroke:url(#lost);stroke-width:14}
.on-lost{fill:black}
.crash{stroke:#d62728;stroke-width:2}
.rebalance{fill:#9467bd;fill-opacity:.25}
.failover{fill:#7f7f7f;fill-opacity:.35}
.unowned{fill:#d62728}
.not-processing{fill:#8c564b}
</style>
`

// Window returns the part of tl that SVG draws unless told otherwise: its
// action (from the first disturbance after the start until the groups
// settled after the last one) with a margin of a tenth of its length on
// each side, at least 5 s, within the run.
func Window(tl *simulator.Timeline) (from, to time.Duration) {
	margin := max((tl.Action.To-tl.Action.From)/10, 5*time.Second)
	return max(tl.Action.From-margin, 0), min(tl.Action.To+margin, tl.End)
}

// SVG writes a self-contained SVG timeline of tl from from to to (see
// Window; a to past the end of the run stops at the end). One row per
// member: light blue for the partitions it owns, dark blue for those it
// processes, so that what it owns but does not process shows; olive while
// an OnRevoked runs (it still owns those partitions), orange while it is
// paused, dark hatching from the end of its lease until its OnLost call
// (marked by a black triangle), red hatching while it is cut off from the
// coordinator, red crosses for crashes, blank while not running. Purple
// bands mark rebalances (hover for the cause), grey bands failovers. The
// last two rows count the partitions with no owner and those not
// processed, each scaled to its own largest value in the window, so that
// small losses show. Step functions are drawn at half-pixel resolution,
// which bounds the size: a 100-member hour of churn takes about 150 KB.
func SVG(w io.Writer, tl *simulator.Timeline, title string, from, to time.Duration) error {
	to = min(to, tl.End)
	if to <= from {
		return fmt.Errorf("regroup: the timeline from %v to %v is empty: the run lasted %v; give a --from before --to", from, to, tl.End)
	}
	bw := bufio.NewWriter(w)
	x := func(t time.Duration) float64 {
		return svgLeft + svgWidth*float64(min(max(t, from), to)-from)/float64(to-from)
	}
	in := func(s simulator.Span) bool { return s.To >= from && s.From <= to }
	maxOwned := 1
	for _, m := range tl.Members {
		maxOwned = max(maxOwned, maxIn(m.Owned, from, to))
	}
	memberRows := len(tl.Members)
	height := svgTop + memberRows*svgRow + 2*svgTotal + 8 + svgBottom
	width := svgLeft + svgWidth + 20
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	p(`<defs><pattern id="cut" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#d62728" fill-opacity="0.45"/></pattern>`)
	p(`<pattern id="lost" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect width="2" height="4" fill="#3b0a0a" fill-opacity="0.8"/></pattern></defs>` + "\n")
	p(svgStyle)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, html.EscapeString(title))
	if from > 0 || to < tl.End {
		p(`<text x="%d" y="18" text-anchor="end" fill="#555">%v to %v of %v</text>`+"\n", svgLeft+svgWidth, round(from), round(to), round(tl.End))
	}
	legend := []struct{ class, label string }{
		{"processing", fmt.Sprintf("processing (row full = %d)", maxOwned)}, {"owned", "owned, not processing"},
		{"revoking", "revoking"}, {"paused", "paused"}, {"lost", "past its lease"}, {"cut", "cut off"},
		{"rebalance", "rebalance"}, {"failover", "failover"},
	}
	lx, ly := svgLeft, 30
	for _, l := range legend {
		if lx+24+6*len(l.label) > svgLeft+svgWidth {
			lx, ly = svgLeft, ly+16
		}
		p(`<rect x="%d" y="%d" width="12" height="10" class="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, ly, l.class, lx+16, ly+9, html.EscapeString(l.label))
		lx += 24 + 6*len(l.label)
	}
	p(`<path d="M%d %dh10l-5 8z" class="on-lost"/><text x="%d" y="%d">OnLost</text>`+"\n", lx, ly, lx+16, ly+9)
	lx += 24 + 6*len("OnLost")
	p(`<path d="M%d %dl8 8m0 -8l-8 8" class="crash"/><text x="%d" y="%d">crash</text>`+"\n", lx+2, ly+1, lx+16, ly+9)

	for i, m := range tl.Members {
		y := svgTop + i*svgRow
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLeft-6, y+svgRow-4, html.EscapeString(m.Name))
		spans(bw, "running", m.Running, x, in, y+svgRow/2)
		scale := float64(svgRow-2) / float64(maxOwned)
		// What it owns, in the colour of processing, then what it owns
		// but does not process, in light blue from the bottom of the bar:
		// mostly nothing, so that the picture stays small. Under a
		// revocation's mark it goes without saying, and is not drawn.
		stepPath(bw, "processing", m.Owned, from, to, float64(y+svgRow-1), scale, maxOwned, nil)
		stepPath(bw, "owned", minus(m.Owned, m.Processing), from, to, float64(y+svgRow-1), scale, maxOwned, m.Revoking)
		spans(bw, "revoking", m.Revoking, x, in, y+svgRow/2)
		var lost []simulator.Span
		for _, l := range m.Lost {
			lost = append(lost, simulator.Span{From: l.Lease, To: l.At})
		}
		spans(bw, "lost", lost, x, in, y+svgRow/2)
		for _, s := range m.Paused {
			if in(s) {
				p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" class="paused"><title>paused %v to %v</title></rect>`+"\n",
					x(s.From), y+1, max(x(s.To)-x(s.From), 1), svgRow-2, round(s.From), round(s.To))
			}
		}
		for _, s := range m.Cut {
			if in(s) {
				p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" class="cut"><title>cut off %v to %v</title></rect>`+"\n",
					x(s.From), y+1, max(x(s.To)-x(s.From), 1), svgRow-2, round(s.From), round(s.To))
			}
		}
		for _, l := range m.Lost {
			if l.At >= from && l.At <= to {
				p(`<path d="M%.1f %dh8l-4 7z" class="on-lost"><title>OnLost at %v: %d partitions, whose lease ended at %v</title></path>`+"\n",
					x(l.At)-4, y, round(l.At), l.Partitions, round(l.Lease))
			}
		}
		for _, c := range m.Crashes {
			if c >= from && c <= to {
				p(`<path d="M%.1f %.1fl8 8m0 -8l-8 8" class="crash"><title>crash at %v</title></path>`+"\n", x(c)-4, float64(y+svgRow/2)-4, round(c))
			}
		}
	}
	bottom := svgTop + memberRows*svgRow + 2*svgTotal
	for _, r := range tl.Rebalances {
		if in(simulator.Span{From: r.Start, To: r.End}) {
			x0, x1 := x(r.Start), x(r.End)
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" class="rebalance"><title>%s</title></rect>`+"\n",
				x0, svgTop, max(x1-x0, 1.5), bottom-svgTop, html.EscapeString(fmt.Sprintf("generation %d (%s) %v to %v: %s", r.Generation, r.CauseKind, round(r.Start), round(r.End), r.Cause)))
		}
	}
	for _, f := range tl.Failovers {
		if in(f) {
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" class="failover"><title>failover %v to %v</title></rect>`+"\n",
				x(f.From), svgTop, max(x(f.To)-x(f.From), 1), bottom-svgTop, round(f.From), round(f.To))
		}
	}
	for i, row := range []struct {
		class, label string
		steps        []simulator.Step
	}{{"unowned", "no owner", tl.Unowned}, {"not-processing", "not processing", tl.NotProcessing}} {
		y := svgTop + memberRows*svgRow + i*svgTotal
		// Scaled to what follows the first disturbance, if the window
		// shows it: the initial join, when nothing is owned yet, would
		// flatten everything after it. Larger values are clipped.
		most := maxIn(row.steps, max(from, min(tl.Action.From, to)), to)
		clipped := ""
		if maxIn(row.steps, from, to) > most {
			clipped = ", clipped"
		}
		p(`<text x="%d" y="%d" text-anchor="end" class="%s">%s</text>`+"\n", svgLeft-6, y+svgTotal/2, row.class, row.label)
		p(`<text x="%d" y="%d" text-anchor="end" font-size="9" fill="#555">row = %d of %d%s</text>`+"\n", svgLeft-6, y+svgTotal/2+10, most, maxIn(tl.Partitions, from, to), clipped)
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ccc"/>`+"\n", svgLeft, y+svgTotal-1, svgLeft+svgWidth, y+svgTotal-1)
		stepPath(bw, row.class, row.steps, from, to, float64(y+svgTotal-1), float64(svgTotal-4)/float64(max(most, 1)), max(most, 1), nil)
	}
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", svgLeft, bottom+4, svgLeft+svgWidth, bottom+4)
	tick := niceTick(to - from)
	for t := (from + tick - 1) / tick * tick; t <= to; t += tick {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/><text x="%.1f" y="%d" text-anchor="middle">%v</text>`+"\n",
			x(t), bottom+4, x(t), bottom+8, x(t), bottom+20, t)
	}
	p(`<text x="%d" y="%d" text-anchor="middle">virtual time</text>`+"\n", svgLeft+svgWidth/2, bottom+34)
	p("</svg>\n")
	return bw.Flush()
}

// maxIn returns the largest value ss takes between from and to (a step
// at to, such as the end of the run's, takes no time there).
func maxIn(ss []simulator.Step, from, to time.Duration) int {
	most := 0
	for i, s := range ss {
		if s.At >= to {
			break
		}
		if i+1 < len(ss) && ss[i+1].At <= from {
			continue
		}
		most = max(most, s.Value)
	}
	return most
}

// spans draws spans as one path of class, a stroke along y (the class
// gives its width), merging those that touch at the drawing's resolution
// (each at least a pixel wide). Relative moves keep it short: a
// 100-member hour's revocations are thousands of spans.
func spans(w *bufio.Writer, class string, ss []simulator.Span, x func(time.Duration) float64, in func(simulator.Span) bool, y int) {
	var d []byte
	var x0, x1, at float64 // at: where the path's pen is
	open := false
	flush := func() {
		if !open {
			return
		}
		if len(d) == 0 {
			d = append(d, 'M')
			d = appendNum(d, x0)
			d = append(d, ' ')
			d = strconv.AppendInt(d, int64(y), 10)
		} else {
			d = append(d, 'm')
			d = appendNum(d, x0-at)
			d = append(d, " 0"...)
		}
		d = append(d, 'h')
		d = appendNum(d, max(x1-x0, 1))
		at = x0 + max(x1-x0, 1)
	}
	for _, s := range ss {
		if !in(s) {
			continue
		}
		a, b := x(s.From), x(s.To)
		if open && a <= max(x1, x0+1)+svgRes {
			x1 = max(x1, b)
			continue
		}
		flush()
		x0, x1, open = a, b, true
	}
	flush()
	if len(d) > 0 {
		fmt.Fprintf(w, `<path class="%s" d="%s"/>`+"\n", class, d)
	}
}

// appendNum appends v with at most one decimal, and no trailing zeros.
func appendNum(d []byte, v float64) []byte {
	return strconv.AppendFloat(d, math.Round(v*10)/10, 'f', -1, 64)
}

// stepPath draws the step function ss between from and to as one path of
// class, bars rising from base by scale per unit up to most (larger values
// are clipped): one value per column of svgRes pixels, the largest the
// function takes in it, merged where consecutive columns agree. The
// columns under the marks of hidden (spans drawn at least a pixel wide)
// keep the value of the column before.
func stepPath(w *bufio.Writer, class string, ss []simulator.Step, from, to time.Duration, base, scale float64, most int, hidden []simulator.Span) {
	n := int(svgWidth / svgRes)
	cols := make([]int, n)
	dt := float64(to-from) / float64(n)
	put := func(a, b time.Duration, v int) {
		a, b = max(a, from), min(b, to)
		if b <= a {
			return
		}
		c0 := int(float64(a-from) / dt)
		c1 := min(int(math.Ceil(float64(b-from)/dt)), n)
		for c := c0; c < c1; c++ {
			cols[c] = max(cols[c], v)
		}
	}
	prevAt, prev := time.Duration(math.MinInt64), 0
	for _, s := range ss {
		if s.At > to {
			break
		}
		put(prevAt, s.At, prev)
		prevAt, prev = s.At, s.Value
	}
	put(prevAt, to, prev)
	px := func(t time.Duration) float64 { return float64(min(max(t, from), to)-from) / dt }
	for _, h := range hidden {
		if h.To < from || h.From > to {
			continue
		}
		c0 := int(px(h.From))
		c1 := min(int(math.Ceil(max(px(h.To), px(h.From)+1/svgRes))), n)
		for c := max(c0, 1); c < c1; c++ {
			cols[c] = cols[c-1]
		}
	}
	// Relative moves after the first: the numbers are short.
	var d []byte
	level, penX, py, barStart := 0, 0.0, base, 0.0
	for c := 0; c <= n; c++ {
		v := 0
		if c < n {
			v = min(cols[c], most)
		}
		if v == level {
			continue
		}
		cx := svgLeft + float64(c)*svgRes
		cy := math.Round((base-float64(v)*scale)*10) / 10
		if level == 0 {
			if len(d) == 0 {
				d = append(d, 'M')
				d = appendNum(d, cx)
				d = append(d, ' ')
				d = appendNum(d, base)
			} else {
				d = append(d, 'm')
				d = appendNum(d, cx-penX)
				d = append(d, " 0"...)
			}
		} else {
			d = append(d, 'h')
			d = appendNum(d, cx-penX)
		}
		d = append(d, 'v')
		d = appendNum(d, cy-py)
		if v == 0 {
			d = append(d, 'z')
			// z returns the pen to the bar's start, on the base.
			cx = barStart
		}
		if level == 0 {
			barStart = cx
		}
		penX, py, level = cx, cy, v
	}
	if len(d) > 0 {
		fmt.Fprintf(w, `<path class="%s" d="%s"/>`+"\n", class, d)
	}
}

// minus returns the step function a - b.
func minus(a, b []simulator.Step) []simulator.Step {
	var out []simulator.Step
	va, vb := 0, 0
	for i, j := 0, 0; i < len(a) || j < len(b); {
		var at time.Duration
		switch {
		case j == len(b) || i < len(a) && a[i].At <= b[j].At:
			at = a[i].At
		default:
			at = b[j].At
		}
		for ; i < len(a) && a[i].At == at; i++ {
			va = a[i].Value
		}
		for ; j < len(b) && b[j].At == at; j++ {
			vb = b[j].Value
		}
		out = append(out, simulator.Step{At: at, Value: va - vb})
	}
	return out
}

// niceTick returns a round tick interval giving 5 to 12 ticks over span.
func niceTick(span time.Duration) time.Duration {
	for _, t := range []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
	} {
		if span/t <= 12 {
			return t
		}
	}
	return span / 10
}
