// Package ownership records who owns each partition over time, as members
// report it, finds every instant at which a partition had two owners, and
// measures how long partitions had none.
//
// Ownership is a set of intervals per partition. An interval opens when a
// member starts owning the partition (OnAssigned is invoked) and closes at
// an end that may lie in the past: OnLost's deadline is the instant the
// member's lease ended, and a revocation ends at its deadline if the
// callback outlived it. Starts, however, are always the present. So when a
// member starts owning a partition that another member's interval still
// holds open, the Ledger cannot yet tell whether they overlap; it keeps the
// pair and decides once both intervals are closed: they overlap if both
// end after the later start.
//
// Unowned time can be measured between cuts (Cut) as well as in total, so
// that a run's record can be split into windows or read from a time on.
//
// Times are nanoseconds on one clock. A Ledger is not safe for concurrent
// use.
package ownership

import (
	"fmt"
	"slices"
	"sort"
)

// Overlap is a time at which partition P had two owners, A and B (A's
// interval started first), from From to To.
type Overlap struct {
	P        int32
	A, B     int32
	From, To int64
}

// Interval is one closed ownership interval, recorded when the Ledger was
// created with record set.
type Interval struct {
	P          int32
	Owner      int32
	Start, End int64
}

type open struct {
	owner int32
	start int64
	id    int64
}

type span struct{ start, end int64 }

// pair is a possible overlap: interval b started at start while a was open.
type pair struct {
	a, b       int64 // interval ids
	ownerA     int32
	ownerB     int32
	start      int64
	endA, endB int64 // -1 while open
}

type part struct {
	tag     int32
	born    int64
	open    []open
	closed  []span // closed intervals not yet accounted
	acct    int64  // coverage is accounted up to here
	covered int64
	pairs   []pair
}

// Ledger records ownership intervals.
type Ledger struct {
	parts    []part
	owned    []int     // per tag: partitions with at least one open interval
	live     []int     // per tag: partitions
	byTag    [][]int32 // per tag: its partitions
	nextID   int64
	overlaps []Overlap
	record   bool
	ivs      []Interval
	closedAt int64 // Close's time, or -1

	// cuts are the times Cut was given, in order; cov[tag][i] is the
	// time tag's partitions were covered in segment i, from cuts[i-1]
	// (or the beginning) to cuts[i] (or the end).
	cuts   []int64
	cov    [][]int64
	latest int64 // the latest present the Ledger was given
}

// New returns an empty Ledger; with record, it keeps every closed interval
// (see Intervals).
func New(record bool) *Ledger { return &Ledger{record: record, closedAt: -1} }

// Add adds a partition that exists from born on, counted under tag (a
// small non-negative number, such as a group's index), and returns its
// number.
func (l *Ledger) Add(tag int32, born int64) int32 {
	for int(tag) >= len(l.owned) {
		l.owned = append(l.owned, 0)
		l.live = append(l.live, 0)
		l.cov = append(l.cov, make([]int64, len(l.cuts)+1))
		l.byTag = append(l.byTag, nil)
	}
	l.latest = max(l.latest, born)
	l.live[tag]++
	l.parts = append(l.parts, part{tag: tag, born: born, acct: born})
	p := int32(len(l.parts) - 1)
	l.byTag[tag] = append(l.byTag[tag], p)
	return p
}

// Start records that owner starts owning p at now. It is an error if owner
// already owns p.
func (l *Ledger) Start(p, owner int32, now int64) error {
	pt := &l.parts[p]
	for _, o := range pt.open {
		if o.owner == owner {
			return fmt.Errorf("owner %d starts owning partition %d, which it already owns since %d", owner, p, o.start)
		}
	}
	l.latest = max(l.latest, now)
	l.nextID++
	id := l.nextID
	for _, o := range pt.open {
		pt.pairs = append(pt.pairs, pair{a: o.id, b: id, ownerA: o.owner, ownerB: owner, start: now, endA: -1, endB: -1})
	}
	if len(pt.open) == 0 {
		l.owned[pt.tag]++
	}
	pt.open = append(pt.open, open{owner: owner, start: now, id: id})
	return nil
}

// End records that owner's ownership of p ended at end (at most now, the
// present). It returns false if owner did not own p.
func (l *Ledger) End(p, owner int32, end, now int64) bool {
	pt := &l.parts[p]
	i := -1
	for k, o := range pt.open {
		if o.owner == owner {
			i = k
			break
		}
	}
	if i < 0 {
		return false
	}
	o := pt.open[i]
	l.latest = max(l.latest, now)
	end = min(end, now)
	pt.open = append(pt.open[:i], pt.open[i+1:]...)
	if l.record {
		l.ivs = append(l.ivs, Interval{P: p, Owner: owner, Start: o.start, End: max(end, o.start)})
	}
	if end > o.start {
		pt.closed = append(pt.closed, span{o.start, end})
	}
	l.settle(p, pt, o.id, end)
	if len(pt.open) == 0 {
		l.owned[pt.tag]--
		l.account(pt, now)
	}
	return true
}

// settle gives interval id its end in every pending pair and decides the
// pairs whose intervals are both closed.
func (l *Ledger) settle(p int32, pt *part, id, end int64) {
	k := 0
	for _, pr := range pt.pairs {
		if pr.a == id {
			pr.endA = end
		}
		if pr.b == id {
			pr.endB = end
		}
		if pr.endA < 0 || pr.endB < 0 {
			pt.pairs[k] = pr
			k++
			continue
		}
		if to := min(pr.endA, pr.endB); to > pr.start {
			l.overlaps = append(l.overlaps, Overlap{P: p, A: pr.ownerA, B: pr.ownerB, From: pr.start, To: to})
		}
	}
	pt.pairs = pt.pairs[:k]
}

// account adds the coverage of pt's closed intervals up to now. It is
// called when no interval is open: later intervals start at now or after.
func (l *Ledger) account(pt *part, now int64) {
	if now <= pt.acct {
		pt.closed = pt.closed[:0]
		return
	}
	sort.Slice(pt.closed, func(i, j int) bool { return pt.closed[i].start < pt.closed[j].start })
	reach := pt.acct
	for _, s := range pt.closed {
		lo, hi := max(s.start, reach), min(s.end, now)
		if hi > lo {
			pt.covered += hi - lo
			l.cover(pt.tag, lo, hi)
			reach = hi
		}
	}
	pt.acct = now
	pt.closed = pt.closed[:0]
}

// cover adds [lo, hi) to tag's coverage, segment by segment.
func (l *Ledger) cover(tag int32, lo, hi int64) {
	cov := l.cov[tag]
	i := sort.Search(len(l.cuts), func(i int) bool { return l.cuts[i] > lo })
	for lo < hi {
		to := hi
		if i < len(l.cuts) {
			to = min(hi, l.cuts[i])
		}
		cov[i] += to - lo
		lo = to
		i++
	}
}

// Cut starts a new segment of the record at t, so that UnownedIn can
// measure from or to t. t must not be before the latest present the Ledger
// was given (coverage already accounted lies before it); a cut at the time
// of the previous one changes nothing.
func (l *Ledger) Cut(t int64) {
	if t < l.latest || l.closedAt >= 0 {
		panic(fmt.Sprintf("ownership: Cut(%d) before the present %d or after Close", t, l.latest))
	}
	if n := len(l.cuts); n > 0 && l.cuts[n-1] == t {
		return
	}
	l.cuts = append(l.cuts, t)
	for tag := range l.cov {
		l.cov[tag] = append(l.cov[tag], 0)
	}
	l.latest = t
}

// Overlaps returns the overlaps found since the previous call.
func (l *Ledger) Overlaps() []Overlap {
	o := l.overlaps
	l.overlaps = nil
	return o
}

// Owned returns how many of tag's partitions have an owner now, and how
// many partitions tag has.
func (l *Ledger) Owned(tag int32) (owned, all int) {
	if int(tag) >= len(l.live) {
		return 0, 0
	}
	return l.owned[tag], l.live[tag]
}

// Owners returns the owners of p now, in the order they started.
func (l *Ledger) Owners(p int32) []int32 {
	out := make([]int32, 0, len(l.parts[p].open))
	for _, o := range l.parts[p].open {
		out = append(out, o.owner)
	}
	return out
}

// Close ends every open interval at now, the end of the record, and
// decides every pending pair. Only Unowned and Intervals may be called
// afterwards.
func (l *Ledger) Close(now int64) {
	for p := range l.parts {
		pt := &l.parts[p]
		for len(pt.open) > 0 {
			l.End(int32(p), pt.open[0].owner, now, now)
		}
		l.account(pt, now)
	}
	l.closedAt = now
}

// Unowned returns, after Close, the total time tag's partitions existed
// without an owner, in nanoseconds (summed over partitions).
func (l *Ledger) Unowned(tag int32) int64 {
	if l.closedAt < 0 {
		panic("ownership: Unowned before Close")
	}
	var total int64
	for _, pt := range l.parts {
		if pt.tag == tag && l.closedAt > pt.born {
			total += l.closedAt - pt.born - pt.covered
		}
	}
	return total
}

// UnownedIn returns, after Close, the time tag's partitions existed
// without an owner from from to to, in nanoseconds (summed over
// partitions). from and to must each be 0, a cut, or at or after Close's
// time; it panics otherwise.
func (l *Ledger) UnownedIn(tag int32, from, to int64) int64 {
	if l.closedAt < 0 {
		panic("ownership: UnownedIn before Close")
	}
	to = min(to, l.closedAt)
	from = min(from, to)
	seg := func(t int64) int { // the first segment that starts at or after t
		if t <= 0 {
			return 0
		}
		if t >= l.closedAt {
			return len(l.cuts) + 1
		}
		i, ok := slices.BinarySearch(l.cuts, t)
		if !ok {
			panic(fmt.Sprintf("ownership: UnownedIn from or to %d, which is not a cut", t))
		}
		return i + 1
	}
	if int(tag) >= len(l.cov) {
		return 0
	}
	var total int64
	for _, p := range l.byTag[tag] {
		total += max(0, to-max(from, l.parts[p].born))
	}
	for _, c := range l.cov[tag][seg(from):seg(to)] {
		total -= c
	}
	return total
}

// Intervals returns every closed interval, in the order they closed, if
// the Ledger records them.
func (l *Ledger) Intervals() []Interval { return l.ivs }
