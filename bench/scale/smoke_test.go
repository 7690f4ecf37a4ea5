package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the load generator's worker
// processes, as the command does.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		if err := runWorker(); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the load generator on a tiny load, with a surge that
// doubles it, against a real regroup serve, with each group protocol:
// every measurement is taken, nothing is lost.
func TestSmoke(t *testing.T) {
	bin := buildRegroup(t)
	for _, protocol := range []string{"classic", "next"} {
		t.Run(protocol, func(t *testing.T) { smoke(t, bin, protocol) })
	}
}

func smoke(t *testing.T, bin, protocol string) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := measure(ctx, runConfig{
		settings: settings{
			regroup: bin, partitionsPerMember: 2, workers: 2, protocol: protocol,
			delay: 100 * time.Millisecond, steady: 2 * time.Second, timeout: time.Minute, leaves: 1,
			session: 6 * time.Second, heartbeat: 300 * time.Millisecond,
			surge: 1, surgeWindow: time.Minute,
		},
		size: size{Groups: 2, Members: 3}, logDir: filepath.Join(dir, "logs"), progress: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.StableS < 0 || len(res.LeaveMs) != 1 || res.HeartbeatsPerS <= 0 || res.CoordRSSMB <= 0 {
		t.Errorf("measurements missing: %+v", res)
	}
	if res.SurgeMembers != 6 || res.SurgeSettledS < 0 || res.SurgeGroupsSettled != 2 {
		t.Errorf("the surge's 6 members in 2 groups did not settle: %+v", res)
	}
	if res.LeaseEnds != 0 || res.StableLeaseEnds != 0 || res.SurgeLeaseEnds != 0 || res.Failed != 0 {
		t.Errorf("%d lease ends (%d during the surge, %d of newcomers) and %d failed members on a tiny load; logs in %s",
			res.LeaseEnds, res.StableLeaseEnds, res.SurgeLeaseEnds, res.Failed, res.LogDir)
	}
}

// TestSmokeSharded runs the load generator on a tiny load against two
// coordinators over four shards, then moves shards (a third joins, one is
// killed): every measurement is taken, nothing is lost.
func TestSmokeSharded(t *testing.T) {
	bin, dir := buildRegroup(t), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := measure(ctx, runConfig{
		settings: settings{
			regroup: bin, partitionsPerMember: 2, workers: 2, protocol: "classic",
			delay: 100 * time.Millisecond, steady: 2 * time.Second, timeout: time.Minute, leaves: 1,
			heartbeat: 300 * time.Millisecond, coordinators: 2, shards: 4, moves: true, moveWatch: 2 * time.Second,
		},
		size: size{Groups: 4, Members: 3}, logDir: filepath.Join(dir, "logs"), progress: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.StableS < 0 || len(res.EachCPUPct) != 2 || len(res.EachHeartbeatsPerS) != 2 || res.HandoffS <= 0 || res.FailoverS <= 0 {
		t.Errorf("measurements missing: %+v", res)
	}
	if res.LeaseEnds+res.HandoffLeaseEnds+res.FailoverLeaseEnds != 0 || res.HandoffRebalanced+res.FailoverRebalanced != 0 || res.Failed != 0 {
		t.Errorf("lease ends %d (%d at the handoff, %d at the failover), %d groups rebalanced by the moves and %d failed members on a tiny load; logs in %s",
			res.LeaseEnds, res.HandoffLeaseEnds, res.FailoverLeaseEnds, res.HandoffRebalanced+res.FailoverRebalanced, res.Failed, res.LogDir)
	}
}

// buildRegroup builds cmd/regroup into the test's temporary directory.
func buildRegroup(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "regroup")
	build := exec.Command("go", "build", "-o", bin, "github.com/regroup-dev/regroup/cmd/regroup")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building regroup: %v\n%s", err, out)
	}
	return bin
}
