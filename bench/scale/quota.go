package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupCPU is where a cgroup v1 cpu controller is mounted (the kernel's
// CFS bandwidth control: cpu.cfs_quota_us per cpu.cfs_period_us).
const cgroupCPU = "/sys/fs/cgroup/cpu"

// cpuQuota is a cgroup that limits the processes in it to a fraction of
// one CPU, so that a coordinator's capacity can be made smaller than what
// the load generator can offer on the same machine.
type cpuQuota struct{ dir string }

// limitCPU puts process pid in a new cgroup limited to share of one CPU
// (0.25: a quarter). It needs the cgroup v1 cpu controller and the right
// to create a cgroup (root).
func limitCPU(pid int, share float64) (*cpuQuota, error) {
	if share <= 0 || share > 64 {
		return nil, fmt.Errorf("a CPU quota of %v CPUs makes no sense", share)
	}
	if _, err := os.Stat(filepath.Join(cgroupCPU, "cpu.cfs_quota_us")); err != nil {
		return nil, fmt.Errorf("--coordinator-cpu-quota needs the cgroup v1 cpu controller at %s: %w", cgroupCPU, err)
	}
	q := &cpuQuota{dir: filepath.Join(cgroupCPU, fmt.Sprintf("regroup-scale-%d", pid))}
	if err := os.Mkdir(q.dir, 0o755); err != nil {
		return nil, fmt.Errorf("--coordinator-cpu-quota: creating a cgroup (run as root): %w", err)
	}
	const period = 100_000 // µs
	for file, value := range map[string]int{"cpu.cfs_period_us": period, "cpu.cfs_quota_us": int(share * period)} {
		if err := os.WriteFile(filepath.Join(q.dir, file), []byte(strconv.Itoa(value)), 0o644); err != nil {
			q.remove()
			return nil, fmt.Errorf("--coordinator-cpu-quota: %s: %w", file, err)
		}
	}
	if err := os.WriteFile(filepath.Join(q.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		q.remove()
		return nil, fmt.Errorf("--coordinator-cpu-quota: moving the coordinator into its cgroup: %w", err)
	}
	return q, nil
}

// throttled returns how long the cgroup's processes were held back by the
// quota so far (cpu.stat's throttled_time), or an error.
func (q *cpuQuota) throttled() (float64, error) {
	b, err := os.ReadFile(filepath.Join(q.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	return throttledTime(string(b))
}

// throttledTime reads throttled_time, in seconds, from a cpu.stat.
func throttledTime(stat string) (float64, error) {
	for _, line := range strings.Split(stat, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "throttled_time" {
			ns, err := strconv.ParseInt(f[1], 10, 64)
			return float64(ns) / 1e9, err
		}
	}
	return 0, errors.New("cpu.stat has no throttled_time")
}

// remove deletes the cgroup once its processes have exited (a cgroup
// with processes cannot be removed; the kernel moves exited ones out).
func (q *cpuQuota) remove() { _ = os.Remove(q.dir) }
