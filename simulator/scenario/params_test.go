package scenario

import (
	"strings"
	"testing"
	"time"
)

// TestSet changes each parameter and checks what it changes, and that bad
// values and scenarios without what a parameter changes are errors.
func TestSet(t *testing.T) {
	const text = `
topic orders partitions=8
group g session=10s heartbeat=2s
at 0s join m1..m4
at 10s join m5 session=12s
at 20s pause m2 for=5s
at 30s crash m3
at 40s failover
`
	parse := func() *Scenario {
		sc, err := Parse("set", text)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	sc := parse()
	if err := sc.Set("session", "30s"); err != nil {
		t.Fatal(err)
	}
	j := sc.Actions[4].Do.(Join)
	if g := sc.Groups[0].Member; g.SessionTimeout != 30*time.Second || g.HeartbeatInterval != 3*time.Second || g.Margin != 3*time.Second ||
		j.Config.SessionTimeout != 30*time.Second {
		t.Errorf("session=30s: group %+v, join %+v; want the heartbeat (3s) and margin (3s) that follow", g, j.Config)
	}
	sc = parse()
	if err := sc.Set("heartbeat", "4s"); err == nil || !strings.Contains(err.Error(), "heartbeat") {
		t.Errorf("heartbeat=4s with a 10s session: %v, want the member state machine's refusal", err)
	}
	sc = parse()
	if err := sc.Set("members", "6"); err != nil {
		t.Fatal(err)
	}
	var joined []string
	for _, a := range sc.Actions {
		if j, ok := a.Do.(Join); ok {
			joined = append(joined, j.Member+"@"+a.At.String())
		}
	}
	if strings.Join(joined, " ") != "m1@0s m2@0s m3@0s m4@0s m5@0s m6@0s m5@10s" {
		t.Errorf("members=6: joins %v", joined)
	}
	if err := parse().Set("members", "2"); err == nil || !strings.Contains(err.Error(), "names m3") {
		t.Errorf("members=2 with a crash of m3: %v", err)
	}
	sc = parse()
	for _, kv := range [][2]string{{"partitions", "100"}, {"pause", "25s"}, {"failover-gap", "2s"}, {"write-latency", "5ms"}} {
		if err := sc.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if sc.Topics[0].Partitions != 100 || sc.Actions[5].Do.(Pause).For != 25*time.Second || sc.Actions[7].Do.(Failover).Gap != 2*time.Second ||
		sc.Coordinator.WriteLatency.Max != 5*time.Millisecond {
		t.Errorf("partitions, pause, failover-gap, write-latency: %+v %+v %+v", sc.Topics, sc.Actions, sc.Coordinator)
	}
	for _, bad := range [][2]string{{"sesion", "1s"}, {"session", "x"}, {"members", "0"}} {
		if err := parse().Set(bad[0], bad[1]); err == nil {
			t.Errorf("%s=%s was accepted", bad[0], bad[1])
		}
	}
	noPause, err := Parse("p", "topic t partitions=1\nat 0s join m1\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := noPause.Set("pause", "1s"); err == nil {
		t.Error("pause= on a scenario without a pause was accepted")
	}
}
