package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/member/fsm"
)

func TestParse(t *testing.T) {
	sc, err := Parse("t.sim", `
# a comment
seed 42
coordinator initial-delay=0s failover-gap=2s max-size=100
network delay=2ms..8ms loss=0.5%
topic orders partitions=64
topic audit partitions=4
group g assignors=sticky session=12s on-revoked=100ms..300ms
at 10s join m1..m3 stagger=1s   # m1 at 10s, m2 at 11s, m3 at 12s
at 12s join x static assignors=static topics=orders leave-on-stop
at 20s restart m1..m2 repeat=2 every=30s down=3s crash
at 30s pause x for=15s
at 40s failover
at 50s topic orders partitions=96
at 55s network loss=0
at 60s churn every=10s for=1m kinds=crash,pause
run until=5m
expect rebalances<=3 since=15s cause=member-joined
expect stable-within=30s
`)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Seed != 42 || sc.Until != 5*time.Minute || sc.Coordinator.FailoverGap != 2*time.Second ||
		sc.Coordinator.Group.InitialRebalanceDelay != 0 || sc.Coordinator.Group.MaxSize != 100 {
		t.Errorf("setup: seed=%d until=%v coordinator=%+v", sc.Seed, sc.Until, sc.Coordinator)
	}
	if sc.Network.Delay != (Dist{2 * time.Millisecond, 8 * time.Millisecond}) || sc.Network.Loss != 0.005 {
		t.Errorf("network %+v", sc.Network)
	}
	var verbs []string
	for _, a := range sc.Actions {
		verbs = append(verbs, a.At.String()+" "+a.Verb()+" "+a.Member())
	}
	want := "10s join m1|11s join m2|12s join m3|12s join x|20s restart m1|20s restart m2|30s pause x|40s failover |" +
		"50s restart m1|50s restart m2|50s topic |55s network |1m0s churn "
	if got := strings.Join(verbs, "|"); got != want {
		t.Errorf("timeline\n got %s\nwant %s", got, want)
	}
	m1 := sc.Actions[0].Do.(Join).Config
	if m1.Static || m1.SessionTimeout != 12*time.Second || m1.HeartbeatInterval != 3*time.Second ||
		m1.Margin != 1200*time.Millisecond || m1.MaxBackoff != 4*time.Second || strings.Join(m1.Topics, ",") != "orders,audit" ||
		m1.Callbacks.OnRevoked != (Dist{100 * time.Millisecond, 300 * time.Millisecond}) {
		t.Errorf("m1's configuration (group defaults) %+v", m1)
	}
	x := sc.Actions[3].Do.(Join).Config
	if !x.Static || !x.LeaveOnStop || x.Assignors[0] != "static" || strings.Join(x.Topics, ",") != "orders" {
		t.Errorf("x's configuration %+v", x)
	}
	if r := sc.Actions[4].Do.(Restart); !r.Crash || r.Down != 3*time.Second {
		t.Errorf("restart %+v", r)
	}
	if c := sc.Actions[12].Do.(Churn); c.Every != 10*time.Second || c.For != time.Minute || len(c.Kinds) != 2 {
		t.Errorf("churn %+v", c)
	}
	if e := sc.Expects[0]; e.Metric != MetricRebalances || e.Op != OpLe || e.Value != 3 || e.Since != 15*time.Second || e.Cause != "member-joined" {
		t.Errorf("expect %+v", e)
	}
	if e := sc.Expects[1]; e.Metric != MetricStable || e.Op != OpLe || e.Value != 30 {
		t.Errorf("stable-within: %+v", e)
	}
}

func TestDefaults(t *testing.T) {
	sc, err := Parse("", "topic orders partitions=8\nat 0s join m1\nat 60s crash m1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Groups) != 1 || sc.Groups[0].Name != "g" || sc.Seed != 1 {
		t.Fatalf("default group/seed: %+v seed %d", sc.Groups, sc.Seed)
	}
	c := sc.Actions[0].Do.(Join).Config
	if c.Assignors[0] != "cooperative-sticky" || c.SessionTimeout != 20*time.Second || c.RebalanceTimeout != 30*time.Second ||
		c.HeartbeatInterval != 3*time.Second || c.Margin != 2*time.Second || c.MinBackoff != 100*time.Millisecond ||
		c.MaxBackoff != 5*time.Second || c.Callbacks.OnRevoked.Max != 200*time.Millisecond {
		t.Errorf("member defaults %+v", c)
	}
	// S=20s, R=30s, B=5s, C=200ms, N=5ms.
	if got, want := sc.LivenessBound(), 60*time.Second+90*time.Second+5*time.Second+400*time.Millisecond+50*time.Millisecond; got != want {
		t.Errorf("LivenessBound = %v, want %v", got, want)
	}
	if got := sc.End(); got != time.Minute+sc.LivenessBound() {
		t.Errorf("End = %v, want the last disturbance plus the bound", got)
	}
	sc.SetAssignors([]string{"range"})
	sc.SetStatic(true)
	if c := sc.Actions[0].Do.(Join).Config; c.Assignors[0] != "range" || !c.Static {
		t.Errorf("after SetAssignors and SetStatic: %+v", c)
	}
	if p, same := sc.Protocol(); p != fsm.Classic || !same {
		t.Errorf("Protocol() = %v, %v; want classic for every member", p, same)
	}
}

// TestNextProtocol: protocol=next makes a member speak the next-generation
// protocol with its one assignor as the server-side one, for a group's
// members or one join's; SetProtocol does it for every member, keeping the
// first of several assignors; an expect line may be for one protocol.
func TestNextProtocol(t *testing.T) {
	sc, err := Parse("", `topic orders partitions=8
group g assignors=range
at 0s join m1 protocol=next
at 0s join m2 assignors=sticky,range
expect rebalances=1 protocol=next
`)
	if err != nil {
		t.Fatal(err)
	}
	c := sc.Actions[0].Do.(Join).Config
	cfg, err := c.Machine("g")
	if err != nil || c.Protocol != fsm.Next || cfg.Protocol != fsm.Next || cfg.ServerAssignor != "range" || len(cfg.Assignors) != 0 {
		t.Errorf("m1: %+v; machine %+v, %v", c, cfg, err)
	}
	if _, same := sc.Protocol(); same {
		t.Errorf("Protocol() says every member speaks one protocol; m2 is classic")
	}
	if e := sc.Expects[0]; e.Protocol != "next" {
		t.Errorf("expect protocol=next: %+v", e)
	}
	sc.SetProtocol(fsm.Next)
	c = sc.Actions[1].Do.(Join).Config
	if cfg, err := c.Machine("g"); err != nil || cfg.ServerAssignor != "sticky" || c.Protocol != fsm.Next {
		t.Errorf("m2 after SetProtocol(Next): %+v; machine %+v, %v", c, cfg, err)
	}
	if p, same := sc.Protocol(); p != fsm.Next || !same {
		t.Errorf("Protocol() = %v, %v after SetProtocol(Next)", p, same)
	}
	sc.SetProtocol(fsm.Classic)
	if cfg, err := sc.Actions[1].Do.(Join).Config.Machine("g"); err != nil || cfg.Protocol != fsm.Classic || len(cfg.Assignors) != 1 || cfg.ServerAssignor != "" {
		t.Errorf("m2 after SetProtocol(Classic): machine %+v, %v", cfg, err)
	}
}

func TestErrors(t *testing.T) {
	const top = "topic orders partitions=8\n"
	for _, tc := range []struct{ text, want string }{
		{"frobnicate 3", "line 1: unknown command \"frobnicate\""},
		{top + "at 1s join m1 sesion=10s", "line 2: join: unknown argument \"sesion\""},
		{top + "at 1s join m1 turbo", "line 2: join: unexpected argument \"turbo\""},
		{top + "at 1s leave m1", "line 2: leave: m1 has not joined by 1s"},
		{top + "at 1s join m1\nat 2s pause m1", "line 3: pause: missing for=D"},
		{top + "at 1s join m1..x3", "line 2: join: member range \"m1..x3\""},
		{top + "at 1s join m1,m1", "listed twice"},
		{top + "at 1s join m1 assignors=fancy", "line 2: join: regroup: unknown assignor \"fancy\""},
		{top + "at 1s join m1 heartbeat=7s", "line 2: join: regroup: member: heartbeat interval 7s must be at most a third"},
		{top + "at soon join m1", "line 2: at: time \"soon\""},
		{top + "at 1s explode", "line 2: at: unknown command \"explode\""},
		{top + "at 1s join m1 group=h", "line 2: join: unknown group \"h\""},
		{top + "at 1s join m1 topics=billing", "line 2: join: m1 subscribes to topic billing, which is never declared"},
		{top + "at 1s topic orders partitions=4", "line 2: topic: orders would shrink from 8 to 4"},
		{top + "expect rebalances<=two", "line 2: expect: rebalances: \"two\" is not a whole number"},
		{top + "expect happiness>=1", "line 2: expect: unknown metric \"happiness\""},
		{top + "expect stable>=1", "line 2: expect: stable: \"1\": want a duration"},
		{top + "expect moved=1 cause=member-joined", "line 2: expect: cause= applies to rebalances only"},
		{top + "expect rebalances=1 cause=sunspots", "line 2: expect: unknown cause \"sunspots\""},
		{top + "at 1s join m1\nat 2s crash m1 repeat=3", "line 3: crash: repeat=3 needs every=D"},
		{top + "network loss=150%", "line 2: network: loss=150%: must be at least 0 and below 1"},
		{top + "network delay=9ms..1ms", "runs backwards"},
		{top + "run until=0s", "line 2: run: give a positive until=D"},
		{top + "topic orders partitions=9", "line 2: topic: orders is declared twice"},
		{top + "group g\ngroup g", "line 3: group: g is declared twice"},
		{top + "at 1s join m1 leave-on-stop", "line 2: join: leave-on-stop applies to static members"},
		{top + "at 1s join m1 heartbeats=kafka", "line 2: join: heartbeats=kafka: want held (Regroup's) or classic"},
		{top + "at 1s join m1 protocol=kip848", "line 2: join: protocol=kip848: want classic"},
		{top + "at 1s join m1 protocol=next assignors=sticky,range", "line 2: join: protocol=next: the coordinator assigns with the group's server-side assignor: name one"},
		{top + "at 1s join m1 protocol=next heartbeats=classic", "line 2: join: regroup: member: classic heartbeats are a baseline of the classic protocol"},
		{top + "expect rebalances=1 protocol=both", "line 2: expect: protocol=both: want classic or next"},
		{"at 1s join m1", "no topic"},
		{top + "at 1s churn every=1s", "line 2: churn: missing for=D"},
		{top + "at 1s churn every=1s for=1m kinds=meteor", "line 2: churn: unknown kind \"meteor\""},
		{top + "coordinator shards=0", "line 2: coordinator: shards"},
		{top + "coordinator coordinators=2\nat 1s remove-coordinator c3", "line 3: remove-coordinator: no coordinator c3 runs at 1s"},
		{top + "at 1s remove-coordinator c1", "line 2: remove-coordinator: c1 is the last coordinator; add another first"},
		{top + "coordinator coordinators=2\nat 1s remove-coordinator c2\nat 2s failover coordinator=c2", "line 4: failover: no coordinator c2 runs at 2s"},
		{top + "at 1s add-coordinator c2", "line 2: add-coordinator: unexpected argument \"c2\""},
		{top + "at 1s add-coordinator\nat 2s pause-coordinator for=1s coordinator=c2\nat 3s pause-coordinator for=1s coordinator=c3", "line 4: pause-coordinator: no coordinator c3 runs at 3s"},
	} {
		_, err := Parse("s.sim", tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

// TestRandomParses: every random scenario is valid, and the same seed
// gives the same text.
func TestRandomParses(t *testing.T) {
	for seed := range uint64(300) {
		text := Random(seed)
		if Random(seed) != text {
			t.Fatalf("seed %d: two different texts", seed)
		}
		sc, err := Parse("random", text)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, text)
		}
		if sc.Seed != seed {
			t.Fatalf("seed %d: the scenario's seed is %d", seed, sc.Seed)
		}
	}
}
