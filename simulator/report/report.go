// Package report renders what the simulator found: a text summary of a
// run, a table with one row per compared variant, the metrics as CSV and
// JSON, and an SVG timeline of partition ownership per member.
//
// Every function writes deterministic output: the same Result gives the
// same bytes.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regroup-dev/regroup/simulator"
)

// Row is one run of a comparison (or the only run of "sim run", with an
// empty Variant).
type Row struct {
	Variant simulator.Variant
	Result  *simulator.Result
}

// Summary writes a run's summary: rebalances and their causes, durations,
// movements, unowned time, time to stable, messages, violations and the
// expectations that failed.
func Summary(w io.Writer, res *simulator.Result) error {
	m := res.Metrics
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	p("scenario", "%s (seed %d): %v simulated, %d events", res.Scenario, res.Seed, round(m.Simulated), m.Events)
	p("rebalances", "%d%s", m.Rebalances, causes(m.Causes))
	p("generation", "%d (highest)", m.Generation)
	p("rebalance time", "median %v, max %v", round(m.RebalanceMedian), round(m.RebalanceMax))
	p("moved", "%d partitions (given to a member other than their last owner)", m.Moved)
	p("revoked", "%d partitions (in OnRevoked)", m.Revoked)
	p("lost", "%d partitions (in OnLost)", m.Lost)
	p("unowned", "%.1f partition-seconds", m.UnownedSeconds)
	p("not processing", "%.1f partition-seconds (no owner, or its owner revoking, paused or past its lease)%s", m.NotProcessingSeconds, worstWindow(m))
	p("stable", "%s", stable(m))
	p("liveness", "%s", liveness(res))
	p("messages", "%d", m.Messages)
	p("fatal", "%d member processes failed", m.Fatal)
	if m.Shards > 1 {
		p("shards", "%d: %d handed off, %d failed over", m.Shards, m.Handoffs, m.ShardFailovers)
	}
	p("violations", "%d", len(res.Violations))
	if len(res.Failed) == 0 {
		p("expectations", "all held")
	} else {
		p("expectations", "%d FAILED", len(res.Failed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range res.Violations {
		if _, err := fmt.Fprintf(w, "VIOLATION %s\n", v); err != nil {
			return err
		}
	}
	for _, f := range res.Failed {
		if _, err := fmt.Fprintf(w, "FAILED %s\n", f); err != nil {
			return err
		}
	}
	return nil
}

// Windows writes, one line per window in which some partition-seconds
// were not processed, the window's start and its partition-seconds without
// an owner and not processed (see simulator.Metrics).
func Windows(w io.Writer, res *simulator.Result) error {
	m := res.Metrics
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "window (%v) from\tunowned p·s\tnot processing p·s\t\n", m.Window)
	for i, v := range m.NotProcessingWindows {
		if v < 0.05 {
			continue
		}
		fmt.Fprintf(tw, "%v\t%.1f\t%.1f\t\n", time.Duration(i)*m.Window, m.UnownedWindows[i], v)
	}
	return tw.Flush()
}

// worstWindow names the window with the most partition-seconds not
// processed, if any.
func worstWindow(m simulator.Metrics) string {
	k := -1
	for i, v := range m.NotProcessingWindows {
		if v > 0.05 && (k < 0 || v > m.NotProcessingWindows[k]) {
			k = i
		}
	}
	if k < 0 {
		return ""
	}
	from := time.Duration(k) * m.Window
	return fmt.Sprintf("; worst %v window %.1f, from %v", m.Window, m.NotProcessingWindows[k], from)
}

func causes(c map[string]int) string {
	if len(c) == 0 {
		return ""
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func stable(m simulator.Metrics) string {
	if !m.Stable || m.TimeToStable < 0 {
		return fmt.Sprintf("NOT settled at the end (last disturbance at %v)", round(m.LastDisturbance))
	}
	return fmt.Sprintf("%v after the last disturbance (at %v)", round(m.TimeToStable), round(m.LastDisturbance))
}

func liveness(res *simulator.Result) string {
	if !res.Metrics.LivenessChecked {
		return "not checked (the run ends before the liveness bound after the last disturbance, or the network still loses messages)"
	}
	for _, v := range res.Violations {
		if v.Kind == "liveness" {
			return "VIOLATED"
		}
	}
	return "held"
}

// round rounds a duration for people: milliseconds below a minute.
func round(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// Table writes one row per variant: rebalances, rebalance durations,
// partitions moved, revoked and lost, partition-seconds without an owner
// and not processed, time to stable, the disturbances with the mean
// rebalances after one and the median and longest time from one to the
// end of its last rebalance (simulator.DisturbanceStats), messages and
// violations.
func Table(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\tassignor\tmembership\trebalances\tmedian\tmax\tmoved\trevoked\tlost\tunowned p·s\tnot processing p·s\tstable after\tdisturbances\trebalances/d\tsettled p50\tsettled max\tmessages\tviolations\t")
	for _, r := range rows {
		m := r.Result.Metrics
		st := "never"
		if m.Stable && m.TimeToStable >= 0 {
			st = round(m.TimeToStable).String()
		}
		d := m.Stats()
		fmt.Fprintf(tw, "%v\t%s\t%s\t%d\t%v\t%v\t%d\t%d\t%d\t%.1f\t%.1f\t%s\t%d\t%.2f\t%v\t%v\t%d\t%d\t\n",
			r.Variant.ProtocolName(), r.Variant.Assignor, membership(r.Variant), m.Rebalances, round(m.RebalanceMedian), round(m.RebalanceMax),
			m.Moved, m.Revoked, m.Lost, m.UnownedSeconds, m.NotProcessingSeconds, st,
			d.Count, d.RebalancesMean, round(d.SettledMedian), round(d.SettledMax), m.Messages, len(r.Result.Violations))
	}
	return tw.Flush()
}

// Markdown writes the same table as Table, as a Markdown table.
func Markdown(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| protocol | assignor | membership | rebalances | median | max | moved | revoked | lost | unowned p·s | not processing p·s | stable after | disturbances | rebalances/d | settled p50 | settled max | messages | violations |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		m := r.Result.Metrics
		st := "never"
		if m.Stable && m.TimeToStable >= 0 {
			st = round(m.TimeToStable).String()
		}
		d := m.Stats()
		fmt.Fprintf(&b, "| %v | %s | %s | %d | %v | %v | %d | %d | %d | %.1f | %.1f | %s | %d | %.2f | %v | %v | %d | %d |\n",
			r.Variant.ProtocolName(), r.Variant.Assignor, membership(r.Variant), m.Rebalances, round(m.RebalanceMedian), round(m.RebalanceMax),
			m.Moved, m.Revoked, m.Lost, m.UnownedSeconds, m.NotProcessingSeconds, st,
			d.Count, d.RebalancesMean, round(d.SettledMedian), round(d.SettledMax), m.Messages, len(r.Result.Violations))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func membership(v simulator.Variant) string {
	if v.Membership == "" {
		return "as scenario"
	}
	return v.Membership
}

// jsonRow is a Row as JSON.
type jsonRow struct {
	Protocol   string            `json:"protocol,omitempty"`
	Assignors  []string          `json:"assignors,omitempty"`
	Membership string            `json:"membership,omitempty"`
	Scenario   string            `json:"scenario"`
	Seed       uint64            `json:"seed"`
	Metrics    simulator.Metrics `json:"metrics"`
	Stats      jsonStats         `json:"disturbance_stats"`
	Violations []jsonViolation   `json:"violations"`
	Failed     []string          `json:"failed_expectations"`
	TraceHash  string            `json:"trace_sha256,omitempty"`
}

// jsonStats is simulator.DisturbanceStats as JSON.
type jsonStats struct {
	Count               int     `json:"disturbances"`
	RebalancesMean      float64 `json:"rebalances_mean"`
	RebalancesMedian    float64 `json:"rebalances_median"`
	RebalancesMax       int     `json:"rebalances_max"`
	SettledMean         int64   `json:"settled_mean_ns"`
	SettledMedian       int64   `json:"settled_median_ns"`
	SettledMax          int64   `json:"settled_max_ns"`
	NotProcessingMean   float64 `json:"not_processing_mean"`
	NotProcessingMedian float64 `json:"not_processing_median"`
	NotProcessingMax    float64 `json:"not_processing_max"`
}

type jsonViolation struct {
	AtNs   int64  `json:"at_ns"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func toJSON(r Row) jsonRow {
	j := jsonRow{
		Scenario: r.Result.Scenario, Seed: r.Result.Seed, Metrics: r.Result.Metrics,
		Violations: []jsonViolation{}, Failed: r.Result.Failed, TraceHash: r.Result.TraceHash,
	}
	if j.Failed == nil {
		j.Failed = []string{}
	}
	d := r.Result.Metrics.Stats()
	j.Stats = jsonStats{
		Count: d.Count, RebalancesMean: d.RebalancesMean, RebalancesMedian: d.RebalancesMedian, RebalancesMax: d.RebalancesMax,
		SettledMean: int64(d.SettledMean), SettledMedian: int64(d.SettledMedian), SettledMax: int64(d.SettledMax),
		NotProcessingMean: d.NotProcessingMean, NotProcessingMedian: d.NotProcessingMedian, NotProcessingMax: d.NotProcessingMax,
	}
	if r.Variant.Assignor != "" {
		j.Protocol, j.Assignors, j.Membership = r.Variant.ProtocolName(), r.Variant.Assignors(), membership(r.Variant)
	}
	for _, v := range r.Result.Violations {
		j.Violations = append(j.Violations, jsonViolation{AtNs: int64(v.At), Kind: v.Kind, Detail: v.Detail})
	}
	return j
}

// JSON writes one run as a JSON object: its variant (if any), metrics
// (durations in nanoseconds, keys ending in _ns), violations and failed
// expectations.
func JSON(w io.Writer, r Row) error {
	return writeJSON(w, toJSON(r))
}

// JSONRows writes several runs as a JSON array of the objects JSON writes.
func JSONRows(w io.Writer, rows []Row) error {
	out := make([]jsonRow, len(rows))
	for i, r := range rows {
		out[i] = toJSON(r)
	}
	return writeJSON(w, out)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// CSVHeader lists the columns CSV writes.
var CSVHeader = []string{
	"scenario", "seed", "protocol", "assignors", "membership", "rebalances", "generation",
	"rebalance_median_s", "rebalance_max_s", "moved", "revoked", "lost", "unowned_partition_seconds",
	"not_processing_partition_seconds", "time_to_stable_s", "stable", "messages", "violations", "fatal", "failed_expectations",
	"disturbances", "rebalances_per_disturbance_mean", "settled_median_s", "settled_max_s", "not_processing_per_disturbance_mean",
}

// CSV writes a header and one line per run.
func CSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	f := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	for _, r := range rows {
		m := r.Result.Metrics
		proto, as, mem := "", "", ""
		if r.Variant.Assignor != "" {
			proto, as, mem = r.Variant.ProtocolName(), strings.Join(r.Variant.Assignors(), "+"), membership(r.Variant)
		}
		d := m.Stats()
		tts := ""
		if m.Stable && m.TimeToStable >= 0 {
			tts = f(m.TimeToStable)
		}
		rec := []string{
			r.Result.Scenario, strconv.FormatUint(r.Result.Seed, 10), proto, as, mem,
			strconv.Itoa(m.Rebalances), strconv.Itoa(int(m.Generation)), f(m.RebalanceMedian), f(m.RebalanceMax),
			strconv.Itoa(m.Moved), strconv.Itoa(m.Revoked), strconv.Itoa(m.Lost),
			strconv.FormatFloat(m.UnownedSeconds, 'f', 3, 64), strconv.FormatFloat(m.NotProcessingSeconds, 'f', 3, 64), tts, strconv.FormatBool(m.Stable),
			strconv.Itoa(m.Messages), strconv.Itoa(len(r.Result.Violations)), strconv.Itoa(m.Fatal), strconv.Itoa(len(r.Result.Failed)),
			strconv.Itoa(d.Count), strconv.FormatFloat(d.RebalancesMean, 'f', 3, 64), f(d.SettledMedian), f(d.SettledMax),
			strconv.FormatFloat(d.NotProcessingMean, 'f', 3, 64),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
