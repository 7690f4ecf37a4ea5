// Package scenario holds the argument parsing and output formatting shared
// by the datadriven scenario tests of the pure state machines.
package scenario

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Arg returns the first value of argument key, and whether it was given.
func Arg(d *datadriven.TestData, key string) (string, bool) {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			if len(a.Vals) == 0 {
				return "", true
			}
			return a.Vals[0], true
		}
	}
	return "", false
}

// ArgOr returns argument key's value, with Go escapes such as \x01
// interpreted, or def if it is absent.
func ArgOr(d *datadriven.TestData, key, def string) string {
	v, ok := Arg(d, key)
	if !ok {
		return def
	}
	if u, err := strconv.Unquote(`"` + v + `"`); err == nil {
		return u
	}
	return v
}

// Duration parses s, failing the test if it is not a duration.
func Duration(t testing.TB, s string) time.Duration {
	t.Helper()
	v, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q: %v", s, err)
	}
	return v
}

// Int parses s, failing the test if it is not an integer.
func Int(t testing.TB, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad number %q: %v", s, err)
	}
	return v
}

// List splits a comma-separated value; empty gives nil.
func List(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Partitions parses "orders:0-3,7/payments:1" (a lone negative number is a
// partition, not a range).
func Partitions(t testing.TB, s string) []*regroupv1.TopicPartitions {
	t.Helper()
	var out []*regroupv1.TopicPartitions
	for _, chunk := range strings.Split(s, "/") {
		topic, ps, ok := strings.Cut(chunk, ":")
		if !ok {
			t.Fatalf("bad partitions %q: want topic:0-3,5", chunk)
		}
		tp := &regroupv1.TopicPartitions{Topic: topic}
		for _, r := range strings.Split(ps, ",") {
			lo, hi, isRange := strings.Cut(r, "-")
			if lo == "" {
				lo, hi, isRange = r, "", false
			}
			a := Int(t, lo)
			b := a
			if isRange {
				b = Int(t, hi)
			}
			for p := a; p <= b; p++ {
				tp.Partitions = append(tp.Partitions, int32(p))
			}
		}
		out = append(out, tp)
	}
	return out
}
