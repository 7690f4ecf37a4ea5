// Command scale measures how many members one Regroup coordinator serves:
// it starts `regroup serve --store memory` in its own process on free
// loopback ports, runs real member libraries (package member) in several
// worker processes (this program, started again), and reports for each
// load the time until every group is stable, the latency of graceful
// leaves, the coordinator's CPU and memory per member, the heartbeat rate,
// and the leases that ended. With --coordinators K it runs K coordinators
// over shards (regroup serve --shards) sharing an etcd, and with --moves it
// times a coordinator joining and one being killed.
//
//	go run ./bench/scale --sizes 1x1000,1x3000,1000x10
//	go run ./bench/scale --sizes 600x10 --coordinators 3 --moves
//
// Run it with --help for the flags and what each column means.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const usage = `scale: a load generator for one Regroup coordinator.

For each size (GROUPSxMEMBERS: groups of members each, e.g. 1x10000 or
2000x10) it starts a coordinator (regroup serve --store memory) on free
loopback ports, creates the members in worker processes (this program,
started again; members in one process share connections as the member
library does), starts them all at once, waits until every group is
settled, measures a steady window, times graceful leaves, with --surge
starts more members at once and watches whether the settled ones keep
their leases, and stops everything. Progress goes to stderr; the table
(or JSON) to stdout.

With --coordinators K (K > 1) it starts K coordinators (regroup serve
--shards, 16 shards unless --shards says) over an etcd that runs in this
process, gives the members every coordinator's address, and reports each
coordinator's CPU and heartbeats (-o json: each_coordinator_*); with
--moves it then starts one more coordinator and SIGKILLs one, timing each
until every coordinator leads its share of the shards and counting the
lease ends and rebalanced groups in the --move-watch after (-o json:
handoff_*, failover_*). CPU pinning and quotas apply to every coordinator.

Columns:
  stable       seconds from the start until every member of every group was
               Stable in one generation and every partition owned (the
               members' own time of the last change, not the report's)
  beyond delay stable less the initial rebalance delay a group whose members
               arrive together waits (two steps of --initial-rebalance-delay:
               the first and one extension)
  after barrier
               stable less the time the last group's first join barrier
               completed (the coordinator's rebalance history): what forming
               the groups took once the coordinator stopped waiting for
               members to arrive (a generator slow to start its members
               extends the delay); the progress line splits it at the last
               group's first accepted assignment (the leader's SyncGroup)
  leave ms     median time from a member's graceful leave until the group's
               other members owned every partition again (--leaves of them)
  coord CPU    the coordinator's CPU during the steady window (100% = a core),
               and per 1,000 members
  workers CPU  the worker processes' CPU in the same window: the members' cost
  RSS          the coordinator's resident memory at the window's end, and per
               member above its idle size
  hb/s         heartbeats answered per second in the window, with the lowest
               and highest one-second rate (a wide range: synchronised beats)
  lease ends   OnLost calls (leases that ended) from the start to the end of
               the leaves, and the partitions in them
  warnings     the members' warning and error log lines (retries, losses)

Flags:
`

func main() {
	if os.Getenv(workerEnv) != "" {
		if err := runWorker(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// options are the command line's.
type options struct {
	settings
	sizes  []size
	output string
	logDir string
}

// settings are the options every size is measured with.
type settings struct {
	regroup             string
	partitionsPerMember int
	protocol            string // the members' group protocol: classic or next
	workers             int
	workerNice          int
	profileWorkers      bool
	coordinatorCPUs     string
	coordinatorQuota    float64 // CPUs the coordinator may use (cgroup); 0: no limit
	workerCPUs          string
	surge               int
	surgeWindow         time.Duration
	delay               time.Duration
	steady              time.Duration
	timeout             time.Duration
	leaves              int
	rate                float64
	session, heartbeat  time.Duration
	serveArgs           []string
	coordinators        int           // coordinator processes over shards; 0 or 1: one
	shards              int           // --shards of each coordinator; 0: one coordinator on --store memory
	moves               bool          // time a join and a kill of coordinators
	moveWatch           time.Duration // how long to watch the members after each move
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fl := flag.NewFlagSet("scale", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usage)
		fl.PrintDefaults()
	}
	sizes := fl.String("sizes", "1x1000", "loads to measure, comma-separated, each GROUPSxMEMBERS (members per group)")
	fl.IntVar(&o.partitionsPerMember, "partitions-per-member", 10, "partitions of the group's topic per member")
	fl.StringVar(&o.protocol, "protocol", "classic", "the members' group protocol: classic (cooperative-sticky, assigned by each group's leader) or next (the next-generation protocol, assigned by the coordinator)")
	fl.IntVar(&o.workers, "workers", 4, "worker processes the members are spread over")
	fl.IntVar(&o.workerNice, "worker-nice", 10, "niceness the worker processes run at, so that the load generator, on the same cores, does not take the CPU the coordinator needs (0: the same priority as the coordinator; needs nice(1))")
	fl.StringVar(&o.coordinatorCPUs, "coordinator-cpus", "", "CPUs the coordinator may run on, as taskset(1) takes them (e.g. 0): with --worker-cpus, a coordinator whose capacity the load generator cannot take (\"\": any)")
	fl.Float64Var(&o.coordinatorQuota, "coordinator-cpu-quota", 0, "limit the coordinator to this many CPUs (0.25: a quarter of one) with a cgroup (cgroup v1 cpu controller; root): a coordinator whose capacity the load generator can exceed twice over on a small machine (0: no limit)")
	fl.StringVar(&o.workerCPUs, "worker-cpus", "", "CPUs the worker processes may run on, as taskset(1) takes them (e.g. 1; \"\": any)")
	fl.IntVar(&o.surge, "surge", 0, "after the leaves, start this many times the size's members more, in groups of their own, all at once, and watch whether the members that were there lose leases (0: no surge; 1 doubles the load)")
	fl.DurationVar(&o.surgeWindow, "surge-window", time.Minute, "how long to watch the surge at most (it ends 10s after every new group settled)")
	fl.BoolVar(&o.profileWorkers, "profile-workers", false, "write each worker process's CPU profile of the whole run to worker-N.cpu.prof in the log directory (go tool pprof reads them)")
	fl.StringVar(&o.regroup, "regroup", "", "the regroup binary to serve with (default: build ./cmd/regroup of the module in the current directory)")
	fl.DurationVar(&o.delay, "initial-rebalance-delay", 3*time.Second, "the coordinator's --initial-rebalance-delay")
	fl.DurationVar(&o.steady, "steady", 20*time.Second, "how long to measure the settled load (CPU, heartbeats)")
	fl.DurationVar(&o.timeout, "timeout", 3*time.Minute, "how long to wait for every group to settle before measuring anyway")
	fl.IntVar(&o.leaves, "leaves", 3, "graceful leaves to time, each in another group")
	fl.Float64Var(&o.rate, "rate", 0, "members started per second, over all workers (0: all at once)")
	fl.DurationVar(&o.session, "session-timeout", 0, "the members' session timeout (0: the library's default)")
	fl.DurationVar(&o.heartbeat, "heartbeat-interval", 0, "the members' heartbeat interval (0: the library's default)")
	fl.IntVar(&o.coordinators, "coordinators", 1, "coordinator processes, sharing an etcd (run by this process) over --shards shards; 1 with --shards 0 is one coordinator on --store memory")
	fl.IntVar(&o.shards, "shards", 0, "shards of a cluster of --coordinators (regroup serve --shards; default 16 with several coordinators; 1 with one coordinator: its groups in etcd, one election)")
	fl.BoolVar(&o.moves, "moves", false, "after the leaves, start one more coordinator, then SIGKILL one: time each until every coordinator leads its share of the shards, and count lease ends and rebalanced groups in the --move-watch after (needs --coordinators 2 or more)")
	fl.DurationVar(&o.moveWatch, "move-watch", 25*time.Second, "how long to watch the members after each move of --moves (a lease lost to it ends within the members' session)")
	serveArgs := fl.String("serve-args", "", "more arguments for regroup serve, space-separated (e.g. \"--max-connections 0\")")
	fl.StringVar(&o.output, "o", "table", "output: table or json")
	fl.StringVar(&o.logDir, "logs", "", "directory for the coordinator's and workers' logs (default: a new temporary directory, kept)")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: sizes go in --sizes", fl.Args())
	}
	if o.coordinators < 1 || o.shards < 0 {
		return nil, fmt.Errorf("--coordinators %d --shards %d: want at least one coordinator and a positive number of shards (0: the default)", o.coordinators, o.shards)
	}
	if o.coordinators > 1 && o.shards == 0 {
		o.shards = 16
	}
	if o.moves && o.coordinators < 2 {
		return nil, fmt.Errorf("--moves needs --coordinators 2 or more: one is killed")
	}
	for _, s := range strings.Split(*sizes, ",") {
		g, m, ok := strings.Cut(strings.TrimSpace(s), "x")
		gn, err1 := strconv.Atoi(g)
		mn, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || gn < 1 || mn < 1 {
			return nil, fmt.Errorf("--sizes: %q is not GROUPSxMEMBERS with positive numbers (e.g. 1x1000 or 2000x10)", s)
		}
		o.sizes = append(o.sizes, size{Groups: gn, Members: mn})
	}
	switch {
	case o.protocol != "classic" && o.protocol != "next":
		return nil, fmt.Errorf("--protocol %q: want classic or next", o.protocol)
	case o.output != "table" && o.output != "json":
		return nil, fmt.Errorf("-o %q: want table or json", o.output)
	case o.workerNice < 0 || o.workerNice > 19:
		return nil, errors.New("--worker-nice must be from 0 to 19 (a lower priority than the coordinator's)")
	case o.workers < 1 || o.partitionsPerMember < 1 || o.leaves < 0:
		return nil, errors.New("--workers and --partitions-per-member must be positive and --leaves not negative")
	case o.coordinatorQuota < 0:
		return nil, errors.New("--coordinator-cpu-quota must not be negative")
	case o.surge < 0 || o.surgeWindow <= 0:
		return nil, errors.New("--surge must not be negative and --surge-window must be positive")
	case o.steady < time.Second:
		return nil, errors.New("--steady must be at least 1s: heartbeat rates are sampled each second")
	}
	o.serveArgs = strings.Fields(*serveArgs)
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.logDir == "" {
		if o.logDir, err = os.MkdirTemp("", "regroup-scale-"); err != nil {
			return err
		}
	}
	if o.regroup == "" {
		o.regroup = filepath.Join(o.logDir, "regroup")
		fmt.Fprintf(stderr, "building ./cmd/regroup into %s\n", o.regroup)
		build := exec.CommandContext(ctx, "go", "build", "-o", o.regroup, "./cmd/regroup")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building regroup (run from the module's root, or give --regroup): %w", err)
		}
	}
	var results []*result
	for _, s := range o.sizes {
		c := runConfig{settings: o.settings, size: s, logDir: filepath.Join(o.logDir, s.String()), progress: stderr}
		c.workers = min(c.workers, s.Groups*s.Members)
		res, err := measure(ctx, c)
		if err != nil {
			return fmt.Errorf("size %s: %w", s, err)
		}
		results = append(results, res)
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tmembers\tstable s\tbeyond delay s\tafter barrier s\tleave ms\tcoord CPU %\t%/1k members\tworkers CPU %\tRSS MB\tKB/member\thb/s\thb/s min-max\tlease ends\tpartitions lost\twarnings\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.0f\t%.1f\t%.0f\t%.0f\t%.1f\t%s\t%s-%.0f\t%d\t%d\t%d\t\n",
			r.Size, r.Members, formatFloat(r.StableS, 2), formatFloat(r.BeyondDelayS, 2), formatFloat(r.AfterBarrierS, 2), formatFloat(r.LeaveMedianMs, 1),
			r.CoordCPUPct, r.CPUPctPer1kMembers, r.WorkersCPUPct, r.CoordRSSMB, r.RSSKBPerMember, formatFloat(r.HeartbeatsPerS, 0),
			formatFloat(r.HeartbeatsMinPerS, 0), r.HeartbeatsMaxPerS, r.LeaseEnds, r.PartitionsLost, r.MemberWarnings)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.surge == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tsurge members\tsurge settled s\tnew groups settled\tstable members' lease ends\tnewcomers' lease ends\toverloaded answers\tcoord CPU %\tworkers CPU %\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t\n", r.Size, r.SurgeMembers, formatFloat(r.SurgeSettledS, 2),
			r.SurgeGroupsSettled, r.StableLeaseEnds, r.SurgeLeaseEnds, r.SurgeOverloaded, r.SurgeCoordCPUPct, r.SurgeWorkersCPUPct)
	}
	return tw.Flush()
}
