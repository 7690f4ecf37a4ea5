package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

func run(t *testing.T) *simulator.Result {
	t.Helper()
	b, err := os.ReadFile("../testdata/one-crash.sim")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.Parse("one-crash.sim", string(b))
	if err != nil {
		t.Fatal(err)
	}
	res, err := simulator.Run(sc, simulator.Options{Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func render(t *testing.T, f func(w io.Writer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSummary(t *testing.T) {
	res := run(t)
	s := render(t, func(w io.Writer) error { return Summary(w, res) })
	for _, want := range []string{
		"rebalances      2 (member-expired 1, member-joined 1)",
		"moved           7 partitions",
		"violations      0",
		"expectations    all held",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	res.Violations = append(res.Violations, simulator.Violation{Kind: "two-owners", Detail: "x/1 owned by a and b"})
	res.Failed = []string{"line 3: expect moved=0: got 7"}
	s = render(t, func(w io.Writer) error { return Summary(w, res) })
	if !strings.Contains(s, "VIOLATION") || !strings.Contains(s, "two-owners: x/1 owned by a and b") || !strings.Contains(s, "FAILED line 3") {
		t.Errorf("summary does not list the violation and the failed expectation:\n%s", s)
	}
}

func TestTableCSVJSON(t *testing.T) {
	res := run(t)
	rows := []Row{
		{Variant: simulator.Variant{Protocol: assignor.Eager, Assignor: "static", Membership: "static"}, Result: res},
		{Variant: simulator.Variant{Protocol: assignor.Cooperative, Assignor: "cooperative-sticky"}, Result: res},
	}
	table := render(t, func(w io.Writer) error { return Table(w, rows) })
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "eager") || !strings.Contains(lines[2], "as scenario") {
		t.Errorf("table:\n%s", table)
	}
	md := render(t, func(w io.Writer) error { return Markdown(w, rows) })
	if !strings.HasPrefix(md, "| protocol |") || strings.Count(md, "\n") != 4 {
		t.Errorf("markdown:\n%s", md)
	}
	recs, err := csv.NewReader(strings.NewReader(render(t, func(w io.Writer) error { return CSV(w, rows) }))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || len(recs[1]) != len(CSVHeader) || recs[1][3] != "static+range" || recs[1][5] != "2" {
		t.Errorf("csv: %q", recs)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(render(t, func(w io.Writer) error { return JSONRows(w, rows) })), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["membership"] != "static" || got[1]["metrics"].(map[string]any)["rebalances"] != 2.0 {
		t.Errorf("json: %v", got)
	}
}

func TestSVG(t *testing.T) {
	res := run(t)
	a := render(t, func(w io.Writer) error { return SVG(w, res.Timeline, "one crash", 0, res.Timeline.End) })
	if b := render(t, func(w io.Writer) error { return SVG(w, res.Timeline, "one crash", 0, res.Timeline.End) }); a != b {
		t.Error("two renders of one timeline differ")
	}
	d := xml.NewDecoder(strings.NewReader(a))
	labels := map[string]bool{}
	var inText bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			inText = x.Name.Local == "text"
		case xml.CharData:
			if inText {
				labels[string(x)] = true
			}
		}
	}
	for _, want := range []string{"one crash", "m1", "m10", "no owner"} {
		if !labels[want] {
			t.Errorf("the SVG has no label %q", want)
		}
	}
	if !strings.Contains(a, "crash at 1m0s") || !strings.Contains(a, "member-expired") {
		t.Error("the SVG does not mark m3's crash and the rebalance it caused")
	}
}

// TestSweepSVG draws two lines of three points each: well-formed XML, a
// polyline and an interval band per line, points in increasing x, the
// legend naming what sets the lines apart.
func TestSweepSVG(t *testing.T) {
	var rows []StatRow
	for _, p := range []assignor.RebalanceProtocol{assignor.Eager, assignor.Cooperative} {
		for i, v := range []string{"6s", "9s", "12s"} {
			m := float64(10 * (i + 1))
			rows = append(rows, StatRow{
				Variant: simulator.Variant{Protocol: p, Assignor: "cooperative-sticky"}, Param: "session", Value: v, Runs: 5,
				Stats: []simulator.Stat{{Metric: "not-processing", N: 5, Mean: m, Lo: m - 1, Hi: m + 1}},
			})
		}
	}
	svg := render(t, func(w io.Writer) error { return SweepSVG(w, rows, "not-processing", "t") })
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if strings.Count(svg, "<polyline") != 2 || strings.Count(svg, "<polygon") != 2 || !strings.Contains(svg, ">eager</text>") ||
		!strings.Contains(svg, "session = 12: 30.000 [29.000, 31.000]") {
		t.Errorf("svg:\n%s", svg)
	}
	if err := SweepSVG(io.Discard, rows, "moved", "t"); err == nil {
		t.Error("a metric without values was drawn")
	}
}

// TestSVGStates draws gc-pause-long.sim, where m4 freezes at 40s for 25s
// while owning 6 partitions: its lease ends at about 46.2s, the others take
// its partitions, and when it wakes at 65s it gets OnLost and the others
// revoke partitions to give it work. The picture is cropped to that action
// (a margin before 40s to a margin after the group settled), draws each
// state with its own class, marks the OnLost, and scales the no-owner row
// to the 6 partitions m4 lost rather than to the 64 of the initial join.
func TestSVGStates(t *testing.T) {
	b, err := os.ReadFile("../testdata/gc-pause-long.sim")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenario.Parse("gc-pause-long.sim", string(b))
	if err != nil {
		t.Fatal(err)
	}
	res, err := simulator.Run(sc, simulator.Options{Timeline: true})
	if err != nil {
		t.Fatal(err)
	}
	tl := res.Timeline
	var m4 simulator.TimelineMember
	revoking := 0
	for _, m := range tl.Members {
		if m.Name == "m4" {
			m4 = m
		}
		revoking += len(m.Revoking)
	}
	if len(m4.Lost) != 1 || m4.Lost[0].At != 65*time.Second || m4.Lost[0].Partitions != 6 || m4.Lost[0].Lease <= 40*time.Second || m4.Lost[0].Lease >= 50*time.Second {
		t.Fatalf("m4's losses: %+v, want one OnLost of 6 partitions at 65s for a lease that ended between 40s and 50s", m4.Lost)
	}
	if revoking == 0 {
		t.Fatal("no revocation recorded")
	}
	// While paused m4 owns its partitions but processes none.
	if owned, proc := valueAt(m4.Owned, 42*time.Second), valueAt(m4.Processing, 42*time.Second); owned != 6 || proc != 0 {
		t.Errorf("m4 at 42s owns %d and processes %d, want 6 and 0", owned, proc)
	}
	from, to := Window(tl)
	if from != 35*time.Second || to <= 65*time.Second || to > 80*time.Second {
		t.Errorf("window %v to %v, want from 5s before the pause to a margin after the group settled after 65s", from, to)
	}
	svg := render(t, func(w io.Writer) error { return SVG(w, tl, "pause", from, to) })
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	for _, want := range []string{
		`class="owned"`, `class="processing"`, `class="revoking"`, `class="paused"`, `class="lost"`, `class="on-lost"`,
		"OnLost at 1m5s: 6 partitions", "paused 40s to 1m5s", ">35s to ", "row = 6 of 64</text>",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("the cropped SVG lacks %q", want)
		}
	}
	if strings.Contains(svg, ">20s</text>") {
		t.Error("the cropped SVG has a tick at 20s, before its window")
	}
	// The whole run: the initial join's 64 unowned partitions are clipped,
	// the row still scaled to what follows the first disturbance.
	all := render(t, func(w io.Writer) error { return SVG(w, tl, "pause", 0, time.Hour) })
	if !strings.Contains(all, "row = 6 of 64, clipped") || !strings.Contains(all, ">0s</text>") || strings.Contains(all, fmt.Sprintf(" of %v<", round(tl.End))) {
		t.Error("the whole run's SVG does not start at 0s or does not clip the initial join")
	}
	if err := SVG(io.Discard, tl, "pause", tl.End, tl.End+time.Second); err == nil {
		t.Error("an empty window was drawn")
	}
}

// TestSVGSize: a 100-member hour in which every member's ownership changes
// and every member revokes at each of 200 rebalances, with 50 pauses (an
// eager group under a churn event every 20 s, the densest realistic
// picture; simulated, one takes 291 KB) stays under 450 KB: steps are
// drawn at half-pixel resolution with relative moves, and what a member
// owns but does not process only where no other mark says so.
func TestSVGSize(t *testing.T) {
	tl := &simulator.Timeline{End: time.Hour, Action: simulator.Span{From: time.Minute, To: time.Hour}}
	for i := range 100 {
		m := simulator.TimelineMember{Name: fmt.Sprintf("m%d", i+1), Running: []simulator.Span{{From: 0, To: time.Hour}}}
		for r := range 200 {
			at := time.Duration(r)*18*time.Second + time.Duration(i)*time.Millisecond
			n := 9 + (r+i)%3
			m.Owned = append(m.Owned, simulator.Step{At: at, Value: n})
			m.Processing = append(m.Processing, simulator.Step{At: at, Value: 0}, simulator.Step{At: at + 200*time.Millisecond, Value: n})
			m.Revoking = append(m.Revoking, simulator.Span{From: at, To: at + 200*time.Millisecond})
			if r == 2*i && i%2 == 0 { // 50 pauses in all
				m.Paused = append(m.Paused, simulator.Span{From: at, To: at + 5*time.Second})
				m.Lost = append(m.Lost, simulator.Loss{Lease: at + 3*time.Second, At: at + 5*time.Second, Partitions: n})
			}
		}
		tl.Members = append(tl.Members, m)
	}
	for r := range 200 {
		at := time.Duration(r) * 18 * time.Second
		tl.Rebalances = append(tl.Rebalances, simulator.Rebalance{Group: "g", Generation: int32(r), CauseKind: "member-joined", Cause: "member m1 joined", Start: at, End: at + 300*time.Millisecond})
		tl.Unowned = append(tl.Unowned, simulator.Step{At: at, Value: 5}, simulator.Step{At: at + 300*time.Millisecond, Value: 0})
		tl.NotProcessing = append(tl.NotProcessing, simulator.Step{At: at, Value: 1000}, simulator.Step{At: at + 300*time.Millisecond, Value: 0})
	}
	var b bytes.Buffer
	if err := SVG(&b, tl, "hour", 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if b.Len() > 450_000 {
		t.Errorf("a 100-member hour takes %d bytes, want at most 450 KB", b.Len())
	}
	t.Logf("a 100-member hour: %d bytes", b.Len())
}

// valueAt returns the value ss holds at t.
func valueAt(ss []simulator.Step, t time.Duration) int {
	v := 0
	for _, s := range ss {
		if s.At > t {
			break
		}
		v = s.Value
	}
	return v
}
