package scenario

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TraceHeader is the header line a trace starts with (see FromTrace).
var TraceHeader = []string{"time", "event", "member", "duration"}

// FromTrace reads a trace, a CSV file of timestamped membership events,
// and returns the scenario lines that replay it, one per event, to append
// to a scenario that sets up the topics and groups. The first line is the
// header "time,event,member,duration"; then each line is one event:
//
//   - time: when it happens, from the start of the run: a Go duration
//     ("90s", "1m30s", "250ms") or seconds ("90", "12.5");
//   - event: join, leave, crash, pause or restart;
//   - member: the member's name, or a list or range (m1..m50), as in a
//     scenario;
//   - duration: how long a pause lasts (required), or how long a
//     restarted member stays down (default 1s); empty for the others.
//
// Lines starting with "#" are comments. Events need not be in order of
// time. An error names the trace's line.
func FromTrace(r io.Reader) (string, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var b strings.Builder
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return "", fmt.Errorf("regroup: trace: %w", err)
		}
		if first {
			first = false
			if !slices.Equal(rec, TraceHeader) {
				return "", fmt.Errorf("regroup: trace: line %d: want the header %q, got %q", line, strings.Join(TraceHeader, ","), strings.Join(rec, ","))
			}
			continue
		}
		text, err := traceEvent(rec)
		if err != nil {
			return "", fmt.Errorf("regroup: trace: line %d: %w", line, err)
		}
		fmt.Fprintf(&b, "%s\n", text)
	}
	if first {
		return "", fmt.Errorf("regroup: trace: empty: want the header %q and one line per event", strings.Join(TraceHeader, ","))
	}
	return b.String(), nil
}

// traceEvent turns one trace line into a scenario line.
func traceEvent(rec []string) (string, error) {
	if len(rec) != len(TraceHeader) {
		return "", fmt.Errorf("%d fields, want %d (%s)", len(rec), len(TraceHeader), strings.Join(TraceHeader, ","))
	}
	at, err := traceTime(rec[0])
	if err != nil {
		return "", err
	}
	event, members, dur := rec[1], rec[2], rec[3]
	if _, err := expandMembers(members); err != nil {
		return "", err
	}
	var d time.Duration
	if dur != "" {
		if d, err = traceTime(dur); err != nil {
			return "", fmt.Errorf("duration: %w", err)
		}
	}
	line := fmt.Sprintf("at %v %s %s", at, event, members)
	switch event {
	case "join", "leave", "crash":
		if dur != "" {
			return "", fmt.Errorf("%s takes no duration", event)
		}
	case "pause":
		if dur == "" {
			return "", errors.New("pause: give how long it lasts in the duration column")
		}
		line += fmt.Sprintf(" for=%v", d)
	case "restart":
		if dur != "" {
			line += fmt.Sprintf(" down=%v", d)
		}
	default:
		return "", fmt.Errorf("unknown event %q: want join, leave, crash, pause or restart", event)
	}
	return line, nil
}

// traceTime reads a Go duration or a number of seconds.
func traceTime(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("time %q must not be negative", s)
		}
		return time.Duration(f * float64(time.Second)).Round(time.Microsecond), nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("time %q: %w, or a number of seconds", s, err)
	}
	return d, nil
}
