package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/regroup-dev/regroup/member/fsm"
	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/report"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

func simCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate rebalances: run, compare and sweep scenarios in virtual time",
		Long: `Run scenarios against the real group protocol state machines (coordinator and
members) in virtual time: joins, crashes, pauses, partitions, failovers and topic
changes, with safety and liveness checks after every event. The scenario language
is documented in docs/simulator.md.`,
		Example: `  regroup sim run simulator/testdata/one-crash.sim --trace
  regroup sim compare simulator/testdata/rolling-restart.sim --protocols eager,cooperative,next --static
  regroup sim sweep --seeds 1000
  regroup sim sweep --seeds 1000 --protocol next`,
	}
	cmd.AddCommand(simRunCmd(), simCompareCmd(), simSweepCmd(), simRandomCmd())
	for _, c := range cmd.Commands() {
		run := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error { return unprefixed(run(cmd, args)) }
	}
	return cmd
}

// unprefixed drops the "regroup: " that library errors start with: main
// prints every error after "regroup: " already.
func unprefixed(err error) error {
	if err == nil {
		return nil
	}
	if msg, ok := strings.CutPrefix(err.Error(), "regroup: "); ok {
		return errors.New(msg)
	}
	return err
}

// loadScenario reads and parses a scenario file ("-" is standard input), or
// the random scenario of a seed, with the events of a trace file (see
// scenario.FromTrace) after its own if replay is set.
func loadScenario(cmd *cobra.Command, path string, random int64, replay string) (*scenario.Scenario, error) {
	var name, text string
	switch {
	case random >= 0 && path != "":
		return nil, fmt.Errorf("give a scenario FILE or --random SEED, not both")
	case random >= 0:
		name, text = fmt.Sprintf("random-%d", random), scenario.Random(uint64(random))
	case path == "":
		return nil, fmt.Errorf("give a scenario FILE (see simulator/testdata/*.sim) or --random SEED")
	default:
		var b []byte
		var err error
		if path == "-" {
			b, err = io.ReadAll(cmd.InOrStdin())
		} else {
			b, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, err
		}
		name, text = path, string(b)
	}
	if replay != "" {
		f, err := os.Open(replay)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		events, err := scenario.FromTrace(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", replay, err)
		}
		text += "\n# Replayed from " + filepath.Base(replay) + ":\n" + events
	}
	return scenario.Parse(name, text)
}

// setProtocol makes every member of sc speak the group protocol named
// name, "classic" or "next" (--protocol); "" keeps the scenario's own.
func setProtocol(sc *scenario.Scenario, name string) error {
	if name == "" {
		return nil
	}
	p, err := fsm.ParseProtocol(name)
	if err != nil {
		return fmt.Errorf("--protocol %q: want classic or next", name)
	}
	sc.SetProtocol(p)
	return nil
}

// protocolArg is the --protocol argument of a replay command, or "".
func protocolArg(name string) string {
	if name == "" {
		return ""
	}
	return " --protocol " + name
}

// writeFile writes what render produces to path.
func writeFile(path string, render func(w io.Writer) error) error {
	var b bytes.Buffer
	if err := render(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want %s", o, strings.Join(allowed, " or "))
}

func simRunCmd() *cobra.Command {
	var (
		seed, random      int64
		trace, messages   bool
		csvF, jsonF, svgF string
		output            string
		window            time.Duration
		windows           bool
		seeds, parallel   int
		jitter, since     time.Duration
		replay, ownF      string
		svgFrom, svgTo    time.Duration
		protocol          string
	)
	cmd := &cobra.Command{
		Use:   "run [FILE]",
		Short: "Run a scenario and print its summary",
		Long: `Run a scenario file (or "-" for standard input, or a random scenario with
--random) and print a summary: rebalances and their causes, rebalance durations,
partitions moved, revoked and lost, partition-seconds without an owner, time to
stable after the last disturbance, messages, invariant violations and the expect
lines that failed. Exits with an error if the run found a violation or an
expectation failed.

"not processing" counts the partition-seconds in which a partition had no owner,
or an owner that was revoking it (inside OnRevoked), paused, or past its lease;
"unowned" counts only the first. Both are measured per --window as well.

With --seeds N, runs seeds --seed to --seed+N-1, each with the actions after 0s
moved by a random offset up to --jitter (by default the longest heartbeat
interval, so that faults fall at a random phase of the heartbeats), and prints
each metric's mean, p50, p95, p99 and 95% confidence interval of the mean
(--csv and --json write the same). A failing seed is listed with the command that
replays it.

--protocol next runs every member with the next-generation group protocol
(the coordinator assigns with the member's first assignor, its server-side
one, and each member converges on its own); --protocol classic with the
classic one. By default each member speaks the protocol its scenario gives it
(protocol= in a group or join line; classic unless set).

--svg draws the run's timeline: per member the partitions it owns and those it
processes, its revocations, pauses, time past its lease and OnLost calls, cuts
and crashes; rebalances and failovers; and the partitions without an owner and
not processed. It shows the action (from the first disturbance after the start
until the groups settled after the last, with a margin) unless --from and --to
say otherwise.`,
		Example: `  # Run a shipped scenario:
  regroup sim run simulator/testdata/rolling-restart.sim

  # With another seed, the event trace, and the ownership timeline as SVG:
  regroup sim run simulator/testdata/gc-pause-long.sim --seed 7 --trace --svg pause.svg

  # The timeline of the whole run, the initial join included:
  regroup sim run simulator/testdata/gc-pause-long.sim --svg pause.svg --from 0s --to 10m

  # 100 seeds, each crash at a random phase of the heartbeats, without the
  # initial join: mean, p50, p95, p99 and 95% interval of every metric:
  regroup sim run simulator/testdata/one-crash.sim --seeds 100 --since 30s --csv crash.csv

  # Where partitions were not processed, per 5 s window:
  regroup sim run simulator/testdata/gc-pause-long.sim --window 5s --windows

  # Replay a trace of membership events on a scenario's topics and groups, and
  # export every partition's ownership over time:
  regroup sim run setup.sim --replay events.csv --ownership ownership.csv

  # The same scenario under the next-generation protocol:
  regroup sim run simulator/testdata/rolling-restart.sim --protocol next

  # Replay a seed a sweep reported:
  regroup sim run --random 229 --trace`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			if window <= 0 {
				return fmt.Errorf("--window %v: want a positive duration, such as 10s", window)
			}
			path := ""
			if len(args) == 1 {
				path = args[0]
			}
			sc, err := loadScenario(cmd, path, random, replay)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("seed") {
				sc.Seed = uint64(seed)
			}
			if err := setProtocol(sc, protocol); err != nil {
				return err
			}
			if seeds < 1 || since < 0 {
				return fmt.Errorf("--seeds %d, --since %v: want at least one seed, and a time from the start of the run", seeds, since)
			}
			if svgF == "" && (cmd.Flags().Changed("from") || cmd.Flags().Changed("to")) {
				return fmt.Errorf("--from and --to crop the --svg timeline: give --svg FILE too")
			}
			jitter = defaultJitter(cmd, sc, seeds, jitter)
			out := cmd.OutOrStdout()
			if seeds > 1 {
				if trace || messages || svgF != "" || windows || ownF != "" {
					return fmt.Errorf("--trace, --messages, --svg, --ownership and --windows show one run: drop them, or run one seed (--seeds 1)")
				}
				b := batch{path: path, random: random, first: sc.Seed, seeds: seeds, jitter: jitter, since: since, parallel: parallel, replay: replay, protocol: protocol}
				rows, failing, err := b.run(cmd, []simulator.Variant{{}}, nil)
				if err != nil {
					return err
				}
				return writeStats(cmd, b, rows, failing, output, csvF, jsonF)
			}
			if off := simulator.Jitter(sc, jitter); jitter > 0 && output == "text" {
				fmt.Fprintf(out, "jitter          actions after 0s moved by %v (--jitter %v)\n", off, jitter)
			}
			opts := simulator.Options{Timeline: svgF != "" || ownF != "", Messages: messages, Window: window, Since: since}
			if trace || messages {
				opts.Trace = out
			}
			shown := newRunProgress(cmd.ErrOrStderr())
			opts.Progress = shown.report
			res, err := simulator.Run(sc, opts)
			shown.finish()
			if err != nil {
				return err
			}
			if res.Metrics, err = res.Metrics.From(since); err != nil {
				return err
			}
			row := report.Row{Result: res}
			if csvF != "" {
				if err := writeFile(csvF, func(w io.Writer) error { return report.CSV(w, []report.Row{row}) }); err != nil {
					return err
				}
			}
			if jsonF != "" {
				if err := writeFile(jsonF, func(w io.Writer) error { return report.JSON(w, row) }); err != nil {
					return err
				}
			}
			if svgF != "" {
				title := fmt.Sprintf("%s (seed %d)", res.Scenario, res.Seed)
				from, to := report.Window(res.Timeline)
				if cmd.Flags().Changed("from") {
					from = svgFrom
				}
				if cmd.Flags().Changed("to") {
					to = svgTo
				}
				if err := writeFile(svgF, func(w io.Writer) error { return report.SVG(w, res.Timeline, title, from, to) }); err != nil {
					return err
				}
			}
			if ownF != "" {
				if err := writeFile(ownF, func(w io.Writer) error { return report.OwnershipCSV(w, res.Timeline) }); err != nil {
					return err
				}
			}
			if output == "json" {
				err = report.JSON(out, row)
			} else {
				err = report.Summary(out, res)
				if err == nil && windows {
					err = report.Windows(out, res)
				}
			}
			if err != nil {
				return err
			}
			if !res.OK() {
				return fmt.Errorf("%s: %d violations, %d failed expectations", res.Scenario, len(res.Violations), len(res.Failed))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&seed, "seed", 0, "seed for the run's random source (default: the scenario's seed line, or 1)")
	f.Int64Var(&random, "random", -1, "run the random scenario of this seed instead of a FILE (as sweep does)")
	f.BoolVar(&trace, "trace", false, "print one line per event before the summary")
	f.BoolVar(&messages, "messages", false, "with the trace, print every message sent, delivered or lost")
	f.StringVar(&csvF, "csv", "", "write the metrics as CSV to this file")
	f.StringVar(&jsonF, "json", "", "write the metrics, violations and failed expectations as JSON to this file")
	f.StringVar(&svgF, "svg", "", "write the partition ownership timeline as SVG to this file")
	f.DurationVar(&svgFrom, "from", 0, "with --svg: where the timeline starts (default: a margin before the first disturbance after 0s)")
	f.DurationVar(&svgTo, "to", 0, "with --svg: where the timeline ends; past the end of the run, at its end (default: a margin after the groups settled)")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&window, "window", 10*time.Second, "length of the windows the partition-seconds without an owner and not processed are measured over (JSON, --windows)")
	f.BoolVar(&windows, "windows", false, "after the summary, print the partition-seconds of every window in which some were not processed")
	f.IntVar(&seeds, "seeds", 1, "run this many seeds (from --seed on) and print each metric's mean, p50, p95, p99 and 95% interval")
	f.DurationVar(&jitter, "jitter", 0, "move the actions after 0s by a random offset up to this, drawn per seed (default with --seeds: the scenario's longest heartbeat interval)")
	f.IntVar(&parallel, "parallel", runtime.GOMAXPROCS(0), "with --seeds, runs at once")
	f.DurationVar(&since, "since", 0, "count only what happened from this time on (as expect's since=): rebalances, partitions, partition-seconds, disturbances")
	f.StringVar(&replay, "replay", "", "replay the events of this trace (CSV: time,event,member,duration; see docs/simulator.md) after the scenario's own")
	f.StringVar(&ownF, "ownership", "", "write every partition's ownership and processing intervals as CSV to this file")
	f.StringVar(&protocol, "protocol", "", "run every member with this group protocol: classic or next (default: the scenario's)")
	return cmd
}

// loadVariants loads the scenario file that sim compare and sim sweep run
// (from a trace with replay, and with --seed if given) and the variants
// they run it under: every protocol and assignor, dynamic and, with
// static, static membership. skipped names the combinations that do not
// exist.
func loadVariants(cmd *cobra.Command, path string, protocols, assignors []string, static bool, replay string, seed int64) (variants []simulator.Variant, skipped []string, base *scenario.Scenario, err error) {
	var memberships []string
	if static {
		memberships = []string{"dynamic", "static"}
	}
	if variants, skipped, err = simulator.Variants(protocols, assignors, memberships); err != nil {
		return nil, nil, nil, err
	}
	if base, err = loadScenario(cmd, path, -1, replay); err != nil {
		return nil, nil, nil, err
	}
	if cmd.Flags().Changed("seed") {
		base.Seed = uint64(seed)
	}
	return variants, skipped, base, nil
}

// defaultJitter is --jitter: as given, or with several seeds and none
// given, the scenario's longest heartbeat interval (a fault then falls at a
// random phase of the heartbeats).
func defaultJitter(cmd *cobra.Command, sc *scenario.Scenario, seeds int, jitter time.Duration) time.Duration {
	if cmd.Flags().Changed("jitter") || seeds <= 1 {
		return jitter
	}
	return sc.HeartbeatInterval()
}

// batch is a set of runs of one scenario: every variant, under every
// parameter value, with seeds first to first+seeds-1, each jittered.
type batch struct {
	path   string // the scenario file ("" with random)
	random int64  // the random scenario's seed, or -1
	replay string // a trace file to replay after the scenario's events, or ""
	first  uint64
	seeds  int
	jitter time.Duration
	since  time.Duration
	// parallel is how many runs run at once.
	parallel int
	// param is the swept parameter, or "".
	param string
	// protocol is the group protocol every member speaks (--protocol), or
	// "" for the scenario's; a variant sets its own.
	protocol string
}

// failure is a failing run of a batch, with the command that replays it.
type failure struct {
	Seed       uint64   `json:"seed"`
	Replay     string   `json:"replay"`
	Violations []string `json:"violations"`
	Failed     []string `json:"failed_expectations"`
}

// run runs the batch under each variant (a zero Variant: the scenario's
// own) and each of values (nil: no parameter), with a progress bar on
// standard error, and sums each (variant, value) up as a row.
func (b batch) run(cmd *cobra.Command, variants []simulator.Variant, values []string) ([]report.StatRow, []failure, error) {
	if values == nil {
		values = []string{""}
	}
	n := len(variants) * len(values) * b.seeds
	results := make([]*simulator.Result, n)
	errs := make([]error, n)
	bar := newProgress(cmd.ErrOrStderr(), n, "runs")
	forEach(n, b.parallel, func(i int) {
		v, val, k := variants[i/(len(values)*b.seeds)], values[i/b.seeds%len(values)], i%b.seeds
		results[i], errs[i] = b.one(cmd, v, val, b.first+uint64(k))
		bar.done(errs[i] != nil || results[i] != nil && !results[i].OK())
	})
	bar.finish()
	var rows []report.StatRow
	var failing []failure
	for i := 0; i < n; i += b.seeds {
		row := report.StatRow{
			Variant: variants[i/(len(values)*b.seeds)], Param: b.param, Value: values[i/b.seeds%len(values)],
			Runs: b.seeds, Seeds: [2]uint64{b.first, b.first + uint64(b.seeds) - 1}, JitterMaximum: b.jitter.String(),
		}
		var ms []simulator.Metrics
		for k := range b.seeds {
			if err := errs[i+k]; err != nil {
				return nil, nil, fmt.Errorf("%sseed %d: %w", b.label(row), b.first+uint64(k), err)
			}
			res := results[i+k]
			ms = append(ms, res.Metrics)
			if !res.OK() {
				row.Failed++
				failing = append(failing, b.failure(row, res))
			}
		}
		row.Stats = simulator.Summarize(ms)
		rows = append(rows, row)
	}
	return rows, failing, nil
}

// one runs the batch's scenario under v, with the parameter set to value,
// with seed, jittered; with since, its metrics count from then on.
func (b batch) one(cmd *cobra.Command, v simulator.Variant, value string, seed uint64) (*simulator.Result, error) {
	sc, err := loadScenario(cmd, b.path, b.random, b.replay)
	if err != nil {
		return nil, err
	}
	sc.Seed = seed
	if err := setProtocol(sc, b.protocol); err != nil {
		return nil, err
	}
	if v.Assignor != "" {
		sc.Expects = nil // written for the scenario's own configuration
		v.Apply(sc)
	}
	if b.param != "" {
		if err := sc.Set(b.param, value); err != nil {
			return nil, err
		}
	}
	simulator.Jitter(sc, b.jitter)
	res, err := simulator.Run(sc, simulator.Options{Since: b.since})
	if err != nil {
		return nil, err
	}
	res.Metrics, err = res.Metrics.From(b.since)
	return res, err
}

func (b batch) label(row report.StatRow) string {
	l := ""
	if row.Variant.Assignor != "" {
		l += row.Variant.String() + ": "
	}
	if b.param != "" {
		l += b.param + "=" + row.Value + ": "
	}
	return l
}

// failure describes a failing run and the command that replays it.
func (b batch) failure(row report.StatRow, res *simulator.Result) failure {
	src := b.path
	if b.random >= 0 {
		src = fmt.Sprintf("--random %d", b.random)
	}
	if b.replay != "" {
		src += " --replay " + b.replay
	}
	replay := fmt.Sprintf("regroup sim run %s --seed %d --jitter %v%s --trace", src, res.Seed, b.jitter, protocolArg(b.protocol))
	if b.param != "" || row.Variant.Assignor != "" {
		replay = b.label(row) + replay + " (with that setting)"
	}
	return failureOf(res, replay)
}

// failureOf is the failing run res, to be replayed with replay.
func failureOf(res *simulator.Result, replay string) failure {
	f := failure{Seed: res.Seed, Replay: replay, Failed: res.Failed}
	for _, v := range res.Violations {
		f.Violations = append(f.Violations, v.String())
	}
	return f
}

// printFailures lists failing runs, each with its replay command, its
// violations and its failed expectations.
func printFailures(w io.Writer, failing []failure) {
	for _, f := range failing {
		fmt.Fprintf(w, "seed %d: %s\n", f.Seed, f.Replay)
		for _, v := range f.Violations {
			fmt.Fprintf(w, "  VIOLATION %s\n", v)
		}
		for _, e := range f.Failed {
			fmt.Fprintf(w, "  FAILED %s\n", e)
		}
	}
}

// writeStats prints a batch's rows (text or JSON), writes them to csvF
// and jsonF if set, and lists the failing runs (an error if any).
func writeStats(cmd *cobra.Command, b batch, rows []report.StatRow, failing []failure, output, csvF, jsonF string) error {
	if csvF != "" {
		if err := writeFile(csvF, func(w io.Writer) error { return report.StatsCSV(w, rows) }); err != nil {
			return err
		}
	}
	if jsonF != "" {
		if err := writeFile(jsonF, func(w io.Writer) error { return report.StatsJSON(w, rows) }); err != nil {
			return err
		}
	}
	out := cmd.OutOrStdout()
	var err error
	if output == "json" {
		err = report.StatsJSON(out, rows)
	} else {
		from := ""
		if b.since > 0 {
			from = fmt.Sprintf(", from %v on", b.since)
		}
		fmt.Fprintf(out, "%d seeds (%d to %d) per row, actions moved by up to %v%s: %d of %d runs failing\n",
			b.seeds, b.first, b.first+uint64(b.seeds)-1, b.jitter, from, len(failing), len(rows)*b.seeds)
		err = report.StatsTable(out, rows)
	}
	if err != nil {
		return err
	}
	w := out
	if output == "json" {
		w = cmd.ErrOrStderr()
	}
	printFailures(w, failing)
	if len(failing) > 0 {
		return fmt.Errorf("%d of %d runs failed", len(failing), len(rows)*b.seeds)
	}
	return nil
}

func simCompareCmd() *cobra.Command {
	var (
		protocols, assignors []string
		static               bool
		seed                 int64
		output, csvF         string
		parallel, seeds      int
		since, jitter        time.Duration
		replay               string
	)
	cmd := &cobra.Command{
		Use:   "compare FILE",
		Short: "Run a scenario under several protocols and assignors, side by side",
		Long: `Run a scenario once per combination of rebalance protocol and assignor (every
member offering that assignor), and print one table with a row per combination:
rebalances, median and max rebalance duration, partitions moved, revoked and lost,
partition-seconds without an owner and not processed, time to stable, and for
the disturbances (each instant at which scenario actions or churn events ran) how
many there were, the mean number of rebalances after one, and the median and
longest time from one to the end of its last rebalance; then messages and
violations. --since counts only what happened from then on (rebalances that
ended then or later, partition-seconds from then, disturbances then or later), to
leave out the initial join. With --seeds N, every combination runs N seeds,
each with its actions moved by up to --jitter, and the output is each metric's
mean, p50, p95, p99 and 95% interval per combination (see "sim run --seeds").

A member is cooperative only if every assignor it offers supports it, so an
assignor that supports both protocols runs eagerly by being offered with range
after it (range is never selected); an eager-only assignor (range, roundrobin,
sticky) cannot run cooperatively and its cooperative row is skipped. With
--static every combination also runs with every member static and with every
member dynamic; otherwise members keep the scenario's membership. The scenario's
expect lines are not checked (they are written for its own configuration).

The protocols classic-eager and classic-cooperative are baselines: members beat
as Kafka's classic client does, holding no heartbeat, so a rebalance notice
waits for each member's next heartbeat instead of reaching it at once.

The protocol next is the next-generation group protocol (Kafka's KIP-848
model): every member calls Reconcile, the coordinator computes the assignment
with the assignor (its server-side assignor; every assignor runs, since the
members converge to its plan incrementally) and each member gives up and takes
its partitions on its own, with no group-wide barrier.`,
		Example: `  # Eager, cooperative, next-generation and static membership side by side
  # after one crash:
  regroup sim compare simulator/testdata/one-crash.sim \
      --protocols eager,cooperative,next --assignors range,sticky,cooperative-sticky,static --static

  # Without the initial join: rebalances and partition-seconds from 30s on:
  regroup sim compare simulator/testdata/one-crash.sim --since 30s

  # As JSON, for a notebook:
  regroup sim compare simulator/testdata/rolling-restart.sim -o json > rolling.json

  # What held heartbeats buy: Regroup against Kafka's classic client, 50 seeds:
  regroup sim compare simulator/testdata/one-crash.sim --protocols cooperative,classic-cooperative \
      --assignors cooperative-sticky --seeds 50 --since 30s

  # 50 seeds per combination, the crash at a random phase of the heartbeats:
  regroup sim compare simulator/testdata/one-crash.sim --assignors cooperative-sticky --seeds 50 --since 30s --csv crash.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json", "markdown"); err != nil {
				return err
			}
			if since < 0 {
				return fmt.Errorf("--since %v: want a time from the start of the run, such as 30s", since)
			}
			variants, skipped, base, err := loadVariants(cmd, args[0], protocols, assignors, static, replay, seed)
			if err != nil {
				return err
			}
			if seeds < 1 {
				return fmt.Errorf("--seeds %d: want at least 1", seeds)
			}
			jitter = defaultJitter(cmd, base, seeds, jitter)
			if seeds > 1 {
				if output == "markdown" {
					return fmt.Errorf("-o markdown shows one run per row: with --seeds, use -o text or json, or --csv")
				}
				b := batch{path: args[0], random: -1, first: base.Seed, seeds: seeds, jitter: jitter, since: since, parallel: parallel, replay: replay}
				rows, failing, err := b.run(cmd, variants, nil)
				if err != nil {
					return err
				}
				if err := writeStats(cmd, b, rows, failing, output, csvF, ""); err != nil {
					return err
				}
				for _, sk := range skipped {
					fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s\n", sk)
				}
				return nil
			}
			rows := make([]report.Row, len(variants))
			errs := make([]error, len(variants))
			bar := newProgress(cmd.ErrOrStderr(), len(variants), "runs")
			defer bar.finish()
			forEach(len(variants), parallel, func(i int) {
				defer func() { bar.done(errs[i] != nil || rows[i].Result != nil && !rows[i].Result.OK()) }()
				sc, err := loadScenario(cmd, args[0], -1, replay)
				if err != nil {
					errs[i] = err
					return
				}
				sc.Expects = nil
				if cmd.Flags().Changed("seed") {
					sc.Seed = uint64(seed)
				}
				variants[i].Apply(sc)
				simulator.Jitter(sc, jitter)
				res, err := simulator.Run(sc, simulator.Options{Since: since})
				if err == nil {
					res.Metrics, err = res.Metrics.From(since)
				}
				rows[i], errs[i] = report.Row{Variant: variants[i], Result: res}, err
			})
			for i, err := range errs {
				if err != nil {
					return fmt.Errorf("%v: %w", variants[i], err)
				}
			}
			if csvF != "" {
				if err := writeFile(csvF, func(w io.Writer) error { return report.CSV(w, rows) }); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				return report.JSONRows(out, rows)
			case "markdown":
				err = report.Markdown(out, rows)
			default:
				from := ""
				if since > 0 {
					from = fmt.Sprintf(", from %v on", since)
				}
				fmt.Fprintf(out, "%s, seed %d%s\n", base.Name, rows[0].Result.Seed, from)
				err = report.Table(out, rows)
			}
			if err != nil {
				return err
			}
			if output == "markdown" {
				out = cmd.ErrOrStderr() // keep the Markdown a table
			}
			for _, s := range skipped {
				fmt.Fprintf(out, "skipped %s\n", s)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&protocols, "protocols", []string{"eager", "cooperative", "next"}, "rebalance protocols to compare: eager, cooperative, Kafka's classic client's heartbeats (none held) under either, classic-eager, classic-cooperative, and the next-generation protocol, next")
	f.StringSliceVar(&assignors, "assignors", []string{"range", "sticky", "cooperative-sticky", "static"}, "assignors to compare (built-in names)")
	f.BoolVar(&static, "static", false, "run every combination with all members dynamic and with all members static")
	f.Int64Var(&seed, "seed", 0, "seed for every run (default: the scenario's)")
	f.IntVar(&parallel, "parallel", runtime.GOMAXPROCS(0), "runs at once")
	f.StringVar(&csvF, "csv", "", "also write the rows as CSV to this file")
	f.DurationVar(&since, "since", 0, "count only what happened from this time on (as expect's since=), leaving out the initial join")
	f.IntVar(&seeds, "seeds", 1, "run every combination with this many seeds (from --seed on) and print each metric's mean, p50, p95, p99 and 95% interval")
	f.StringVar(&replay, "replay", "", "replay the events of this trace (CSV; see sim run --replay) after the scenario's own")
	f.DurationVar(&jitter, "jitter", 0, "move the actions after 0s by a random offset up to this, drawn per seed (default with --seeds: the scenario's longest heartbeat interval)")
	f.StringVarP(&output, "output", "o", "text", "output format: text, json or markdown")
	return cmd
}

func simSweepCmd() *cobra.Command {
	var (
		seeds, parallel      int
		start, seed          int64
		output               string
		param, csvF, svgF    string
		protocols, assignors []string
		metrics              []string
		static               bool
		jitter, since        time.Duration
		replay, protocol     string
	)
	cmd := &cobra.Command{
		Use:   "sweep [FILE --param NAME=FROM..TO:STEP]",
		Short: "Sweep a scenario's parameter into a CSV and a chart, or run random scenarios and report the failing ones",
		Long: `With a scenario FILE and --param, run the scenario at every value of one
parameter (session, heartbeat, members, partitions, pause, failover-gap,
write-latency, assign-time; see docs/simulator.md), under each combination of
--protocols and --assignors (and static and dynamic membership with --static),
with --seeds seeds per point (default 20) whose actions are moved by up to
--jitter. Prints the
--metric's mean, p50, p95, p99 and 95% interval per point, writes every metric to
--csv and draws --metric against the parameter, one line per combination with
its interval, to --svg. A progress bar runs on standard error.

Without a FILE, run the random scenario of every seed from --start to
--start+--seeds-1 (default 100; see "regroup sim random"), checking safety after
every event and liveness after the last disturbance. Prints the failing seeds,
each with the command that replays it, and exits with an error if any failed.
--protocol next runs every random scenario with the next-generation group
protocol (the scenario's assignor is then the coordinator's); by default they
run the classic one.`,
		Example: `  # The figure of docs/simulator.md: not-processing partition-seconds after a
  # crash-restart against the session timeout, eager against cooperative, static
  # against dynamic members, 10 seeds a point:
  regroup sim sweep simulator/testdata/crash-restart.sim --param session=6s..45s:3s \
      --static --since 30s --seeds 10 --csv session.csv --svg session.svg

  # Listed values, two metrics:
  regroup sim sweep simulator/testdata/gc-pause-long.sim --param pause=5s,10s,20s,40s --metric not-processing,unowned

  # The random sweep recorded in docs/simulator.md:
  regroup sim sweep --seeds 1000

  # The same random scenarios under the next-generation protocol:
  regroup sim sweep --seeds 1000 --protocol next

  # Continue from seed 1000, four runs at once, failures as JSON:
  regroup sim sweep --seeds 1000 --start 1000 --parallel 4 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			if len(args) == 0 {
				if param != "" {
					return fmt.Errorf("--param sweeps a scenario: give its FILE")
				}
				return randomSweep(cmd, seeds, start, parallel, output, protocol)
			}
			if protocol != "" {
				return fmt.Errorf("--protocol applies to the random sweep; with --param, --protocols lists the protocols to compare (next among them)")
			}
			if param == "" {
				return fmt.Errorf("give --param NAME=FROM..TO:STEP (or NAME=V1,V2,...) to sweep %s; parameters: %s", args[0], strings.Join(scenario.Params, ", "))
			}
			if !cmd.Flags().Changed("seeds") {
				seeds = 20
			}
			if seeds < 1 || since < 0 {
				return fmt.Errorf("--seeds %d, --since %v: want at least one seed, and a time from the start of the run", seeds, since)
			}
			for _, m := range metrics {
				if !slices.Contains(simulator.StatMetrics(), m) {
					return fmt.Errorf("--metric %q: want one of %s", m, strings.Join(simulator.StatMetrics(), ", "))
				}
			}
			name, values, err := parseParam(param)
			if err != nil {
				return err
			}
			variants, skipped, base, err := loadVariants(cmd, args[0], protocols, assignors, static, replay, seed)
			if err != nil {
				return err
			}
			// Every value must apply; by default the jitter spans the
			// longest heartbeat interval of any of them.
			var hb time.Duration
			for _, v := range values {
				sc, err := loadScenario(cmd, args[0], -1, replay)
				if err != nil {
					return err
				}
				if err := sc.Set(name, v); err != nil {
					return err
				}
				hb = max(hb, sc.HeartbeatInterval())
			}
			if !cmd.Flags().Changed("jitter") {
				jitter = hb
			}
			b := batch{path: args[0], random: -1, first: base.Seed, seeds: seeds, jitter: jitter, since: since, parallel: parallel, param: name, replay: replay}
			rows, failing, err := b.run(cmd, variants, values)
			if err != nil {
				return err
			}
			if svgF != "" {
				title := fmt.Sprintf("%s against %s: %s, %d seeds a point", metrics[0], name, filepath.Base(base.Name), seeds)
				if err := writeFile(svgF, func(w io.Writer) error { return report.SweepSVG(w, rows, metrics[0], title) }); err != nil {
					return err
				}
			}
			if csvF != "" {
				if err := writeFile(csvF, func(w io.Writer) error { return report.StatsCSV(w, rows) }); err != nil {
					return err
				}
			}
			shown := make([]report.StatRow, len(rows))
			for i, r := range rows {
				shown[i] = r
				shown[i].Stats = slices.DeleteFunc(slices.Clone(r.Stats), func(s simulator.Stat) bool { return !slices.Contains(metrics, s.Metric) })
			}
			for _, sk := range skipped {
				fmt.Fprintf(cmd.ErrOrStderr(), "skipped %s\n", sk)
			}
			return writeStats(cmd, b, shown, failing, output, "", "")
		},
	}
	f := cmd.Flags()
	f.IntVar(&seeds, "seeds", 100, "random sweep: how many seeds to run; with --param: seeds per point (default 20)")
	f.Int64Var(&start, "start", 0, "random sweep: the first seed")
	f.IntVar(&parallel, "parallel", runtime.GOMAXPROCS(0), "runs at once")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.StringVar(&param, "param", "", "the parameter to sweep and its values: NAME=FROM..TO:STEP or NAME=V1,V2,... (session, heartbeat, members, partitions, pause, failover-gap, write-latency, assign-time)")
	f.StringSliceVar(&protocols, "protocols", []string{"eager", "cooperative"}, "with --param: rebalance protocols, one line each: eager, cooperative, classic-eager, classic-cooperative, next")
	f.StringVar(&protocol, "protocol", "", "random sweep: run every member with this group protocol, classic or next (default: classic)")
	f.StringSliceVar(&assignors, "assignors", []string{"cooperative-sticky"}, "with --param: assignors, one line each")
	f.BoolVar(&static, "static", false, "with --param: every combination with all members dynamic and with all static")
	f.StringSliceVar(&metrics, "metric", []string{"not-processing"}, "with --param: the metrics to print; the first is drawn (all go to --csv)")
	f.DurationVar(&jitter, "jitter", 0, "with --param: move the actions after 0s by up to this, per seed (default: the longest heartbeat interval)")
	f.DurationVar(&since, "since", 0, "with --param: count only what happened from this time on, leaving out the initial join")
	f.Int64Var(&seed, "seed", 0, "with --param: the first seed of every point (default: the scenario's)")
	f.StringVar(&csvF, "csv", "", "with --param: write every metric's statistics per point to this file")
	f.StringVar(&svgF, "svg", "", "with --param: draw the first --metric against the parameter, as SVG, to this file")
	f.StringVar(&replay, "replay", "", "with --param: replay the events of this trace (CSV; see sim run --replay) after the scenario's own")
	return cmd
}

// parseParam reads --param: NAME=FROM..TO:STEP (durations, or whole
// numbers for members and partitions) or NAME=V1,V2,...
func parseParam(p string) (string, []string, error) {
	name, spec, ok := strings.Cut(p, "=")
	if !ok || !slices.Contains(scenario.Params, name) {
		return "", nil, fmt.Errorf("--param %q: want NAME=FROM..TO:STEP or NAME=V1,V2,... with NAME one of %s", p, strings.Join(scenario.Params, ", "))
	}
	rng, step, stepped := strings.Cut(spec, ":")
	from, to, ranged := strings.Cut(rng, "..")
	if !ranged {
		if stepped {
			return "", nil, fmt.Errorf("--param %q: a step needs a range, FROM..TO:STEP", p)
		}
		return name, strings.Split(spec, ","), nil
	}
	if !stepped {
		return "", nil, fmt.Errorf("--param %q: give the step, as in %s=%s..%s:STEP", p, name, from, to)
	}
	const most = 200
	var values []string
	if name == "members" || name == "partitions" {
		a, err1 := strconv.Atoi(from)
		b, err2 := strconv.Atoi(to)
		st, err3 := strconv.Atoi(step)
		if err1 != nil || err2 != nil || err3 != nil || st <= 0 || b < a {
			return "", nil, fmt.Errorf("--param %q: want whole numbers FROM <= TO and a positive STEP", p)
		}
		for v := a; v <= b && len(values) <= most; v += st {
			values = append(values, strconv.Itoa(v))
		}
	} else {
		a, err1 := time.ParseDuration(from)
		b, err2 := time.ParseDuration(to)
		st, err3 := time.ParseDuration(step)
		if err1 != nil || err2 != nil || err3 != nil || st <= 0 || b < a {
			return "", nil, fmt.Errorf("--param %q: want durations FROM <= TO and a positive STEP, such as session=3s..45s:3s", p)
		}
		for v := a; v <= b && len(values) <= most; v += st {
			values = append(values, v.String())
		}
	}
	if len(values) > most {
		return "", nil, fmt.Errorf("--param %q: more than %d values; give a larger step", p, most)
	}
	return name, values, nil
}

// randomSweep runs the random scenarios of seeds start to start+seeds-1,
// every member speaking protocol ("" for the scenario's own), and reports
// the failing ones.
func randomSweep(cmd *cobra.Command, seeds int, start int64, parallel int, output, protocol string) error {
	if seeds <= 0 || start < 0 {
		return fmt.Errorf("--seeds must be positive and --start not negative")
	}
	if err := setProtocol(&scenario.Scenario{}, protocol); err != nil {
		return err
	}
	results := make([]*failure, seeds)
	errs := make([]error, seeds)
	bar := newProgress(cmd.ErrOrStderr(), seeds, "seeds")
	forEach(seeds, parallel, func(i int) {
		seed := uint64(start) + uint64(i)
		sc, err := scenario.Parse(fmt.Sprintf("random-%d", seed), scenario.Random(seed))
		if err == nil {
			err = setProtocol(sc, protocol)
		}
		if err == nil {
			var res *simulator.Result
			if res, err = simulator.Run(sc, simulator.Options{}); err == nil && !res.OK() {
				f := failureOf(res, fmt.Sprintf("regroup sim run --random %d%s --trace", seed, protocolArg(protocol)))
				results[i] = &f
			}
		}
		errs[i] = err
		bar.done(results[i] != nil)
	})
	bar.finish()
	var failing []failure
	for i, r := range results {
		if errs[i] != nil {
			return fmt.Errorf("seed %d: %w", uint64(start)+uint64(i), errs[i])
		}
		if r != nil {
			failing = append(failing, *r)
		}
	}
	out := cmd.OutOrStdout()
	if output == "json" {
		if failing == nil {
			failing = []failure{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(failing); err != nil {
			return err
		}
	} else {
		under := ""
		if protocol != "" {
			under = ", protocol " + protocol
		}
		fmt.Fprintf(out, "%d seeds (%d to %d)%s: %d failing\n", seeds, start, start+int64(seeds)-1, under, len(failing))
		printFailures(out, failing)
	}
	if len(failing) > 0 {
		return fmt.Errorf("%d of %d seeds failed", len(failing), seeds)
	}
	return nil
}

func simRandomCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "random SEED",
		Short: "Print the random scenario of a seed (the one sweep and run --random use)",
		Example: `  # Save a random scenario to edit it:
  regroup sim random 229 > s229.sim && regroup sim run s229.sim`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var seed uint64
			if _, err := fmt.Sscan(args[0], &seed); err != nil {
				return fmt.Errorf("SEED %q: want a whole number", args[0])
			}
			_, err := io.WriteString(cmd.OutOrStdout(), scenario.Random(seed))
			return err
		},
	}
}

// forEach runs f(0..n-1) on up to parallel goroutines.
func forEach(n, parallel int, f func(i int)) {
	parallel = max(1, min(parallel, n))
	next := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// progress draws a progress bar on w when it is a terminal, and prints a
// line every tenth of the way otherwise (a log, CI).
type progress struct {
	mu            sync.Mutex
	w             io.Writer
	tty           bool
	unit          string // what is counted: "seeds", "runs"
	total, n, bad int
	shown         int
}

func newProgress(w io.Writer, total int, unit string) *progress {
	p := &progress{w: w, total: total, unit: unit, shown: -1, tty: isTerminal(w)}
	p.draw()
	return p
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) done(failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if failed {
		p.bad++
	}
	p.draw()
}

// draw redraws the bar when the percentage changed, or prints a line when
// the tenth did.
func (p *progress) draw() {
	pct := 100 * p.n / p.total
	if !p.tty {
		if pct/10 != p.shown/10 || p.n == p.total {
			p.shown = pct
			fmt.Fprintf(p.w, "%d/%d %s, %d failing\n", p.n, p.total, p.unit, p.bad)
		}
		return
	}
	if pct == p.shown && p.n != p.total {
		return
	}
	p.shown = pct
	const width = 40
	filled := width * p.n / p.total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %s, %d failing", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.n, p.total, p.unit, p.bad)
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// runProgress shows how far a long run has got in virtual time, on w: a
// line redrawn in place on a terminal, a line every tenth otherwise. Runs
// that end within a second show nothing.
type runProgress struct {
	w       io.Writer
	tty     bool
	started time.Time
	tenth   int64 // the last tenth printed (not on a terminal)
	drawn   bool
}

func newRunProgress(w io.Writer) *runProgress {
	return &runProgress{w: w, tty: isTerminal(w), started: time.Now(), tenth: -1}
}

// report is simulator.Options.Progress.
func (p *runProgress) report(reached, end time.Duration) {
	if end <= 0 || time.Since(p.started) < time.Second {
		return
	}
	pct := int64(100 * reached / end)
	line := fmt.Sprintf("simulated %v of %v (%d%%), %v so far", reached.Round(time.Second), end.Round(time.Second), pct, time.Since(p.started).Round(100*time.Millisecond))
	if p.tty {
		fmt.Fprintf(p.w, "\r%-72s", line)
		p.drawn = true
		return
	}
	if pct/10 != p.tenth {
		p.tenth = pct / 10
		fmt.Fprintln(p.w, line)
	}
}

// finish ends the line drawn on a terminal.
func (p *runProgress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
