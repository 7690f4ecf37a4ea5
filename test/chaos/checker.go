// Package chaos tests Regroup the way it fails for users: real processes
// (an etcd cluster, coordinators and members built on the member library)
// killed, frozen and restarted, with a checker that reads only the logs the
// members write (see cmd/chaosmember for their format).
package chaos

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event is one line of a member's log.
type Event struct {
	At        time.Time
	Member    string
	Kind      string // assigned, revoked, lost, work, gen, exit
	Partition string // topic/p
	Token     int64
	Gen       int32
	// Deadline is when a lost partition's ownership ended.
	Deadline time.Time
}

// ReadLog parses one member's log.
func ReadLog(member string, r io.Reader) ([]Event, error) {
	var out []Event
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			return nil, fmt.Errorf("%s: line %d: %q: want NANOS KIND ...", member, n, sc.Text())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: bad time %q", member, n, f[0])
		}
		e := Event{At: time.Unix(0, ns), Member: member, Kind: f[1]}
		want := map[string]int{"assigned": 4, "revoked": 4, "work": 4, "lost": 5, "gen": 3, "exit": 2}[e.Kind]
		if want == 0 || len(f) != want {
			return nil, fmt.Errorf("%s: line %d: %q: unknown kind or wrong number of fields", member, n, sc.Text())
		}
		if e.Kind == "exit" {
			out = append(out, e)
			continue
		}
		if e.Kind == "gen" {
			g, err := strconv.ParseInt(f[2], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: line %d: bad generation %q", member, n, f[2])
			}
			e.Gen = int32(g)
		} else {
			e.Partition = f[2]
			if e.Token, err = strconv.ParseInt(f[3], 10, 64); err != nil {
				return nil, fmt.Errorf("%s: line %d: bad token %q", member, n, f[3])
			}
		}
		if e.Kind == "lost" {
			d, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: line %d: bad deadline %q", member, n, f[4])
			}
			e.Deadline = time.Unix(0, d)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Report is what the checker found in the logs.
type Report struct {
	// Violations break the safety claims: two owners of one partition at
	// once, a fencing token that went backwards.
	Violations []string
	// Zombie counts work lines written after the writer's ownership ended
	// (a process frozen past its lease works for an instant when it
	// thaws): downstream systems refuse them by their fencing token, which
	// is older than the current owner's.
	Zombie int
	events []Event
	owners map[string][]span // partition -> ownership intervals, by start
}

// span is one member's ownership of one partition.
type span struct {
	member     string
	token      int64
	start, end time.Time // end is zero while it lasts
}

// Check reads every member's events, merged, and checks the safety claims:
// no partition has two owners at any instant (a member owns a partition
// from the entry of OnAssigned until the return of OnRevoked, until the
// deadline OnLost gives, or until its process died: an "exit" line the
// test writes after killing it), and a partition's fencing token never
// goes down.
func Check(events []Event) *Report {
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	r := &Report{events: events, owners: map[string][]span{}}
	type key struct{ member, partition string }
	open := map[key]int{} // index in owners[partition] of the open span
	lastToken := map[string]int64{}
	for _, e := range events {
		switch e.Kind {
		case "assigned":
			k := key{e.Member, e.Partition}
			if tok, ok := lastToken[e.Partition]; ok && e.Token < tok {
				r.Violations = append(r.Violations, fmt.Sprintf("%s: %s acquired %s with token %#x, below %#x given before", e.At.Format(timeFormat), e.Member, e.Partition, e.Token, tok))
			}
			lastToken[e.Partition] = max(lastToken[e.Partition], e.Token)
			r.owners[e.Partition] = append(r.owners[e.Partition], span{member: e.Member, token: e.Token, start: e.At})
			open[k] = len(r.owners[e.Partition]) - 1
		case "revoked", "lost":
			k := key{e.Member, e.Partition}
			i, ok := open[k]
			if !ok {
				r.Violations = append(r.Violations, fmt.Sprintf("%s: %s gave up %s, which it did not own", e.At.Format(timeFormat), e.Member, e.Partition))
				continue
			}
			end := e.At
			if e.Kind == "lost" {
				end = e.Deadline
			}
			r.owners[e.Partition][i].end = end
			delete(open, k)
		case "work":
			if _, ok := open[key{e.Member, e.Partition}]; !ok {
				r.Zombie++
			}
		case "exit":
			// The process died: it owns nothing from now on.
			for k, i := range open {
				if k.member == e.Member {
					r.owners[k.partition][i].end = e.At
					delete(open, k)
				}
			}
		}
	}
	for p, spans := range r.owners {
		for i := range spans {
			for j := i + 1; j < len(spans); j++ {
				a, b := spans[i], spans[j]
				if a.member == b.member {
					continue
				}
				if overlap(a, b) {
					r.Violations = append(r.Violations, fmt.Sprintf("%s had two owners: %s (token %#x, from %s to %s) and %s (token %#x, from %s to %s)",
						p, a.member, a.token, a.start.Format(timeFormat), fmtEnd(a.end), b.member, b.token, b.start.Format(timeFormat), fmtEnd(b.end)))
				}
			}
		}
	}
	sort.Strings(r.Violations)
	return r
}

const timeFormat = "15:04:05.000"

func fmtEnd(t time.Time) string {
	if t.IsZero() {
		return "the end"
	}
	return t.Format(timeFormat)
}

func overlap(a, b span) bool {
	aEnd, bEnd := a.end, b.end
	if aEnd.IsZero() {
		aEnd = time.Unix(1<<40, 0)
	}
	if bEnd.IsZero() {
		bEnd = time.Unix(1<<40, 0)
	}
	return a.start.Before(bEnd) && b.start.Before(aEnd)
}

// Window sums up what happened between from and to.
type Window struct {
	// Lost counts partitions declared lost (OnLost) in the window.
	Lost int
	// Moved counts partitions acquired by a member other than their
	// previous owner.
	Moved int
	// Generations counts generation changes the members saw (a
	// rebalance shows as one per member).
	Generations int
	// LongestIdle is the longest time any partition went without work in
	// the window (counted from the window's start).
	LongestIdle time.Duration
	// Idlest names that partition.
	Idlest string
}

// Window sums up [from, to].
func (r *Report) Window(from, to time.Time) Window {
	var w Window
	prevOwner := map[string]string{}
	lastWork := map[string]time.Time{}
	for p := range r.owners {
		lastWork[p] = from
	}
	idle := func(p string, at time.Time) {
		if d := at.Sub(lastWork[p]); d > w.LongestIdle {
			w.LongestIdle, w.Idlest = d, p
		}
	}
	for _, e := range r.events {
		inside := !e.At.Before(from) && !e.At.After(to)
		switch e.Kind {
		case "assigned":
			if prev, ok := prevOwner[e.Partition]; ok && prev != e.Member && inside {
				w.Moved++
			}
			prevOwner[e.Partition] = e.Member
		case "lost":
			if inside {
				w.Lost++
			}
		case "gen":
			if inside {
				w.Generations++
			}
		case "work":
			if inside {
				idle(e.Partition, e.At)
				lastWork[e.Partition] = e.At
			}
		}
	}
	for p := range lastWork {
		idle(p, to)
	}
	return w
}
