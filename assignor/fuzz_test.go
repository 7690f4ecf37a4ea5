package assignor

import (
	"fmt"
	"hash/fnv"
	"testing"
)

// fuzzBytes hands out the fuzzer's bytes, then zeros.
type fuzzBytes struct {
	b []byte
	i int
}

func (s *fuzzBytes) next(n int) int {
	if s.i >= len(s.b) {
		return 0
	}
	v := int(s.b[s.i])
	s.i++
	return v % n
}

// decodeInput turns fuzz bytes into a bounded input: up to 5 topics of up
// to 50 partitions (some missing), up to 20 members with arbitrary
// subscriptions (including a deleted topic), owned partitions (including
// nonexistent and out-of-range ones), generations from -1 to 3, instance
// ids (possibly shared), member and partition racks.
func decodeInput(data []byte) *Input {
	s := &fuzzBytes{b: data}
	in := &Input{Topics: map[string]int32{}, Generation: 5}
	names := []string{"t0", "t1", "t2", "t3", "t4", "gone"}
	nt := 1 + s.next(5)
	for i := 0; i < nt; i++ {
		if n := s.next(51); n > 0 {
			in.Topics[names[i]] = int32(n)
		}
	}
	if s.next(4) == 0 {
		in.PartitionRacks = map[string][][]string{}
		for t, n := range in.Topics {
			racks := make([][]string, n)
			for p := range racks {
				racks[p] = []string{fmt.Sprintf("r%d", s.next(3))}
			}
			in.PartitionRacks[t] = racks
		}
	}
	nm := 1 + s.next(20)
	for i := 0; i < nm; i++ {
		m := Member{ID: fmt.Sprintf("m%02d", (i*7)%20), Generation: int32(s.next(5) - 1)}
		if s.next(3) == 0 {
			m.InstanceID = fmt.Sprintf("i%02d", s.next(25))
		}
		mask := s.next(64)
		for k, t := range names {
			if mask&(1<<k) != 0 {
				m.Topics = append(m.Topics, t)
			}
		}
		for k := s.next(8); k > 0; k-- {
			m.Owned = append(m.Owned, tps(names[s.next(len(names))], int32(s.next(56)-2), int32(s.next(56)-2)))
		}
		m.Rack = []string{"", "r0", "r1"}[s.next(3)]
		in.Members = append(in.Members, m)
	}
	return in
}

// FuzzInvariants runs the invariant suite (with cooperative convergence)
// for every assignor on inputs decoded from the fuzzer's bytes.
func FuzzInvariants(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4, 20, 30, 0, 7, 1, 19, 63, 2, 3, 0, 5, 1, 9, 4, 2, 33, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{2, 50, 50, 3, 9, 255, 12, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	as := make([]Assignor, 0, len(Names()))
	for _, name := range Names() {
		as = append(as, mustLookup(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := decodeInput(data)
		h := fnv.New64a()
		h.Write(data)
		for _, a := range as {
			final := verify(t, a, in, h.Sum64())
			verify(t, a, evolveFromBytes(in, final, data), h.Sum64()+1)
		}
	})
}

// evolveFromBytes is the next round after plan p: members report p, and
// the fuzzer's bytes (read backwards) drop members, make generations stale
// and mark claims as not held.
func evolveFromBytes(in *Input, p Plan, data []byte) *Input {
	next := feedBack(in, p, in.Generation)
	var keep []Member
	for i, m := range next.Members {
		b := byte(i)
		if len(data) > 0 {
			b = data[len(data)-1-i%len(data)]
		}
		switch {
		case b%5 == 0 && len(next.Members) > 1:
			continue
		case b%5 == 1:
			m.Generation--
		case b%5 == 2:
			m.NotHeld = true
		}
		keep = append(keep, m)
	}
	next.Members = keep
	return next
}
