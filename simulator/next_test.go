package simulator_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/simulator"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// TestNextVariants: "next" runs every assignor (the coordinator's), one
// variant each; under each, a member joining a group of ten costs one
// rebalance, with no follow-up round, and the only partitions revoked are
// those that move to it.
func TestNextVariants(t *testing.T) {
	names := []string{"range", "sticky", "cooperative-sticky", "static"}
	vs, skipped, err := simulator.Variants([]string{"next"}, names, nil)
	if err != nil || len(vs) != len(names) || len(skipped) != 0 {
		t.Fatalf("Variants(next): %v, skipped %v, %v", vs, skipped, err)
	}
	for i, v := range vs {
		if v.ProtocolName() != "next" || len(v.Assignors()) != 1 || v.Assignors()[0] != names[i] || v.String() != "next/"+names[i]+"/as-scenario" {
			t.Errorf("variant %d: %v, assignors %v", i, v, v.Assignors())
		}
		sc := load(t, "testdata/one-join.sim")
		sc.Expects = nil
		v.Apply(sc)
		res, m := runFrom(t, sc, 30*time.Second)
		if !res.OK() || m.Rebalances != 1 || m.Moved == 0 || m.Revoked != m.Moved || m.Lost != 0 {
			t.Errorf("%v: violations %v, failed %v; from 30s %d rebalances, %d moved, %d revoked, %d lost; want 1 rebalance revoking what moves",
				v, res.Violations, res.Failed, m.Rebalances, m.Moved, m.Revoked, m.Lost)
		}
	}
}

// TestProtocolMismatch: a group keeps its first member's protocol; a
// member of the other kind fails (GROUP_PROTOCOL_MISMATCH, fatal), owns
// nothing, and the group goes on without it.
func TestProtocolMismatch(t *testing.T) {
	for _, tc := range []struct{ group, late string }{{"classic", "next"}, {"next", "classic"}} {
		sc, err := scenario.Parse("mismatch", fmt.Sprintf("topic orders partitions=8\ngroup g protocol=%s\nat 0s join m1..m3\nat 20s join m4 protocol=%s\n", tc.group, tc.late))
		if err != nil {
			t.Fatal(err)
		}
		res, err := simulator.Run(sc, simulator.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Violations) != 0 || res.Metrics.Fatal != 1 || len(res.Assignment) != 3 || !res.Metrics.Stable {
			t.Errorf("a %s member joining a %s group: violations %v, %d fatal, assignment %v, stable %v; want m4 failed alone",
				tc.late, tc.group, res.Violations, res.Metrics.Fatal, res.Assignment, res.Metrics.Stable)
		}
	}
}

// TestLossQueuedAtCrash: a member starts a 14 s revocation, is cut off
// from the coordinator during it, so that its lease ends and OnLost queues
// behind the revocation for the rest, then crashes before OnLost runs. Its
// partitions were no longer its own from the end of its lease (OnLost's
// deadline), when the coordinator had already given them to others: the
// ownership record ends them there, not at the crash (which made two
// owners before).
func TestLossQueuedAtCrash(t *testing.T) {
	res, tr := runText(t, "lost-queued", `
topic orders partitions=6
group g session=9s on-revoked=14s protocol=next
at 0s join m1..m2
at 30s join m3
at 31s partition m2
at 43s crash m2
`)
	revoked, lost, crash := strings.Index(tr, "m2       on-revoked"), strings.Index(tr, "m2       on-lost"), strings.Index(tr, "m2       crash")
	if !strings.Contains(tr, "m2       lease ended") || revoked < 0 || crash < revoked || lost >= 0 && lost < crash {
		t.Fatalf("the run does not crash m2 with its OnLost queued behind its revocation:\n%s", tr)
	}
	if len(res.Violations) != 0 {
		t.Errorf("violations %v", res.Violations)
	}
}
