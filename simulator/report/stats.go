package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regroup-dev/regroup/simulator"
)

// StatRow is one set of runs summed up: a scenario under a Variant (empty
// for "sim run"), with a swept parameter set to Value (both empty outside a
// sweep), over Runs seeds of which Failed broke an invariant or an
// expectation.
type StatRow struct {
	Variant       simulator.Variant
	Param, Value  string
	Runs, Failed  int
	Stats         []simulator.Stat
	Seeds         [2]uint64 // the first and last seed
	JitterMaximum string    // the jitter's bound, as given ("0s": none)
}

// StatsTable writes one line per row and metric: the variant, the
// parameter's value, the metric, and its mean, p50, p95, p99 and 95%
// confidence interval over the runs.
func StatsTable(w io.Writer, rows []StatRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	sweep := len(rows) > 0 && rows[0].Param != ""
	variant := len(rows) > 0 && rows[0].Variant.Assignor != ""
	head := ""
	if variant {
		head += "protocol\tassignor\tmembership\t"
	}
	if sweep {
		head += rows[0].Param + "\t"
	}
	fmt.Fprintln(tw, head+"metric\truns\tmean\tp50\tp95\tp99\t95% interval\t")
	for _, r := range rows {
		lead := ""
		if variant {
			lead += fmt.Sprintf("%s\t%s\t%s\t", r.Variant.ProtocolName(), r.Variant.Assignor, membership(r.Variant))
		}
		if sweep {
			lead += r.Value + "\t"
		}
		for _, s := range r.Stats {
			fmt.Fprintf(tw, "%s%s\t%d\t%s\t%s\t%s\t%s\t[%s, %s]\t\n", lead, s.Metric, s.N, num(s.Mean), num(s.P50), num(s.P95), num(s.P99), num(s.Lo), num(s.Hi))
		}
	}
	return tw.Flush()
}

// num formats a statistic with three significant decimals at most.
func num(v float64) string {
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// jsonStatRow is a StatRow as JSON.
type jsonStatRow struct {
	Protocol   string           `json:"protocol,omitempty"`
	Assignors  []string         `json:"assignors,omitempty"`
	Membership string           `json:"membership,omitempty"`
	Param      string           `json:"param,omitempty"`
	Value      string           `json:"value,omitempty"`
	Runs       int              `json:"runs"`
	Failed     int              `json:"failed"`
	FirstSeed  uint64           `json:"first_seed"`
	LastSeed   uint64           `json:"last_seed"`
	Jitter     string           `json:"jitter"`
	Stats      []simulator.Stat `json:"stats"`
}

// StatsJSON writes rows as a JSON array: each row's variant, parameter,
// runs, failing runs, seeds, jitter and statistics (metric, n, mean, p50,
// p95, p99, ci95_lo, ci95_hi).
func StatsJSON(w io.Writer, rows []StatRow) error {
	out := make([]jsonStatRow, len(rows))
	for i, r := range rows {
		j := jsonStatRow{Param: r.Param, Value: r.Value, Runs: r.Runs, Failed: r.Failed, FirstSeed: r.Seeds[0], LastSeed: r.Seeds[1], Jitter: r.JitterMaximum, Stats: r.Stats}
		if r.Variant.Assignor != "" {
			j.Protocol, j.Assignors, j.Membership = r.Variant.ProtocolName(), r.Variant.Assignors(), membership(r.Variant)
		}
		out[i] = j
	}
	return writeJSON(w, out)
}

// StatsCSVHeader lists the columns StatsCSV writes.
var StatsCSVHeader = []string{
	"protocol", "assignors", "membership", "param", "value", "metric", "runs", "failed",
	"mean", "p50", "p95", "p99", "ci95_lo", "ci95_hi",
}

// StatsCSV writes a header and one line per row and metric.
func StatsCSV(w io.Writer, rows []StatRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(StatsCSVHeader); err != nil {
		return err
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, r := range rows {
		proto, as, mem := "", "", ""
		if r.Variant.Assignor != "" {
			proto, as, mem = r.Variant.ProtocolName(), strings.Join(r.Variant.Assignors(), "+"), membership(r.Variant)
		}
		for _, s := range r.Stats {
			rec := []string{proto, as, mem, r.Param, r.Value, s.Metric, strconv.Itoa(s.N), strconv.Itoa(r.Failed),
				f(s.Mean), f(s.P50), f(s.P95), f(s.P99), f(s.Lo), f(s.Hi)}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// OwnershipCSVHeader lists the columns OwnershipCSV writes.
var OwnershipCSVHeader = []string{"group", "topic", "partition", "kind", "member", "from_s", "to_s"}

// OwnershipCSV writes the per-partition ownership time series of a
// timeline: a header and one line per interval in which a member's
// process owned a partition ("owned") or processed it ("processing"), by
// group, topic, partition, kind and start. Times are seconds.
func OwnershipCSV(w io.Writer, tl *simulator.Timeline) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(OwnershipCSVHeader); err != nil {
		return err
	}
	f := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 6, 64) }
	for _, o := range tl.Ownership {
		if err := cw.Write([]string{o.Group, o.Topic, strconv.Itoa(int(o.Partition)), o.Kind, o.Member, f(o.From), f(o.To)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
