package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/regroup-dev/regroup/member"
	"github.com/regroup-dev/regroup/member/fsm"
)

// workerEnv marks a process started as a worker: it reads its workerSpec
// and then commands on stdin, and writes reports on stdout.
const workerEnv = "REGROUP_SCALE_WORKER"

// workerSpec is what one worker process runs: members first..first+count-1
// of the run, and surge members surgeFirst..surgeFirst+surgeCount-1, which
// start only on "surge"; member k is member k%perGroup of group k/perGroup.
type workerSpec struct {
	Index     int           `json:"index"`
	Endpoint  string        `json:"endpoint"` // the coordinators, comma-separated
	Topic     string        `json:"topic"`
	First     int           `json:"first"`
	Count     int           `json:"count"`
	PerGroup  int           `json:"per_group"`
	Protocol  string        `json:"protocol"`
	Session   time.Duration `json:"session"`
	Heartbeat time.Duration `json:"heartbeat"`
	LogPath   string        `json:"log_path"`
	// SurgeFirst and SurgeCount are the surge members (see --surge).
	SurgeFirst int `json:"surge_first,omitempty"`
	SurgeCount int `json:"surge_count,omitempty"`
	// CPUProfile, if set, is where the worker writes its CPU profile of
	// the whole run.
	CPUProfile string `json:"cpu_profile,omitempty"`
}

// command is what the parent asks of a worker.
type command struct {
	Op string `json:"op"` // "go", "surge", "leave" or "stop"
	// Rate, for "go" and "surge": members started per second, across this
	// worker (0: all at once).
	Rate float64 `json:"rate,omitempty"`
	// Member, for "leave": the run-wide index of the member to stop.
	Member int `json:"member,omitempty"`
}

// groupReport is one worker's view of one group: its members that run
// here.
type groupReport struct {
	Group   int   `json:"g"`
	Running int   `json:"n"`
	Stable  int   `json:"s"`
	GenMin  int32 `json:"lo"`
	GenMax  int32 `json:"hi"`
	Owned   int   `json:"o"`
	// Last is when one of these members last changed (Unix ns).
	Last int64 `json:"t"`
}

// report is a worker's news since its previous report.
type report struct {
	Ready     bool  `json:"ready,omitempty"`
	Done      bool  `json:"done,omitempty"`
	Started   int   `json:"started"`
	Running   int   `json:"running"`
	Lost      int64 `json:"lost"`
	LostParts int64 `json:"lost_parts"`
	// SurgeLost and SurgeLostParts are the surge members' (Lost and
	// LostParts are the others').
	SurgeLost      int64         `json:"surge_lost"`
	SurgeLostParts int64         `json:"surge_lost_parts"`
	Warnings       int64         `json:"warnings"`
	Failed         int64         `json:"failed"`
	Groups         []groupReport `json:"groups,omitempty"`
}

// wmember is one member of a worker and what it last reported.
type wmember struct {
	group  int
	m      *member.Member
	stop   context.CancelFunc
	ended  chan struct{}
	state  fsm.State
	gen    int32
	owned  int
	last   int64
	gone   bool // told to leave, or Run returned
	starts bool // Run was called
	surge  bool // starts on "surge", not on "go"
}

// worker runs its members and reports on them.
type worker struct {
	spec    workerSpec
	mu      sync.Mutex
	members []*wmember
	dirty   map[int]bool
	started int

	lost, lostParts, failed   atomic.Int64
	surgeLost, surgeLostParts atomic.Int64
	warnings                  countingWriter
}

// countingWriter counts the warning and error lines written through it.
type countingWriter struct {
	w     io.Writer
	count atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.count.Add(1)
	return c.w.Write(p)
}

// runWorker is a worker process's main: it reads its spec from stdin,
// creates its members, reports ready, and obeys commands until "stop".
func runWorker() error {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	if !in.Scan() {
		return fmt.Errorf("scale worker: no spec on stdin: %v", in.Err())
	}
	var spec workerSpec
	if err := json.Unmarshal(in.Bytes(), &spec); err != nil {
		return fmt.Errorf("scale worker: bad spec: %w", err)
	}
	logFile, err := os.Create(spec.LogPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	w := &worker{spec: spec, dirty: map[int]bool{}}
	w.warnings.w = logFile
	log := hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("worker-%d", spec.Index), Level: hclog.Warn, Output: &w.warnings})
	add := func(k int, surge bool) error {
		wm := &wmember{group: k / spec.PerGroup, ended: make(chan struct{}), gen: -1, surge: surge}
		lost, lostParts := &w.lost, &w.lostParts
		if surge {
			lost, lostParts = &w.surgeLost, &w.surgeLostParts
		}
		m, err := member.New(member.Config{
			Endpoints:         strings.Split(spec.Endpoint, ","),
			Group:             groupName(wm.group),
			Topics:            []string{spec.Topic},
			ClientID:          fmt.Sprintf("scale-%d", spec.Index),
			Protocol:          spec.Protocol,
			SessionTimeout:    spec.Session,
			HeartbeatInterval: spec.Heartbeat,
			Logger:            log,
			Listener: member.ListenerFuncs{Lost: func(_ context.Context, ps []member.Partition) {
				lost.Add(1)
				lostParts.Add(int64(len(ps)))
			}},
		})
		if err != nil {
			return err
		}
		wm.m = m
		w.members = append(w.members, wm)
		return nil
	}
	for k := spec.First; k < spec.First+spec.Count; k++ {
		if err := add(k, false); err != nil {
			return err
		}
	}
	for k := spec.SurgeFirst; k < spec.SurgeFirst+spec.SurgeCount; k++ {
		if err := add(k, true); err != nil {
			return err
		}
	}
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(report{Ready: true}); err != nil {
		return err
	}
	stopReports := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				_ = out.Encode(w.report(false))
			case <-stopReports:
				return
			}
		}
	}()
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			return fmt.Errorf("scale worker: bad command: %w", err)
		}
		switch c.Op {
		case "go":
			go w.startAll(c.Rate, false)
		case "surge":
			go w.startAll(c.Rate, true)
		case "leave":
			w.leave(c.Member - spec.First)
		case "stop":
			w.stopAll(30 * time.Second)
			close(stopReports)
			<-reported
			return out.Encode(w.report(true))
		}
	}
	return fmt.Errorf("scale worker: stdin closed before stop")
}

func groupName(g int) string { return fmt.Sprintf("g%05d", g) }

// startAll runs every member (the surge members if surge, the others if
// not), at rate members a second (0: at once).
func (w *worker) startAll(rate float64, surge bool) {
	start := time.Now()
	i := -1
	for _, wm := range w.members {
		if wm.surge != surge {
			continue
		}
		i++
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
		w.mu.Lock()
		if wm.gone {
			w.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		wm.stop, wm.starts = cancel, true
		w.started++
		w.mu.Unlock()
		go w.watch(wm)
		go func() {
			defer close(wm.ended)
			if err := wm.m.Run(ctx); err != nil {
				w.failed.Add(1)
			}
			w.mu.Lock()
			wm.gone = true
			w.dirty[wm.group] = true
			w.mu.Unlock()
		}()
	}
}

// watch records a member's changes until its Run returns.
func (w *worker) watch(wm *wmember) {
	for {
		select {
		case c := <-wm.m.Changes():
			w.mu.Lock()
			if !wm.gone {
				wm.state, wm.gen, wm.owned, wm.last = c.State, c.Generation, len(c.Assignment), c.Time.UnixNano()
				w.dirty[wm.group] = true
			}
			w.mu.Unlock()
		case <-wm.ended:
			return
		}
	}
}

// leave stops member i of this worker (Run's context ends: it revokes and
// leaves); it no longer counts in its group from now on.
func (w *worker) leave(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i < 0 || i >= len(w.members) {
		return
	}
	wm := w.members[i]
	wm.gone = true
	w.dirty[wm.group] = true
	if wm.stop != nil {
		wm.stop()
	}
}

// stopAll stops every member and waits for them, at most for wait.
func (w *worker) stopAll(wait time.Duration) {
	w.mu.Lock()
	for _, wm := range w.members {
		if wm.stop != nil {
			wm.stop()
		}
	}
	w.mu.Unlock()
	deadline := time.After(wait)
	for _, wm := range w.members {
		if !wm.starts {
			continue
		}
		select {
		case <-wm.ended:
		case <-deadline:
			return
		}
	}
}

// report summarises the groups that changed since the last report.
func (w *worker) report(done bool) report {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := report{Done: done, Started: w.started, Lost: w.lost.Load(), LostParts: w.lostParts.Load(),
		SurgeLost: w.surgeLost.Load(), SurgeLostParts: w.surgeLostParts.Load(),
		Warnings: w.warnings.count.Load(), Failed: w.failed.Load()}
	byGroup := map[int]*groupReport{}
	for g := range w.dirty {
		byGroup[g] = &groupReport{Group: g, GenMin: -1, GenMax: -1}
	}
	for _, wm := range w.members {
		if !wm.gone && wm.starts {
			r.Running++
		}
		gr := byGroup[wm.group]
		if gr == nil || wm.gone {
			continue
		}
		gr.Running++
		if wm.state == fsm.Stable {
			gr.Stable++
		}
		if gr.GenMin < 0 || wm.gen < gr.GenMin {
			gr.GenMin = wm.gen
		}
		gr.GenMax = max(gr.GenMax, wm.gen)
		gr.Owned += wm.owned
		gr.Last = max(gr.Last, wm.last)
	}
	for _, gr := range byGroup {
		r.Groups = append(r.Groups, *gr)
	}
	clear(w.dirty)
	return r
}
