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
	if len(rows) != 2 || rows[0].Protocol != "eager" || rows[1].Runs != 3 || len(rows[1].Stats) != 12 {
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
