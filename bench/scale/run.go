package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// size is one load: groups of members each.
type size struct {
	Groups, Members int
}

func (s size) String() string { return fmt.Sprintf("%dx%d", s.Groups, s.Members) }

// runConfig is how to measure one size.
// runConfig is what measuring one size needs: the settings, the size,
// where its logs go and where progress goes.
type runConfig struct {
	settings
	size     size
	logDir   string
	progress io.Writer
}

// result is what one size measured. Durations are seconds or milliseconds
// as their names say; -1 means not measured (the group never settled).
type result struct {
	Size       string `json:"size"`
	Groups     int    `json:"groups"`
	PerGroup   int    `json:"members_per_group"`
	Protocol   string `json:"protocol"`
	Members    int    `json:"members"`
	Partitions int    `json:"partitions_per_group"`
	Workers    int    `json:"worker_processes"`
	// StartedS is how long the workers took to call Run for every member.
	StartedS float64 `json:"started_s"`
	// StableS is from the start until every member of every group was
	// Stable in one generation and every partition owned: the members' own
	// time of the last change that made it so.
	StableS float64 `json:"stable_s"`
	// BeyondDelayS is StableS less the initial delay a group whose members
	// arrive together waits (InitialDelayS).
	BeyondDelayS  float64 `json:"beyond_delay_s"`
	InitialDelayS float64 `json:"initial_delay_s"`
	// BarrierS is from the start until the last group's first join
	// barrier completed, as the coordinator's rebalance history records
	// it: the initial delay and its extensions while members kept arriving
	// (the workers take StartedS to start them all). AfterBarrierS is
	// StableS less BarrierS: what forming the groups took once the
	// coordinator stopped waiting for members.
	BarrierS      float64 `json:"barrier_s"`
	AfterBarrierS float64 `json:"after_barrier_s"`
	// AcceptedS is from the start until the last group's first assignment
	// was accepted (its leader's SyncGroup): AcceptedS less BarrierS is
	// the coordinator's and the leader's part of forming, StableS less
	// AcceptedS the members' (answers delivered and taken).
	AcceptedS float64 `json:"accepted_s"`
	// LeaveMs are graceful leaves, each from the leave until every
	// partition of the group was owned again by the others, in one new
	// generation; LeaveMedianMs is their median.
	LeaveMs       []float64 `json:"leave_ms"`
	LeaveMedianMs float64   `json:"leave_median_ms"`
	// The coordinator during the steady window: CPU (100 = one core; the
	// worker processes' too, in WorkersCPUPct), and
	// its resident memory at the end, whole and above its idle size per
	// member.
	CoordCPUPct        float64 `json:"coordinator_cpu_pct"`
	WorkersCPUPct      float64 `json:"workers_cpu_pct"`
	CPUPctPer1kMembers float64 `json:"coordinator_cpu_pct_per_1k_members"`
	CoordRSSMB         float64 `json:"coordinator_rss_mb"`
	// CoordQuota is --coordinator-cpu-quota, and CoordThrottledS how long
	// the quota held the coordinator back over the whole run.
	CoordQuota      float64 `json:"coordinator_cpu_quota,omitempty"`
	CoordThrottledS float64 `json:"coordinator_throttled_s,omitempty"`
	RSSKBPerMember  float64 `json:"coordinator_rss_kb_per_member"`
	// Heartbeats answered per second over the steady window, and the
	// lowest and highest one-second rate within it (-1: the coordinator's
	// metrics did not answer); a next-generation member's Reconcile calls
	// are its heartbeats.
	HeartbeatsPerS    float64 `json:"heartbeats_per_s"`
	HeartbeatsMinPerS float64 `json:"heartbeats_min_per_s"`
	HeartbeatsMaxPerS float64 `json:"heartbeats_max_per_s"`
	// LeaseEnds counts OnLost calls (members whose lease ended) from the
	// start to the end of the leaves; PartitionsLost the partitions in them.
	LeaseEnds      int64 `json:"lease_ends"`
	PartitionsLost int64 `json:"partitions_lost"`
	// MemberWarnings counts the members' warning and error log lines
	// (retries, lost leases); Failed the members whose Run returned an
	// error.
	MemberWarnings int64 `json:"member_warnings"`
	Failed         int64 `json:"members_failed"`
	// Answers counts the coordinator's answers by method and code over the
	// whole run, from its regroup_requests_total.
	Answers map[string]float64 `json:"answers"`
	// The surge (--surge): SurgeMembers more members, in groups of their
	// own, all started once the graceful leaves were timed. SurgeSettledS
	// is from their start until every surge group was settled (-1: not
	// within --surge-window); StableLeaseEnds counts the lease ends of the
	// members that were there before the surge, from its start to the end
	// of the window (the aim: none), SurgeLeaseEnds the newcomers'.
	// SurgeOverloaded counts the calls the coordinator refused as
	// overloaded over the window, SurgeCoordCPUPct its CPU and
	// SurgeWorkersCPUPct the worker processes' (100 = one core: a
	// generator at the CPUs it may use starves its own members, whose
	// leases then end whatever the coordinator does).
	SurgeMembers       int     `json:"surge_members,omitempty"`
	SurgeSettledS      float64 `json:"surge_settled_s,omitempty"`
	SurgeGroupsSettled int     `json:"surge_groups_settled,omitempty"`
	StableLeaseEnds    int64   `json:"stable_lease_ends_in_surge,omitempty"`
	SurgeLeaseEnds     int64   `json:"surge_lease_ends,omitempty"`
	SurgeOverloaded    float64 `json:"surge_overloaded_answers,omitempty"`
	SurgeCoordCPUPct   float64 `json:"surge_coordinator_cpu_pct,omitempty"`
	SurgeWorkersCPUPct float64 `json:"surge_workers_cpu_pct,omitempty"`
	// Coordinators and Shards: --coordinators and --shards (0 and 1 for a
	// lone coordinator). EachCPUPct and EachHeartbeatsPerS are each
	// coordinator's CPU and heartbeats answered in the steady window.
	Coordinators       int       `json:"coordinators"`
	Shards             int       `json:"shards"`
	EachCPUPct         []float64 `json:"each_coordinator_cpu_pct,omitempty"`
	EachHeartbeatsPerS []float64 `json:"each_coordinator_heartbeats_per_s,omitempty"`
	// With --moves: a coordinator joins (Handoff), then one is killed
	// (Failover); each is timed until every live coordinator leads its
	// share of the shards, and the members are watched for 25 s after:
	// lease ends, and groups whose generation changed.
	HandoffS           float64 `json:"handoff_s,omitempty"`
	HandoffLeaseEnds   int64   `json:"handoff_lease_ends"`
	HandoffRebalanced  int     `json:"handoff_groups_rebalanced"`
	FailoverS          float64 `json:"failover_s,omitempty"`
	FailoverLeaseEnds  int64   `json:"failover_lease_ends"`
	FailoverRebalanced int     `json:"failover_groups_rebalanced"`
	// LogDir holds the coordinator's and the workers' logs.
	LogDir string `json:"log_dir"`
}

// workerProc is a running worker process.
type workerProc struct {
	cmd  *exec.Cmd
	in   *json.Encoder
	spec workerSpec
	done chan struct{} // its reports ended
}

// tracker merges the workers' reports.
type tracker struct {
	mu     sync.Mutex
	groups [][]groupReport // [group][worker]
	totals []report        // latest per worker
	ready  int
	// next: the members run the next-generation protocol, whose member
	// epochs differ while only some members' assignments changed.
	next bool
}

func (t *tracker) update(w int, r report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Ready {
		t.ready++
		return
	}
	groups := r.Groups
	r.Groups = nil
	t.totals[w] = r
	for _, g := range groups {
		t.groups[g.Group][w] = g
	}
}

// group merges group g's reports: running members, stable ones, the
// lowest and highest generation, partitions owned, last change.
func (t *tracker) group(g int) (running, stable int, lo, hi int32, owned int, last int64) {
	lo, hi = -1, -1
	for _, r := range t.groups[g] {
		if r.Running == 0 {
			continue
		}
		running += r.Running
		stable += r.Stable
		if lo < 0 || r.GenMin < lo {
			lo = r.GenMin
		}
		hi = max(hi, r.GenMax)
		owned += r.Owned
		last = max(last, r.Last)
	}
	return
}

// settled reports whether group g has want running members, all Stable in
// one generation above after (classic groups: next-generation members learn
// an epoch that moved nothing of theirs at their next held call), owning
// every one of partitions.
func (t *tracker) settled(g, want, partitions int, after int32) (bool, int64) {
	running, stable, lo, hi, owned, last := t.group(g)
	sameGeneration := t.next || lo == hi && lo > after
	return running == want && stable == want && sameGeneration && owned == partitions, last
}

func (t *tracker) sum() (r report) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.totals {
		r.Started += w.Started
		r.Running += w.Running
		r.Lost += w.Lost
		r.LostParts += w.LostParts
		r.SurgeLost += w.SurgeLost
		r.SurgeLostParts += w.SurgeLostParts
		r.Warnings += w.Warnings
		r.Failed += w.Failed
	}
	return r
}

// measure runs one size: a coordinator process, worker processes with the
// members, and the measurements; everything it started is stopped when it
// returns.
func measure(ctx context.Context, c runConfig) (*result, error) {
	n := c.size.Groups * c.size.Members
	parts := c.size.Members * c.partitionsPerMember
	res := &result{Size: c.size.String(), Coordinators: c.coordinators, Shards: c.shards, Groups: c.size.Groups, PerGroup: c.size.Members, Protocol: c.protocol, Members: n,
		Partitions: parts, Workers: c.workers, StableS: -1, BeyondDelayS: -1, LeaveMedianMs: -1, LogDir: c.logDir}
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return nil, err
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(c.progress, "[%s] "+format+"\n", append([]any{c.size}, args...)...)
	}

	// The coordinators, each in its own process.
	cs, err := startCoordinators(c, progress)
	if err != nil {
		return nil, err
	}
	defer cs.stop()
	if err := putTopic(ctx, cs.addr(), parts, cs.exited); err != nil {
		return nil, fmt.Errorf("%w (coordinator logs: %s)", err, cs.logs())
	}
	if c.sharded() {
		if _, err := cs.placed(ctx, time.Now(), time.Minute); err != nil {
			return nil, err
		}
	}
	idleRSS, _ := cs.rss()

	// The workers, each with its share of the members.
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	surgeN := n * c.surge
	t := &tracker{totals: make([]report, c.workers), groups: make([][]groupReport, c.size.Groups*(1+c.surge)), next: c.protocol == "next"}
	for g := range t.groups {
		t.groups[g] = make([]groupReport, c.workers)
	}
	var workers []*workerProc
	defer func() {
		for _, w := range workers {
			_ = w.in.Encode(command{Op: "stop"})
		}
		for _, w := range workers {
			select {
			case <-w.done:
			case <-time.After(45 * time.Second):
			}
			_ = w.cmd.Process.Kill()
			_ = w.cmd.Wait()
		}
	}()
	for i := range c.workers {
		first, count := i*n/c.workers, (i+1)*n/c.workers-i*n/c.workers
		spec := workerSpec{Index: i, Endpoint: strings.Join(cs.addrs(), ","), Topic: "scale", First: first, Count: count, PerGroup: c.size.Members, Protocol: c.protocol,
			Session: c.session, Heartbeat: c.heartbeat, LogPath: filepath.Join(c.logDir, fmt.Sprintf("worker-%d.log", i)),
			SurgeFirst: n + i*surgeN/c.workers, SurgeCount: (i+1)*surgeN/c.workers - i*surgeN/c.workers}
		if c.profileWorkers {
			spec.CPUProfile = filepath.Join(c.logDir, fmt.Sprintf("worker-%d.cpu.prof", i))
		}
		w, err := startWorker(exe, c.workerCPUs, c.workerNice, spec, t, filepath.Join(c.logDir, fmt.Sprintf("worker-%d.stderr", i)))
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	if err := waitFor(ctx, 2*time.Minute, "every worker to create its members", func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.ready == c.workers
	}); err != nil {
		return nil, err
	}

	// scrape returns the coordinator's answers so far, or nil if its
	// metrics did not answer (an overloaded coordinator may be slow to).
	scrape := func() map[string]float64 {
		counts, _, err := cs.counts(ctx)
		if err != nil {
			progress("the coordinator's metrics did not answer: %v", err)
			return nil
		}
		return counts
	}

	// Start every member; wait until every group is settled.
	counts0 := scrape()
	progress("%d members in %d worker processes against %s; logs in %s", n, c.workers, strings.Join(cs.addrs(), ", "), c.logDir)
	start := time.Now()
	for _, w := range workers {
		if err := w.in.Encode(command{Op: "go", Rate: c.rate / float64(c.workers)}); err != nil {
			return nil, err
		}
	}
	want := make([]int, c.size.Groups)
	for g := range want {
		want[g] = c.size.Members
	}
	// allSettled counts the settled groups and returns the last change of
	// a member among them (Unix ns, as the member saw it), so that the
	// time to stable is when the last member took its assignment, not
	// when the next report came.
	allSettled := func() (k int, last int64) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for g := range want {
			if ok, l := t.settled(g, want[g], parts, 0); ok {
				k++
				last = max(last, l)
			}
		}
		return k, last
	}
	lastProgress := time.Now()
	cpu0 := cs.cpu()
	for {
		settledGroups, last := allSettled()
		sum := t.sum()
		if res.StartedS < 0.001 && sum.Started == n {
			res.StartedS = time.Since(start).Seconds()
		}
		if settledGroups == c.size.Groups {
			res.StableS = time.Unix(0, last).Sub(start).Seconds()
			break
		}
		if time.Since(lastProgress) >= 2*time.Second {
			cpu1 := cs.cpu()
			r, _ := cs.rss()
			progress("%5.1fs: %d started, %d running, %d/%d groups settled, %d lease ends, %d member warnings; coordinator %.0f%% CPU, %d MB",
				time.Since(start).Seconds(), sum.Started, sum.Running, settledGroups, c.size.Groups, sum.Lost, sum.Warnings,
				100*(cpu1-cpu0).Seconds()/time.Since(lastProgress).Seconds(), r>>20)
			cpu0, lastProgress = cpu1, time.Now()
		}
		if time.Since(start) > c.timeout {
			progress("not settled after %v: measuring the steady window anyway", c.timeout)
			break
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if res.StableS >= 0 {
		res.InitialDelayS = 2 * c.delay.Seconds()
		if c.size.Members == 1 {
			res.InitialDelayS = c.delay.Seconds()
		}
		res.BeyondDelayS = res.StableS - res.InitialDelayS
		res.BarrierS, res.AfterBarrierS, res.AcceptedS = -1, -1, -1
		if barrier, accepted, err := firstRebalances(ctx, cs.addr(), c.size.Groups); err != nil {
			progress("the groups' join barriers are unknown: %v", err)
		} else {
			res.BarrierS = barrier.Sub(start).Seconds()
			res.AfterBarrierS = res.StableS - res.BarrierS
			res.AcceptedS = accepted.Sub(start).Seconds()
		}
		progress("settled in %.2fs (%.2fs beyond the initial delay; the last join barrier at %.2fs, %.2fs before; the last assignment accepted at %.2fs)",
			res.StableS, res.BeyondDelayS, res.BarrierS, res.AfterBarrierS, res.AcceptedS)
	}

	// The steady window. Heartbeats are counted from the first sample the
	// metrics answered to the last; a sample they missed is skipped.
	cpuA, eachA := cs.cpu(), cs.cpus()
	_, hbA, _ := cs.counts(ctx)
	wcpuA := workersCPU(workers)
	windowStart := time.Now()
	var first, prev float64
	var firstAt, prevAt time.Time
	beat := "Heartbeat"
	if c.protocol == "next" {
		beat = "Reconcile"
	}
	if counts := scrape(); counts != nil {
		first, prev = sumMethod(counts, beat), sumMethod(counts, beat)
		firstAt, prevAt = windowStart, windowStart
	}
	res.HeartbeatsPerS, res.HeartbeatsMinPerS = -1, -1
	for time.Since(windowStart) < c.steady {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return nil, err
		}
		counts := scrape()
		if counts == nil {
			continue
		}
		hb, at := sumMethod(counts, beat), time.Now()
		if firstAt.IsZero() {
			first, prev, firstAt, prevAt = hb, hb, at, at
			continue
		}
		rate := (hb - prev) / at.Sub(prevAt).Seconds()
		if res.HeartbeatsMinPerS < 0 || rate < res.HeartbeatsMinPerS {
			res.HeartbeatsMinPerS = rate
		}
		res.HeartbeatsMaxPerS = max(res.HeartbeatsMaxPerS, rate)
		prev, prevAt = hb, at
		res.HeartbeatsPerS = (prev - first) / prevAt.Sub(firstAt).Seconds()
		if time.Since(lastProgress) >= 5*time.Second {
			sum := t.sum()
			progress("steady %2.0fs/%v: %.0f heartbeats/s, %d lease ends", time.Since(windowStart).Seconds(), c.steady, rate, sum.Lost)
			lastProgress = time.Now()
		}
	}
	cpuB, eachB := cs.cpu(), cs.cpus()
	_, hbB, _ := cs.counts(ctx)
	window := time.Since(windowStart).Seconds()
	res.CoordCPUPct = 100 * (cpuB - cpuA).Seconds() / window
	if c.sharded() {
		for i := range eachB {
			res.EachCPUPct = append(res.EachCPUPct, 100*(eachB[i]-eachA[i]).Seconds()/window)
			if hbA != nil && hbB != nil {
				res.EachHeartbeatsPerS = append(res.EachHeartbeatsPerS, (sumMethod(hbB[i], beat)-sumMethod(hbA[i], beat))/window)
			}
		}
		progress("steady window, each coordinator: CPU %s%%, heartbeats/s %s", formatList(res.EachCPUPct), formatList(res.EachHeartbeatsPerS))
	}
	res.WorkersCPUPct = 100 * (workersCPU(workers) - wcpuA).Seconds() / window
	progress("steady window: coordinator %.0f%% CPU, the worker processes %.0f%% (100%% = a core)", res.CoordCPUPct, res.WorkersCPUPct)
	res.CPUPctPer1kMembers = res.CoordCPUPct * 1000 / float64(n)
	if r, err := cs.rss(); err == nil {
		res.CoordRSSMB = float64(r) / (1 << 20)
		res.RSSKBPerMember = float64(r-idleRSS) / 1024 / float64(n)
	}

	// Graceful leaves, one group at a time.
	if res.StableS >= 0 {
		for i := range c.leaves {
			g := i * c.size.Groups / c.leaves
			k := g*c.size.Members + c.size.Members - 1 - i%c.size.Members
			t.mu.Lock()
			_, _, _, before, _, _ := t.group(g)
			t.mu.Unlock()
			var w *workerProc
			for _, x := range workers {
				if k >= x.spec.First && k < x.spec.First+x.spec.Count {
					w = x
				}
			}
			want[g]--
			left := time.Now()
			if err := w.in.Encode(command{Op: "leave", Member: k}); err != nil {
				return nil, err
			}
			var last int64
			err := waitFor(ctx, time.Minute, fmt.Sprintf("group %s to settle after member %d left", groupName(g), k), func() bool {
				t.mu.Lock()
				defer t.mu.Unlock()
				ok, l := t.settled(g, want[g], parts, before)
				last = l
				return ok
			})
			if err != nil {
				progress("%v", err)
				break
			}
			ms := float64(time.Unix(0, last).Sub(left).Microseconds()) / 1000
			res.LeaveMs = append(res.LeaveMs, ms)
			detail := ""
			if all, err := rebalances(ctx, cs.addr(), g); err == nil && len(all[0]) > 0 {
				detail = " (" + phases(all[0][len(all[0])-1]) + ")"
			}
			progress("leave %d/%d: group %s settled %.1f ms after the leave%s", i+1, c.leaves, groupName(g), ms, detail)
		}
		if len(res.LeaveMs) > 0 {
			res.LeaveMedianMs = median(res.LeaveMs)
		}
	}
	sum := t.sum()
	res.LeaseEnds, res.PartitionsLost, res.MemberWarnings, res.Failed = sum.Lost, sum.LostParts, sum.Warnings, sum.Failed
	if c.moves {
		if err := moves(ctx, c, res, cs, t, progress); err != nil {
			return nil, err
		}
	}
	if surgeN > 0 {
		if err := surge(ctx, c, res, workers, t, cs, parts, scrape, progress); err != nil {
			return nil, err
		}
	}
	if counts := scrape(); counts != nil {
		res.Answers = map[string]float64{}
		for k, v := range counts {
			if d := v - counts0[k]; d > 0 {
				res.Answers[k] = d
			}
		}
	}
	if c.coordinatorQuota > 0 {
		res.CoordQuota = c.coordinatorQuota
		res.CoordThrottledS = cs.throttled()
	}
	return res, nil
}

// surge starts the surge members, all at once, and watches for
// --surge-window (or until their groups settled and 10 s more passed):
// whether the members that were there before lose leases, how the
// newcomers fare, and what the coordinator refuses.
func surge(ctx context.Context, c runConfig, res *result, workers []*workerProc, t *tracker, cs *coordinators, parts int,
	scrape func() map[string]float64, progress func(string, ...any)) error {
	n := c.size.Groups * c.size.Members
	res.SurgeMembers, res.SurgeSettledS = n*c.surge, -1
	overloaded := func(counts map[string]float64) float64 {
		var k float64
		for key, v := range counts {
			if strings.HasSuffix(key, " "+string(regroup.CodeCoordinatorOverloaded)) {
				k += v
			}
		}
		return k
	}
	before := t.sum()
	counts0 := scrape()
	cpuA := cs.cpu()
	wcpuA := workersCPU(workers)
	progress("surge: starting %d more members in %d more groups", res.SurgeMembers, c.size.Groups*c.surge)
	start := time.Now()
	for _, w := range workers {
		if err := w.in.Encode(command{Op: "surge"}); err != nil {
			return err
		}
	}
	lastProgress := start
	for time.Since(start) < c.surgeWindow {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		k := 0
		for g := c.size.Groups; g < c.size.Groups*(1+c.surge); g++ {
			t.mu.Lock()
			ok, _ := t.settled(g, c.size.Members, parts, 0)
			t.mu.Unlock()
			if ok {
				k++
			}
		}
		res.SurgeGroupsSettled = k
		if k == c.size.Groups*c.surge && res.SurgeSettledS < 0 {
			res.SurgeSettledS = time.Since(start).Seconds()
			progress("surge: every new group settled in %.2fs; watching 10s more", res.SurgeSettledS)
		}
		if res.SurgeSettledS >= 0 && time.Since(start).Seconds() > res.SurgeSettledS+10 {
			break
		}
		if time.Since(lastProgress) >= 5*time.Second {
			sum := t.sum()
			progress("surge %4.1fs: %d/%d new groups settled; lease ends: %d of the stable members, %d of the newcomers",
				time.Since(start).Seconds(), k, c.size.Groups*c.surge, sum.Lost-before.Lost, sum.SurgeLost)
			lastProgress = time.Now()
		}
	}
	cpuB := cs.cpu()
	res.SurgeCoordCPUPct = 100 * (cpuB - cpuA).Seconds() / time.Since(start).Seconds()
	res.SurgeWorkersCPUPct = 100 * (workersCPU(workers) - wcpuA).Seconds() / time.Since(start).Seconds()
	sum := t.sum()
	res.StableLeaseEnds, res.SurgeLeaseEnds = sum.Lost-before.Lost, sum.SurgeLost
	if counts := scrape(); counts != nil && counts0 != nil {
		res.SurgeOverloaded = overloaded(counts) - overloaded(counts0)
	}
	progress("surge: %d lease ends of the stable members, %d of the newcomers, %.0f calls refused as overloaded; coordinator %.0f%% CPU, workers %.0f%%",
		res.StableLeaseEnds, res.SurgeLeaseEnds, res.SurgeOverloaded, res.SurgeCoordCPUPct, res.SurgeWorkersCPUPct)
	return nil
}

// workersCPU returns the CPU time the worker processes used so far.
func workersCPU(workers []*workerProc) time.Duration {
	var d time.Duration
	for _, w := range workers {
		c, _ := cpuTime(w.cmd.Process.Pid)
		d += c
	}
	return d
}

// pinned returns the command that runs name with args on the CPUs cpus
// (through taskset(1); "" means any) at niceness nice (through nice(1), so
// that every thread of the process has it; 0 means unchanged). A Go
// program sizes GOMAXPROCS to the CPUs it may run on.
func pinned(cpus string, nice int, name string, args ...string) *exec.Cmd {
	argv := append([]string{name}, args...)
	if nice > 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(nice)}, argv...)
	}
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// startWorker starts a worker process running spec on cpus at niceness
// nice (see pinned); its reports go to t.
func startWorker(exe, cpus string, nice int, spec workerSpec, t *tracker, stderrPath string) (*workerProc, error) {
	cmd := pinned(cpus, nice, exe)
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %d: %w", spec.Index, err)
	}
	stderr.Close()
	w := &workerProc{cmd: cmd, in: json.NewEncoder(in), spec: spec, done: make(chan struct{})}
	if err := w.in.Encode(spec); err != nil {
		return nil, err
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 16<<20), 16<<20)
		for sc.Scan() {
			var r report
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				t.update(spec.Index, r)
			}
		}
	}()
	return w, nil
}

// rebalances returns the rebalance history of each of groups (oldest
// first), from the coordinator at addr.
func rebalances(ctx context.Context, addr string, groups ...int) ([][]*regroupv1.Rebalance, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	admin := regroupv1.NewAdminClient(conn)
	var out [][]*regroupv1.Rebalance
	for _, g := range groups {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := admin.DescribeGroup(cctx, &regroupv1.DescribeGroupRequest{GroupId: groupName(g)})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("describing %s: %w", groupName(g), err)
		}
		out = append(out, d.GetRebalances())
	}
	return out, nil
}

// firstRebalances returns when the last of the groups' first join
// barriers completed and when the last of their first assignments was
// accepted (Rebalance.join_completed and assignment_accepted of each
// group's oldest rebalance).
func firstRebalances(ctx context.Context, addr string, groups int) (barrier, accepted time.Time, err error) {
	ids := make([]int, groups)
	for i := range ids {
		ids[i] = i
	}
	all, err := rebalances(ctx, addr, ids...)
	if err != nil {
		return barrier, accepted, err
	}
	for g, rs := range all {
		if len(rs) == 0 || rs[0].GetJoinCompleted() == nil || rs[0].GetAssignmentAccepted() == nil {
			return barrier, accepted, fmt.Errorf("%s has no completed first rebalance in its history", groupName(g))
		}
		barrier = latest(barrier, rs[0].GetJoinCompleted().AsTime())
		accepted = latest(accepted, rs[0].GetAssignmentAccepted().AsTime())
	}
	return barrier, accepted, nil
}

// phases describes a rebalance's phases: from its start to its join
// barrier, and on to its accepted assignment.
func phases(r *regroupv1.Rebalance) string {
	if r.GetJoinCompleted() == nil || r.GetAssignmentAccepted() == nil {
		return "phases unknown"
	}
	start, barrier, accepted := r.GetStart().AsTime(), r.GetJoinCompleted().AsTime(), r.GetAssignmentAccepted().AsTime()
	return fmt.Sprintf("join barrier %.1f ms after its start, assignment accepted %.1f ms later",
		float64(barrier.Sub(start).Microseconds())/1000, float64(accepted.Sub(barrier).Microseconds())/1000)
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// putTopic creates the topic the members consume, retrying while the
// coordinator starts (at most 30 s).
func putTopic(ctx context.Context, addr string, partitions int, exited <-chan struct{}) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := regroupv1.NewAdminClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = admin.PutTopic(cctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "scale", Partitions: int32(partitions)}})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("the coordinator exited at start")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the coordinator at %s did not take the topic within 30 s: %w", addr, err)
		}
	}
}

// stopProcess ends p with SIGTERM, and SIGKILL if it has not exited
// within grace.
func stopProcess(p *exec.Cmd, exited <-chan struct{}, grace time.Duration) {
	_ = p.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Process.Kill()
		<-exited
	}
}

// waitFor polls cond every 20 ms until it holds, for at most limit; the
// error names what it waited for.
func waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s", limit, what)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// formatFloat prints x with prec decimals, or "-" if it is negative (not
// measured).
func formatFloat(x float64, prec int) string {
	if x < 0 {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}
