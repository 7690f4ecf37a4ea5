package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runSim runs "regroup sim ARGS..." and returns its output and error.
func runSim(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := simCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestSimRun(t *testing.T) {
	dir := t.TempDir()
	csvF, jsonF, svgF := filepath.Join(dir, "m.csv"), filepath.Join(dir, "m.json"), filepath.Join(dir, "t.svg")
	out, _, err := runSim(t, "run", "../../simulator/testdata/one-crash.sim", "--csv", csvF, "--json", jsonF, "--svg", svgF)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "expectations    all held") {
		t.Errorf("summary:\n%s", out)
	}
	for _, f := range []string{csvF, jsonF, svgF} {
		if b, err := os.ReadFile(f); err != nil || len(b) == 0 {
			t.Errorf("%s: %v (%d bytes)", f, err, len(b))
		}
	}
	// --from and --to crop the timeline; they need --svg.
	if out, _, err := runSim(t, "run", "../../simulator/testdata/one-crash.sim", "--svg", svgF, "--from", "50s", "--to", "80s"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, err := os.ReadFile(svgF); err != nil || !strings.Contains(string(b), ">50s to 1m20s of ") || strings.Contains(string(b), ">40s</text>") {
		t.Errorf("the timeline cropped to 50s..80s: %v\n%.600s", err, b)
	}
	if _, _, err := runSim(t, "run", "../../simulator/testdata/one-crash.sim", "--from", "50s"); err == nil || !strings.Contains(err.Error(), "give --svg FILE too") {
		t.Errorf("--from without --svg: %v", err)
	}
	out, _, err = runSim(t, "run", "../../simulator/testdata/one-crash.sim", "--trace", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "m3       crash") || !strings.Contains(out, `"trace_sha256"`) {
		t.Errorf("trace and JSON missing:\n%.2000s", out)
	}

	// A scenario whose expectation fails makes the command fail.
	bad := filepath.Join(dir, "bad.sim")
	if err := os.WriteFile(bad, []byte("topic orders partitions=4\nat 0s join m1\nexpect rebalances=5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = runSim(t, "run", bad)
	if err == nil || !strings.Contains(out, "FAILED line 3: expect rebalances=5: got 1") {
		t.Errorf("want a failure for a failed expectation, got %v:\n%s", err, out)
	}
	// Scenario errors name the line.
	if err := os.WriteFile(bad, []byte("topic orders partitions=4\nat 0s join m1 bogus=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err = runSim(t, "run", bad); err == nil || !strings.Contains(err.Error(), "line 2: join: unknown argument \"bogus\"") {
		t.Errorf("want a line-numbered error, got %v", err)
	}
	if _, _, err = runSim(t, "run", "-o", "yaml", bad); err == nil || !strings.Contains(err.Error(), "-o \"yaml\"") {
		t.Errorf("want an error for -o yaml, got %v", err)
	}
}

func TestSimCompare(t *testing.T) {
	out, _, err := runSim(t, "compare", "../../simulator/testdata/gc-pause-short.sim", "--protocols", "eager,cooperative", "--assignors", "range,cooperative-sticky", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// eager/range, eager/cooperative-sticky (offered with range), cooperative/cooperative-sticky.
	if len(rows) != 3 || rows[1]["assignors"].([]any)[1] != "range" || rows[2]["protocol"] != "cooperative" {
		t.Errorf("rows: %v", rows)
	}
	out, _, err = runSim(t, "compare", "../../simulator/testdata/gc-pause-short.sim", "--assignors", "range")
	if err != nil || !strings.Contains(out, "skipped cooperative/range") {
		t.Errorf("want the cooperative range row skipped, got %v:\n%s", err, out)
	}
	if _, _, err = runSim(t, "compare", "../../simulator/testdata/gc-pause-short.sim", "--protocols", "lazy"); err == nil {
		t.Error("an unknown protocol was accepted")
	}

	// --since leaves out the initial join (a 6 s rebalance): one crash,
	// one disturbance, one rebalance of a few round trips.
	out, _, err = runSim(t, "compare", "../../simulator/testdata/one-crash.sim", "--protocols", "cooperative", "--assignors", "cooperative-sticky", "--since", "30s", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var since []struct {
		Metrics struct {
			Rebalances int   `json:"rebalances"`
			Max        int64 `json:"rebalance_max_ns"`
		} `json:"metrics"`
		Stats struct {
			Count   int   `json:"disturbances"`
			Settled int64 `json:"settled_max_ns"`
		} `json:"disturbance_stats"`
	}
	if err := json.Unmarshal([]byte(out), &since); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(since) != 1 || since[0].Metrics.Rebalances != 1 || since[0].Metrics.Max > int64(time.Second) ||
		since[0].Stats.Count != 1 || since[0].Stats.Settled < int64(7*time.Second) || since[0].Stats.Settled > int64(10*time.Second) {
		t.Errorf("compare --since 30s: %+v, want 1 rebalance shorter than 1s, 1 disturbance settled within the session timeout", since)
	}
}

func TestSimSweep(t *testing.T) {
	out, progress, err := runSim(t, "sweep", "--seeds", "5", "--start", "10")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "5 seeds (10 to 14): 0 failing") || !strings.Contains(progress, "5/5 seeds, 0 failing") {
		t.Errorf("output %q, progress %q", out, progress)
	}
	out, _, err = runSim(t, "random", "12")
	if err != nil || !strings.HasPrefix(out, "# Random scenario 12") {
		t.Errorf("random: %v\n%s", err, out)
	}
	// The same random scenarios under the next-generation protocol.
	out, progress, err = runSim(t, "sweep", "--seeds", "5", "--start", "10", "--protocol", "next")
	if err != nil || !strings.Contains(out, "5 seeds (10 to 14), protocol next: 0 failing") || !strings.Contains(progress, "5/5 seeds, 0 failing") {
		t.Errorf("sweep --protocol next: %v, output %q, progress %q", err, out, progress)
	}
	if _, _, err := runSim(t, "sweep", "--seeds", "5", "--protocol", "kip848"); err == nil || !strings.Contains(err.Error(), `--protocol "kip848": want classic or next`) {
		t.Errorf("sweep --protocol kip848: %v", err)
	}
	if _, _, err := runSim(t, "sweep", "../../simulator/testdata/one-crash.sim", "--param", "session=10s", "--protocol", "next"); err == nil || !strings.Contains(err.Error(), "--protocols lists") {
		t.Errorf("sweep --param with --protocol: %v", err)
	}
}

// sim run --protocol next runs every member with the next-generation
// protocol: the trace shows Reconcile calls, and the scenario's expect
// lines for the classic protocol only are not checked.
func TestSimRunNext(t *testing.T) {
	out, _, err := runSim(t, "run", "../../simulator/testdata/one-join.sim", "--protocol", "next", "--trace", "--messages")
	if err != nil {
		t.Fatalf("%v\n%.3000s", err, out)
	}
	for _, want := range []string{"m1       start (dynamic, next, server assignor cooperative-sticky)", "-> coord Reconcile epoch=0", "Reconcile ok epoch=", "expectations    all held"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the output:\n%.3000s", want, out)
		}
	}
	if strings.Contains(out, "JoinGroup") {
		t.Errorf("a next-generation member sent a JoinGroup:\n%.3000s", out)
	}
	if _, _, err := runSim(t, "run", "../../simulator/testdata/one-join.sim", "--protocol", "newest"); err == nil || !strings.Contains(err.Error(), "want classic or next") {
		t.Errorf("run --protocol newest: %v", err)
	}
}

// A long run (here: one that started two seconds ago) prints a line per
// tenth of the scenario when standard error is not a terminal; a short one
// prints nothing.
func TestRunProgress(t *testing.T) {
	var buf bytes.Buffer
	p := newRunProgress(&buf)
	p.report(30*time.Second, time.Minute)
	if buf.Len() != 0 {
		t.Fatalf("a run younger than a second printed %q", buf.String())
	}
	p.started = time.Now().Add(-2 * time.Second)
	for s := 0; s <= 60; s += 3 {
		p.report(time.Duration(s)*time.Second, time.Minute)
	}
	p.finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 11 || !strings.HasPrefix(lines[5], "simulated 30s of 1m0s (50%)") {
		t.Fatalf("want 11 lines, one per tenth, got:\n%s", buf.String())
	}
}

// sim run --seeds and sim compare --seeds print statistics per metric, in
// text, JSON and CSV; the crash's cost varies with the seed's jitter.
func TestSimSeeds(t *testing.T) {
	dir := t.TempDir()
	csvF := filepath.Join(dir, "s.csv")
	out, progress, err := runSim(t, "run", "../../simulator/testdata/one-crash.sim", "--seeds", "8", "--since", "30s", "--csv", csvF)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "8 seeds (7 to 14) per row, actions moved by up to 3s, from 30s on: 0 of 8 runs failing") ||
		!strings.Contains(out, "95% interval") || !strings.Contains(progress, "8/8 runs") {
		t.Errorf("output:\n%s\nprogress:\n%s", out, progress)
	}
	recs := readCSV(t, csvF)
	if len(recs) != 1+12 || strings.Join(recs[0], ",") != "protocol,assignors,membership,param,value,metric,runs,failed,mean,p50,p95,p99,ci95_lo,ci95_hi" {
		t.Fatalf("CSV: %v", recs)
	}
	for _, r := range recs[1:] {
		lo, _ := strconv.ParseFloat(r[12], 64)
		hi, _ := strconv.ParseFloat(r[13], 64)
		if r[5] == "unowned" && (r[6] != "8" || hi-lo < 1) {
			t.Errorf("unowned over 8 jittered seeds: %v, want an interval of some width", r)
		}
	}

	out, _, err = runSim(t, "compare", "../../simulator/testdata/one-crash.sim", "--assignors", "cooperative-sticky", "--seeds", "3", "--jitter", "0s", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Protocol string `json:"protocol"`
		Runs     int    `json:"runs"`
		Stats    []struct {
			Metric string  `json:"metric"`
			Lo     float64 `json:"ci95_lo"`
			Hi     float64 `json:"ci95_hi"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The default protocols: eager, cooperative and next.
	if len(rows) != 3 || rows[0].Protocol != "eager" || rows[2].Protocol != "next" || rows[1].Runs != 3 || len(rows[1].Stats) != 12 {
		t.Errorf("compare --seeds 3: %+v", rows)
	}
	if _, _, err := runSim(t, "run", "../../simulator/testdata/one-crash.sim", "--seeds", "3", "--trace"); err == nil {
		t.Error("--trace with --seeds 3 was accepted")
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// sim sweep FILE --param: the CSV has the statistics' columns, one line
// per combination, value and metric, with the values in increasing order;
// the SVG has one line per combination; the crash's cost grows with the
// session timeout.
func TestSimSweepParam(t *testing.T) {
	dir := t.TempDir()
	csvF, svgF := filepath.Join(dir, "s.csv"), filepath.Join(dir, "s.svg")
	out, progress, err := runSim(t, "sweep", "../../simulator/testdata/one-crash.sim", "--param", "session=6s..12s:3s", "--seeds", "3",
		"--since", "30s", "--csv", csvF, "--svg", svgF)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(progress, "18/18 runs") || !strings.Contains(out, "not-processing") {
		t.Errorf("output:\n%s\nprogress:\n%s", out, progress)
	}
	recs := readCSV(t, csvF)
	if strings.Join(recs[0], ",") != "protocol,assignors,membership,param,value,metric,runs,failed,mean,p50,p95,p99,ci95_lo,ci95_hi" ||
		len(recs) != 1+2*3*12 {
		t.Fatalf("CSV header %v, %d lines", recs[0], len(recs))
	}
	means := map[string][]float64{}
	var values []string
	for _, r := range recs[1:] {
		if r[3] != "session" {
			t.Fatalf("param %q", r[3])
		}
		if r[5] == "not-processing" {
			m, _ := strconv.ParseFloat(r[8], 64)
			means[r[0]] = append(means[r[0]], m)
			if r[0] == "eager" {
				values = append(values, r[4])
			}
		}
	}
	if strings.Join(values, ",") != "6s,9s,12s" {
		t.Errorf("values %v, want 6s,9s,12s in order", values)
	}
	for proto, ms := range means {
		if len(ms) != 3 || ms[0] >= ms[1] || ms[1] >= ms[2] {
			t.Errorf("%s: not processing %v, want it to grow with the session timeout", proto, ms)
		}
	}
	svg, err := os.ReadFile(svgF)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(svg), "<polyline"); n != 2 || !strings.Contains(string(svg), "session (s)") {
		t.Errorf("SVG has %d lines, want 2 (eager, cooperative), and the axis named", n)
	}

	for _, bad := range [][]string{
		{"sweep", "../../simulator/testdata/one-crash.sim"},
		{"sweep", "--param", "session=6s..12s:3s"},
		{"sweep", "../../simulator/testdata/one-crash.sim", "--param", "session=6s..12s"},
		{"sweep", "../../simulator/testdata/one-crash.sim", "--param", "sesion=6s"},
		{"sweep", "../../simulator/testdata/one-crash.sim", "--param", "members=2"},
		{"sweep", "../../simulator/testdata/one-crash.sim", "--param", "session=6s", "--metric", "bogus"},
	} {
		if _, _, err := runSim(t, bad...); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}

// TestSimWalkthroughFigure runs the command of docs/simulator.md's
// walkthrough ("For researchers: one figure, end to end") and checks that
// it draws the doc's figure byte for byte. After a change of behaviour,
// run the doc's command to redraw it, and review the difference.
func TestSimWalkthroughFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("560 runs")
	}
	svgF := filepath.Join(t.TempDir(), "session.svg")
	if out, _, err := runSim(t, "sweep", "../../simulator/testdata/crash-restart.sim", "--param", "session=6s..45s:3s", "--static", "--since", "30s", "--seeds", "10", "--svg", svgF); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, err := os.ReadFile(svgF)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../docs/simulator-sweep-session.svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the walkthrough's command draws another figure than docs/simulator-sweep-session.svg; redraw it with the command in docs/simulator.md and review the change")
	}
}

// TestSimTimelineFigure runs the command that draws docs/simulator.md's
// timeline (docs/simulator-gc-pause-long.svg, cropped to the pause) and
// checks that it draws it byte for byte. After a change, redraw it with
// the doc's command and review the difference (and its PNG, with
// rsvg-convert).
func TestSimTimelineFigure(t *testing.T) {
	svgF := filepath.Join(t.TempDir(), "pause.svg")
	if out, _, err := runSim(t, "run", "../../simulator/testdata/gc-pause-long.sim", "--svg", svgF); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got, err := os.ReadFile(svgF)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../docs/simulator-gc-pause-long.svg")
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.ReplaceAll(got, []byte("../../simulator/"), []byte("simulator/")); !bytes.Equal(got, want) {
		t.Errorf("sim run simulator/testdata/gc-pause-long.sim --svg draws another timeline than docs/simulator-gc-pause-long.svg; redraw it with the command in docs/simulator.md and review the change")
	}
}

// sim run --replay plays a trace's events on a scenario's setup, and
// --ownership writes every partition's ownership and processing intervals.
func TestSimReplay(t *testing.T) {
	dir := t.TempDir()
	setup, events, own := filepath.Join(dir, "setup.sim"), filepath.Join(dir, "events.csv"), filepath.Join(dir, "own.csv")
	if err := os.WriteFile(setup, []byte("topic orders partitions=8\ngroup g session=10s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(events, []byte("time,event,member,duration\n0,join,m1..m4,\n30s,pause,m2,25s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runSim(t, "run", setup, "--replay", events, "--ownership", own)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "lost            2 partitions") {
		t.Errorf("the replayed pause of m2 (2 of 8 partitions, longer than the session) lost nothing:\n%s", out)
	}
	recs := readCSV(t, own)
	if strings.Join(recs[0], ",") != "group,topic,partition,kind,member,from_s,to_s" || len(recs) < 1+2*8 {
		t.Fatalf("ownership CSV: %v", recs)
	}
	if err := os.WriteFile(events, []byte("time,event,member,duration\n0,join,m1,\n5,fly,m1,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runSim(t, "run", setup, "--replay", events); err == nil || !strings.Contains(err.Error(), "line 3: unknown event") {
		t.Errorf("a bad trace: %v, want its line named", err)
	}
}
