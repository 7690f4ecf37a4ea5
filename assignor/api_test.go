package assignor

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func TestNamesAndProtocols(t *testing.T) {
	want := []string{"cooperative-sticky", "range", "roundrobin", "static", "sticky"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	cooperative := map[string]bool{"cooperative-sticky": true, "static": true}
	for _, name := range want {
		a := mustLookup(t, name)
		if a.Name() != name {
			t.Errorf("Lookup(%q).Name() = %q", name, a.Name())
		}
		if !Supports(a, Eager) {
			t.Errorf("%s does not support eager", name)
		}
		if Supports(a, Cooperative) != cooperative[name] {
			t.Errorf("%s: Supports(Cooperative) = %v", name, Supports(a, Cooperative))
		}
	}
	sticky, coop, static := mustLookup(t, "sticky"), mustLookup(t, "cooperative-sticky"), mustLookup(t, "static")
	if ProtocolFor([]Assignor{coop, static}) != Cooperative || ProtocolFor([]Assignor{coop, sticky}) != Eager || ProtocolFor(nil) != Eager {
		t.Error("ProtocolFor: cooperative only when every assignor supports it")
	}
	if Eager.String() != "eager" || Cooperative.String() != "cooperative" || RebalanceProtocol(7).String() != "RebalanceProtocol(7)" {
		t.Error("RebalanceProtocol.String")
	}
}

func TestLookupUnknownName(t *testing.T) {
	_, err := Lookup("stiky")
	if err == nil || !strings.Contains(err.Error(), `"stiky"`) || !strings.Contains(err.Error(), "cooperative-sticky") {
		t.Fatalf("Lookup(stiky) = %v, want an error naming it and the known assignors", err)
	}
}

func TestDuplicateMemberIDs(t *testing.T) {
	forAll(t, func(t *testing.T, a Assignor) {
		in := group(map[string]int32{"t": 2}, mem("c", topicList("t"), -1), mem("d", topicList("t"), -1), mem("c", topicList("t"), -1))
		if _, err := a.Assign(in); err == nil || !strings.Contains(err.Error(), `two members with id "c"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestRangeAssignsConsecutiveRanges is Kafka's range example: two members,
// two topics of three partitions.
func TestRangeAssignsConsecutiveRanges(t *testing.T) {
	in := group(map[string]int32{"t0": 3, "t1": 3}, mem("c0", topicList("t0", "t1"), -1), mem("c1", topicList("t0", "t1"), -1))
	p := settle(t, mustLookup(t, "range"), in)
	owns(t, p, "c0", tps("t0", 0, 1), tps("t1", 0, 1))
	owns(t, p, "c1", tps("t0", 2), tps("t1", 2))
}

// TestRoundRobinDealsInTurn is Kafka's round-robin example, and its
// skipping of members that do not subscribe to a topic.
func TestRoundRobinDealsInTurn(t *testing.T) {
	a := mustLookup(t, "roundrobin")
	in := group(map[string]int32{"t0": 3, "t1": 3}, mem("c0", topicList("t0", "t1"), -1), mem("c1", topicList("t0", "t1"), -1))
	p := settle(t, a, in)
	owns(t, p, "c0", tps("t0", 0, 2), tps("t1", 1))
	owns(t, p, "c1", tps("t0", 1), tps("t1", 0, 2))

	in = group(map[string]int32{"t0": 1, "t1": 2, "t2": 3},
		mem("c0", topicList("t0"), -1), mem("c1", topicList("t0", "t1"), -1), mem("c2", topicList("t0", "t1", "t2"), -1))
	p = settle(t, a, in)
	owns(t, p, "c0", tps("t0", 0))
	owns(t, p, "c1", tps("t1", 0))
	owns(t, p, "c2", tps("t1", 1), tps("t2", 0, 1, 2))
}

// TestStaticMembersFirst: range and roundrobin put static members (by
// instance id) before dynamic ones (by member id).
func TestStaticMembersFirst(t *testing.T) {
	in := group(map[string]int32{"t": 3}, mem("a-dynamic", topicList("t"), -1), mem("b", topicList("t"), -1), mem("c", topicList("t"), -1))
	in.Members[1].InstanceID = "z"
	in.Members[2].InstanceID = "y"
	for _, name := range []string{"range", "roundrobin"} {
		p := settle(t, mustLookup(t, name), in)
		owns(t, p, "c", tps("t", 0))
		owns(t, p, "b", tps("t", 1))
		owns(t, p, "a-dynamic", tps("t", 2))
	}
}

// TestPlanSlicesAreCapped: appending to one partition list of a plan does
// not change another.
func TestPlanSlicesAreCapped(t *testing.T) {
	forAll(t, func(t *testing.T, a Assignor) {
		p := settle(t, a, uniform(3, 9, "t", "u"))
		snapshot := ownerMap(p)
		for _, m := range p {
			for topic := range m {
				m[topic] = append(m[topic], 99)
			}
		}
		for k, id := range snapshot {
			if !slices.Contains(p[id][k.topic], k.p) {
				t.Fatalf("appending changed %s's %v", id, k)
			}
		}
	})
}

func TestCheck(t *testing.T) {
	in := group(map[string]int32{"t": 3, "u": 2},
		mem("a", topicList("t", "u"), -1), mem("b", topicList("t"), -1))
	cases := []struct {
		name string
		plan Plan
		want string
	}{
		{"valid", Plan{"a": {"t": {0, 2}, "u": {0, 1}}, "b": {"t": {1}}}, ""},
		{"valid partial", Plan{"a": {}, "b": {"t": {1}}}, ""},
		{"missing member", Plan{"a": {}}, `no entry for member "b"`},
		{"unknown member", Plan{"a": {}, "b": {}, "c": {}}, `"c", which is not a member`},
		{"unknown topic", Plan{"a": {"v": {0}}, "b": {}}, `topic "v", which does not exist`},
		{"not subscribed", Plan{"a": {}, "b": {"u": {0}}}, `topic "u", to which it does not subscribe`},
		{"out of range", Plan{"a": {"u": {2}}, "b": {}}, "partition 2 of topic \"u\", which has 2 partitions"},
		{"negative", Plan{"a": {"u": {-1}}, "b": {}}, "partition -1"},
		{"unsorted", Plan{"a": {"t": {2, 0}}, "b": {}}, "not ascending"},
		{"duplicate", Plan{"a": {"t": {0, 0}}, "b": {}}, "not ascending"},
		{"twice", Plan{"a": {"t": {1}}, "b": {"t": {1}}}, `partition 1 of topic "t" to both "a" and "b"`},
	}
	for _, c := range cases {
		err := Check(in, c.plan)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want it to mention %s", c.name, err, c.want)
		}
	}
	dup := group(map[string]int32{}, mem("a", nil, -1), mem("a", nil, -1))
	if err := Check(dup, Plan{"a": {}}); err == nil {
		t.Error("Check accepts two members with one id")
	}
}

func TestComplete(t *testing.T) {
	in := group(map[string]int32{"t": 3, "gone": 0}, mem("a", topicList("t", "gone", "missing"), -1))
	if err := Complete(in, Plan{"a": {"t": {0, 1, 2}}}); err != nil {
		t.Error(err)
	}
	err := Complete(in, Plan{"a": {"t": {0, 2}}})
	if err == nil || !strings.Contains(err.Error(), `1 partitions of topic "t" unassigned, the first is 1`) {
		t.Errorf("err = %v", err)
	}
}

func TestBalanced(t *testing.T) {
	in := group(map[string]int32{"t": 6, "u": 3},
		mem("a", topicList("t"), -1), mem("b", topicList("t", "u"), -1), mem("c", topicList("u"), -1))
	cases := []struct {
		name string
		plan Plan
		ok   bool
	}{
		{"even", Plan{"a": {"t": {0, 1, 2}}, "b": {"t": {3, 4, 5}}, "c": {"u": {0, 1, 2}}}, true},
		{"differ by one", Plan{"a": {"t": {0, 1, 2, 3}}, "b": {"t": {4, 5}, "u": {0}}, "c": {"u": {1, 2}}}, true},
		{"no shared topic", Plan{"a": {"t": {0, 1, 2, 3, 4}}, "b": {"t": {5}, "u": {0, 1, 2}}, "c": {}}, false},
		{"holder of a subscribed topic", Plan{"a": {"t": {0, 1, 2, 3, 4}}, "b": {"t": {5}, "u": {0}}, "c": {"u": {1, 2}}}, false},
		{"larger holds nothing the smaller wants", Plan{"a": {"t": {0, 1, 2}}, "b": {"t": {3, 4, 5}}, "c": {"u": {0}}}, true},
	}
	for _, c := range cases {
		if err := Check(in, c.plan); err != nil {
			t.Fatalf("%s: invalid case: %v", c.name, err)
		}
		if err := Balanced(in, c.plan); (err == nil) != c.ok {
			t.Errorf("%s: Balanced = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestInputFromJoin(t *testing.T) {
	resp := &regroupv1.JoinGroupResponse{
		Generation: 7,
		Members: []*regroupv1.JoinGroupMember{
			{MemberId: "m2", Subscription: &regroupv1.Subscription{
				Topics:          []string{"t"},
				OwnedPartitions: []*regroupv1.TopicPartitions{{Topic: "t", Partitions: []int32{0, 2}}, {Topic: "x", Partitions: []int32{1}}},
				Generation:      6, Rack: "r1", UserData: []byte("hi"),
			}},
			{MemberId: "m1", GroupInstanceId: "i1", Subscription: &regroupv1.Subscription{Topics: []string{"t", "u"}, Generation: -1}},
			{MemberId: "m0"},
		},
		Topics: []*regroupv1.Topic{{Name: "t", Partitions: 3}, {Name: "u", Partitions: 1}},
	}
	want := &Input{
		Generation: 7,
		Topics:     map[string]int32{"t": 3, "u": 1},
		Members: []Member{
			{ID: "m0", Generation: -1},
			{ID: "m1", InstanceID: "i1", Topics: []string{"t", "u"}, Generation: -1},
			{ID: "m2", Topics: []string{"t"}, Generation: 6, Rack: "r1", UserData: []byte("hi"),
				Owned: []TopicPartitions{{Topic: "t", Partitions: []int32{0, 2}}, {Topic: "x", Partitions: []int32{1}}}},
		},
	}
	if got := InputFromJoin(resp); !reflect.DeepEqual(got, want) {
		t.Fatalf("InputFromJoin:\n got %+v\nwant %+v", got, want)
	}
	if got := InputFromJoin(&regroupv1.JoinGroupResponse{}); len(got.Members) != 0 || got.Topics == nil {
		t.Fatalf("empty response: %+v", got)
	}
}

func TestAssignmentsRoundTrip(t *testing.T) {
	p := Plan{"b": {"u": {1}, "t": {0, 2}, "empty": {}}, "a": {}}
	as := p.Assignments()
	if len(as) != 2 || as[0].GetMemberId() != "a" || len(as[0].GetAssignment().GetPartitions()) != 0 || as[1].GetMemberId() != "b" {
		t.Fatalf("Assignments() = %v", as)
	}
	parts := as[1].GetAssignment().GetPartitions()
	if len(parts) != 2 || parts[0].GetTopic() != "t" || parts[1].GetTopic() != "u" || !slices.Equal(parts[0].GetPartitions(), []int32{0, 2}) {
		t.Fatalf("member b: %v", parts)
	}
	back := PlanFromAssignments(as)
	delete(p["b"], "empty")
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip: %v, want %v", back, p)
	}
}

// TestJoinToSync runs a plan from a JoinGroup response through to the
// SyncGroup assignments and checks it with Check.
func TestJoinToSync(t *testing.T) {
	resp := &regroupv1.JoinGroupResponse{Generation: 3, Topics: []*regroupv1.Topic{{Name: "t", Partitions: 5}}}
	for _, id := range []string{"c", "a", "b"} {
		resp.Members = append(resp.Members, &regroupv1.JoinGroupMember{MemberId: id, Subscription: &regroupv1.Subscription{Topics: []string{"t"}, Generation: -1}})
	}
	in := InputFromJoin(resp)
	p, err := mustLookup(t, "cooperative-sticky").Assign(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(Check(in, PlanFromAssignments(p.Assignments())), Complete(in, p)); err != nil {
		t.Fatal(err)
	}
}
