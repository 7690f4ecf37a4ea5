package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"strings"
	"testing"

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
	a := render(t, func(w io.Writer) error { return SVG(w, res.Timeline, "one crash") })
	if b := render(t, func(w io.Writer) error { return SVG(w, res.Timeline, "one crash") }); a != b {
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
