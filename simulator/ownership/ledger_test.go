package ownership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// TestAgainstNaive drives a Ledger with random starts, (possibly
// retroactive) ends and cuts, and compares its overlaps and unowned time,
// in total and between cuts, with a direct computation over all the
// intervals.
func TestAgainstNaive(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		l := New(true)
		parts := 1 + rng.IntN(3)
		born := make([]int64, parts)
		for p := range parts {
			born[p] = int64(rng.IntN(5))
			l.Add(int32(p%2), born[p])
		}
		now := int64(5)
		owns := map[[2]int32]bool{}
		cuts := []int64{0}
		for range 60 {
			now += int64(rng.IntN(4))
			if rng.IntN(5) == 0 {
				l.Cut(now)
				cuts = append(cuts, now)
			}
			p, o := int32(rng.IntN(parts)), int32(rng.IntN(4))
			if owns[[2]int32{p, o}] {
				end := now - int64(rng.IntN(6))
				if !l.End(p, o, end, now) {
					t.Fatalf("seed %d: End(%d, %d) = false for an owner", seed, p, o)
				}
				owns[[2]int32{p, o}] = false
			} else {
				if err := l.Start(p, o, now); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				owns[[2]int32{p, o}] = true
			}
		}
		var got []Overlap
		got = append(got, l.Overlaps()...)
		now += 3
		l.Close(now)
		got = append(got, l.Overlaps()...)

		ivs := l.Intervals()
		var want []Overlap
		for i, a := range ivs {
			for _, b := range ivs[i+1:] {
				if a.P != b.P || a.Owner == b.Owner {
					continue
				}
				first, second := a, b
				if b.Start < a.Start {
					first, second = b, a
				}
				if to := min(a.End, b.End); to > second.Start {
					want = append(want, Overlap{P: a.P, A: first.Owner, B: second.Owner, From: second.Start, To: to})
				}
			}
		}
		if key(got) != key(want) {
			t.Fatalf("seed %d: overlaps\n got %v\nwant %v\nintervals %v", seed, key(got), key(want), ivs)
		}
		for tag := int32(0); tag < 2; tag++ {
			var naive int64
			for p := range parts {
				if int32(p%2) != tag {
					continue
				}
				for x := born[p]; x < now; x++ {
					owned := false
					for _, iv := range ivs {
						if iv.P == int32(p) && iv.Start <= x && x < iv.End {
							owned = true
						}
					}
					if !owned {
						naive++
					}
				}
			}
			if u := l.Unowned(tag); u != naive {
				t.Fatalf("seed %d tag %d: unowned %d, want %d (intervals %v)", seed, tag, u, naive, ivs)
			}
			cuts := append(cuts, now)
			from, to := cuts[rng.IntN(len(cuts))], cuts[rng.IntN(len(cuts))]
			from, to = min(from, to), max(from, to)
			var between int64
			for p := range parts {
				for x := max(born[p], from); int32(p%2) == tag && x < to; x++ {
					if !slices.ContainsFunc(ivs, func(iv Interval) bool { return iv.P == int32(p) && iv.Start <= x && x < iv.End }) {
						between++
					}
				}
			}
			if u := l.UnownedIn(tag, from, to); u != between {
				t.Fatalf("seed %d tag %d: unowned from %d to %d: %d, want %d (cuts %v, intervals %v)", seed, tag, from, to, u, between, cuts, ivs)
			}
		}
	}
}

func key(os []Overlap) string {
	s := make([]string, 0, len(os))
	for _, o := range os {
		a, b := o.A, o.B
		if a > b {
			a, b = b, a
		}
		s = append(s, fmt.Sprintf("p%d:%d/%d[%d,%d)", o.P, a, b, o.From, o.To))
	}
	sort.Strings(s)
	return fmt.Sprint(s)
}

// TestRetroactiveEnd: a paused owner whose lease ended before another
// member took the partition does not overlap with it, even though its
// interval was still open when the other started.
func TestRetroactiveEnd(t *testing.T) {
	l := New(false)
	p := l.Add(0, 0)
	must(t, l.Start(p, 1, 0))
	must(t, l.Start(p, 2, 25)) // 1 is paused: still open
	if len(l.Overlaps()) != 0 {
		t.Fatal("overlap reported before it could be decided")
	}
	l.End(p, 1, 19, 40) // 1 wakes at 40: its lease ended at 19
	l.End(p, 2, 50, 50)
	if o := l.Overlaps(); len(o) != 0 {
		t.Fatalf("overlaps %v, want none", o)
	}
	if owned, all := l.Owned(0); owned != 0 || all != 1 {
		t.Fatalf("Owned = %d of %d, want 0 of 1", owned, all)
	}
	l.Close(60)
	if u := l.Unowned(0); u != 6+10 { // [19,25) and [50,60)
		t.Fatalf("unowned %d, want 16", u)
	}

	l = New(false)
	p = l.Add(0, 0)
	must(t, l.Start(p, 1, 0))
	must(t, l.Start(p, 2, 25))
	l.End(p, 1, 30, 40) // the lease ended after 2 started: an overlap
	l.End(p, 2, 50, 50)
	if o := l.Overlaps(); !slices.Equal(o, []Overlap{{P: 0, A: 1, B: 2, From: 25, To: 30}}) {
		t.Fatalf("overlaps %v, want [25,30)", o)
	}
	if err := l.Start(p, 3, 60); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(p, 3, 61); err == nil {
		t.Fatal("a second start by the same owner was accepted")
	}
	if l.End(p, 4, 61, 61) {
		t.Fatal("End by a member that does not own the partition returned true")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
