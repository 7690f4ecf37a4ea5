package main

import "testing"

func TestThrottledTime(t *testing.T) {
	got, err := throttledTime("nr_periods 120\nnr_throttled 30\nthrottled_time 2500000000\n")
	if err != nil || got != 2.5 {
		t.Errorf("throttledTime = %v, %v; want 2.5 s", got, err)
	}
	if _, err := throttledTime("nr_periods 1\n"); err == nil {
		t.Error("a cpu.stat without throttled_time was read without an error")
	}
}
