package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// cli runs regroup commands against one coordinator.
type cli struct {
	t        *testing.T
	endpoint string
}

// ok runs a command that must succeed and returns its standard output.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, status := regroupCLI(context.Background(), append(args, "--endpoint", c.endpoint)...)
	if status != 0 || errs != "" {
		c.t.Fatalf("regroup %s: status %d, stderr %q", strings.Join(args, " "), status, errs)
	}
	if line := strings.Join(args, " "); !strings.Contains(line, "-o json") && !strings.Contains(line, "-o wide") {
		checkWidth(c.t, args, out)
	}
	return out
}

// fails runs a command that must fail and returns its standard output and
// its one-line error.
func (c cli) fails(args ...string) (string, string) {
	c.t.Helper()
	out, errs, status := regroupCLI(context.Background(), append(args, "--endpoint", c.endpoint)...)
	if status != 1 {
		c.t.Fatalf("regroup %s: status %d, want 1 (stdout %q, stderr %q)", strings.Join(args, " "), status, out, errs)
	}
	checkOneLine(c.t, args, errs)
	return out, errs
}

// json runs a command that must succeed with -o json and decodes its output.
func (c cli) json(args ...string) map[string]any {
	c.t.Helper()
	return decode(c.t, c.ok(append(args, "-o", "json")...))
}

func decode(t *testing.T, out string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out)
	}
	return v
}

func checkWidth(t *testing.T, args []string, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("regroup %s: a line is %d columns wide, more than 80:\n%s", strings.Join(args, " "), n, line)
		}
	}
}

func checkOneLine(t *testing.T, args []string, errs string) {
	t.Helper()
	if !strings.HasPrefix(errs, "regroup: ") || strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, "\n") {
		t.Errorf("regroup %s: stderr %q, want one line starting with \"regroup: \"", strings.Join(args, " "), errs)
	}
}

// contains checks that out has a line matching each pattern (a regular
// expression), in order.
func contains(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	rest := out
	for _, p := range patterns {
		loc := regexp.MustCompile(`(?m)` + p).FindStringIndex(rest)
		if loc == nil {
			t.Errorf("%s: no line matching %q after the previous match in:\n%s", what, p, out)
			return
		}
		rest = rest[loc[1]:]
	}
}

// field walks a decoded JSON value along keys and indices.
func field(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func TestOperatorCommands(t *testing.T) {
	s := startServe(t)
	c := cli{t: t, endpoint: s.addr}
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)

	// topics put, list
	contains(t, "topics put", c.ok("topics", "put", "orders", "--partitions", "8"), `^created topic "orders" with 8 partitions$`)
	if put := c.json("topics", "put", "payments", "--partitions", "4"); field(put, "previous_partitions") != 0.0 || field(put, "rebalanced_groups") == nil {
		t.Errorf("topics put -o json: %v, want previous_partitions 0 and a rebalanced_groups list", put)
	}
	contains(t, "topics list", c.ok("topics", "list"), `^TOPIC\s+PARTITIONS$`, `^orders\s+8$`, `^payments\s+4$`)
	if list := c.json("topics", "list"); field(list, "topics", 1, "name") != "payments" || field(list, "topics", 1, "partitions") != 4.0 {
		t.Errorf("topics list -o json: %v", list)
	}

	// A group of two static members.
	a := startMember(t, conn, "orders-consumers", "a", "orders")
	b := startMember(t, conn, "orders-consumers", "b", "orders")
	waitStable(t, admin, "orders-consumers", "a", "b")

	// groups list
	contains(t, "groups list", c.ok("groups", "list"),
		`^GROUP\s+STATE\s+GEN\s+MEMBERS\s+PROTOCOL$`, `^orders-consumers\s+Stable\s+\d+\s+2\s+roundrobin$`)
	list := c.json("groups", "list")
	if field(list, "groups", 0, "group_id") != "orders-consumers" || field(list, "groups", 0, "state") != "GROUP_STATE_STABLE" ||
		field(list, "groups", 0, "members") != 2.0 {
		t.Errorf("groups list -o json: %v", list)
	}

	// groups describe
	contains(t, "groups describe", c.ok("groups", "describe", "orders-consumers"),
		`^Group:\s+orders-consumers$`, `^State:\s+Stable$`, `^Generation:\s+\d+$`, `^Protocol:\s+roundrobin$`,
		`^Leader:\s+[ab]-`, `^Topics:\s+orders \(8\)$`, `^Members:\s+2$`,
		`^MEMBER\s+INSTANCE\s+HOST\s+SESSION\s+PARTITIONS$`,
		`^a-[0-9a-f]{8}…\s+a\s+127\.0\.0\.1\s+(in [0-9.]+m?s|expired)\s+4 orders:0,2,4,6$`,
		`^b-[0-9a-f]{8}…\s+b\s+127\.0\.0\.1\s+(in [0-9.]+m?s|expired)\s+4 orders:1,3,5,7$`,
		`^GEN\s+DURATION\s+MOVED\s+REVOKED\s+LOST\s+CAUSE$`, `^\d+\s+\S+\s+0\s+0\s+0\s+static member [ab]-[0-9a-f]{8}… \(instance [ab]\)`)
	desc := c.json("groups", "describe", "orders-consumers")
	if field(desc, "members", 1, "group_instance_id") != "b" || field(desc, "members", 1, "assignment", "partitions", 0, "partitions", 3) != 7.0 ||
		field(desc, "members", 0, "session_deadline") == nil || field(desc, "rebalances", 0, "cause_kind") != "member-joined" {
		t.Errorf("groups describe -o json: %v", desc)
	}

	// groups watch, in both formats at once, while a third member joins.
	ctx, stopWatching := context.WithCancel(context.Background())
	watchTable, watchJSON := &syncBuffer{}, &syncBuffer{}
	watched := make(chan int, 2)
	for _, w := range []struct {
		out  *syncBuffer
		args []string
	}{{watchTable, nil}, {watchJSON, []string{"-o", "json"}}} {
		go func() {
			errs := &syncBuffer{}
			status := run(ctx, append([]string{"groups", "watch", "orders-consumers", "--endpoint", s.addr}, w.args...), w.out, errs)
			if errs.String() != "" {
				t.Errorf("groups watch %v: stderr %q", w.args, errs)
			}
			watched <- status
		}()
	}
	for _, out := range []*syncBuffer{watchTable, watchJSON} {
		waitfor.Until(t, "groups watch prints the group's state", func() error {
			if !strings.Contains(out.String(), "\n") {
				return fmt.Errorf("output so far: %q", out)
			}
			return nil
		})
	}
	// c's session outlasts the time between its crash and its removal
	// below by far, whatever the machine's speed.
	cm := startMemberWithSession(t, conn, "orders-consumers", "c", 3*time.Second, "orders")
	for _, out := range []*syncBuffer{watchTable, watchJSON} {
		waitfor.Until(t, "groups watch prints the rebalance", func() error {
			if !strings.Contains(out.String(), "rebalance_done") && !strings.Contains(out.String(), "rebalance done") {
				return fmt.Errorf("output so far: %q", out)
			}
			return nil
		})
	}
	stopWatching()
	for range 2 {
		if status := <-watched; status != 0 {
			t.Errorf("groups watch ended with status %d when interrupted, want 0", status)
		}
	}
	contains(t, "groups watch", watchTable.String(),
		`^[0-9:.]+ Stable at generation \d+: 2 members, protocol roundrobin, leader [ab]-`,
		`^[0-9:.]+ state Stable -> PreparingRebalance$`,
		`^[0-9:.]+ rebalance started \(member-joined\): static member c-\S+ \(instance c\) joined$`,
		`^[0-9:.]+ state PreparingRebalance -> CompletingRebalance$`,
		`^[0-9:.]+ rebalance done: generation \d+ in \S+ \(join \S+\), 3 members, \d+ moved, \d+ revoked, 0 unowned$`)
	lines := strings.Split(strings.TrimSpace(watchJSON.String()), "\n")
	if snap := decode(t, lines[0]); field(snap, "snapshot", "state") != "GROUP_STATE_STABLE" || field(snap, "time") == nil {
		t.Errorf("groups watch -o json: first line %v, want a snapshot", snap)
	}
	if done := decode(t, lines[len(lines)-1]); field(done, "rebalance_done", "members") != 3.0 || field(done, "rebalance_done", "cause_kind") != "member-joined" {
		t.Errorf("groups watch -o json: last line %v, want the rebalance done", done)
	}
	waitStable(t, admin, "orders-consumers", "a", "b", "c")

	// groups remove-members: c's process is gone for good.
	cm.crash()
	out, errs := c.fails("groups", "remove-members", "orders-consumers", "--instance", "c", "--instance", "nope")
	contains(t, "groups remove-members", out, `^INSTANCE\s+RESULT$`, `^c\s+removed$`, `^nope\s+UNKNOWN_MEMBER_ID: .*nope`)
	if errs != "regroup: 1 of 2 members could not be removed from group \"orders-consumers\"\n" {
		t.Errorf("groups remove-members: stderr %q", errs)
	}
	waitStable(t, admin, "orders-consumers", "a", "b")
	out, _ = c.fails("groups", "remove-members", "orders-consumers", "--instance", "gone", "-o", "json")
	if rm := decode(t, out); field(rm, "members", 0, "group_instance_id") != "gone" || field(rm, "members", 0, "error_reason") != "UNKNOWN_MEMBER_ID" {
		t.Errorf("groups remove-members -o json: %v", rm)
	}

	// groups delete: refused while the group has members.
	_, errs = c.fails("groups", "delete", "orders-consumers")
	if !strings.Contains(errs, "(GROUP_NOT_EMPTY)") {
		t.Errorf("groups delete of a group with members: stderr %q, want GROUP_NOT_EMPTY", errs)
	}
	a.stop()
	b.stop()
	x := startMember(t, conn, "other", "x", "payments")
	waitStable(t, admin, "other", "x")
	x.stop()
	for _, g := range []string{"orders-consumers", "other"} {
		waitfor.Until(t, g+" is Empty", func() error {
			d, err := admin.DescribeGroup(context.Background(), &regroupv1.DescribeGroupRequest{GroupId: g})
			if err == nil && d.GetState() != regroupv1.GroupState_GROUP_STATE_EMPTY {
				err = fmt.Errorf("group is %v", d.GetState())
			}
			return err
		})
	}
	contains(t, "groups delete", c.ok("groups", "delete", "orders-consumers"), `^deleted group "orders-consumers"$`)
	if del := c.json("groups", "delete", "other"); len(del) != 0 {
		t.Errorf("groups delete -o json: %v, want {}", del)
	}
	contains(t, "groups list", c.ok("groups", "list"), `^no groups$`)
	if list := c.json("groups", "list"); fmt.Sprint(field(list, "groups")) != "[]" {
		t.Errorf("groups list -o json with no groups: %v", list)
	}

	// topics delete
	contains(t, "topics delete", c.ok("topics", "delete", "payments"), `^deleted topic "payments"$`)
	if del := c.json("topics", "delete", "orders"); fmt.Sprint(field(del, "rebalanced_groups")) != "[]" {
		t.Errorf("topics delete -o json: %v", del)
	}
	contains(t, "topics list", c.ok("topics", "list"), `^no topics$`)
}

func TestCommandErrors(t *testing.T) {
	s := startServe(t)
	c := cli{t: t, endpoint: s.addr}
	for _, args := range [][]string{
		{"groups", "describe", "nope"},
		{"groups", "describe", "nope", "-o", "json"},
		{"groups", "watch", "nope"},
		{"groups", "delete", "nope"},
		{"groups", "remove-members", "nope", "--instance", "a"},
	} {
		if out, errs := c.fails(args...); out != "" || errs != "regroup: group \"nope\" does not exist (UNKNOWN_GROUP)\n" {
			t.Errorf("regroup %s: stdout %q, stderr %q", strings.Join(args, " "), out, errs)
		}
	}
	if _, errs := c.fails("topics", "delete", "nope"); errs != "regroup: topic \"nope\" does not exist (UNKNOWN_TOPIC)\n" {
		t.Errorf("topics delete nope: stderr %q", errs)
	}
	if _, errs := c.fails("topics", "put", "orders", "--partitions", "0"); !strings.Contains(errs, "(INVALID_REQUEST)") {
		t.Errorf("topics put with 0 partitions: stderr %q", errs)
	}
	for args, want := range map[string]string{
		"groups list -o yaml":          `regroup: --output "yaml": want table, wide or json` + "\n",
		"groups describe":              "regroup: want one GROUP argument, got 0: regroup groups describe GROUP [flags]\n",
		"groups remove-members g":      `regroup: required flag(s) "instance" not set` + "\n",
		"topics put orders":            `regroup: required flag(s) "partitions" not set` + "\n",
		"groups list --timeout 0s":     "regroup: --timeout 0s: want a positive duration such as 10s\n",
		"groups describe a b -o table": "regroup: want one GROUP argument, got 2: regroup groups describe GROUP [flags]\n",
	} {
		if _, errs := c.fails(strings.Fields(args)...); errs != want {
			t.Errorf("regroup %s: stderr %q, want %q", args, errs, want)
		}
	}

	// Nothing listens on a port that was just released.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close()
	down := cli{t: t, endpoint: dead}
	for _, args := range [][]string{{"groups", "list"}, {"groups", "watch", "g"}, {"topics", "list", "-o", "json"}} {
		if _, errs := down.fails(args...); !strings.HasPrefix(errs, "regroup: cannot reach the coordinator at "+dead+": ") {
			t.Errorf("regroup %s against %s: stderr %q", strings.Join(args, " "), dead, errs)
		}
	}
}

func TestEndpointEnvironmentTwin(t *testing.T) {
	s := startServe(t)
	t.Setenv("REGROUP_ENDPOINT", s.addr)
	t.Setenv("REGROUP_OUTPUT", "json")
	out, errs, status := regroupCLI(context.Background(), "topics", "list")
	if status != 0 || strings.TrimSpace(out) != `{
  "topics": []
}` {
		t.Errorf("topics list with $REGROUP_ENDPOINT and $REGROUP_OUTPUT: status %d, stdout %q, stderr %q", status, out, errs)
	}
}

func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	var visit func(cmd *cobra.Command)
	visit = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			visit(sub)
		}
		if cmd.Name() == "help" || cmd.Name() == "completion" {
			return
		}
		args := append(strings.Fields(cmd.CommandPath())[1:], "--help")
		out, errs, status := regroupCLI(context.Background(), args...)
		if status != 0 || errs != "" {
			t.Errorf("regroup %s: status %d, stderr %q", strings.Join(args, " "), status, errs)
		}
		if !strings.Contains(out, "Examples:\n  ") || !strings.Contains(out, strings.TrimSpace("regroup "+strings.Join(args[:len(args)-1], " "))) {
			t.Errorf("regroup %s shows no example of itself:\n%s", strings.Join(args, " "), out)
		}
		if cmd.HasParent() && (cmd.Parent().Name() == "groups" || cmd.Parent().Name() == "topics") &&
			!strings.Contains(out, "[$REGROUP_ENDPOINT]") {
			t.Errorf("regroup %s does not show --endpoint's environment twin:\n%s", strings.Join(args, " "), out)
		}
	}
	visit(newRoot())
}

// A mistyped subcommand fails with a suggestion, rather than printing the
// parent's help and exiting 0; the parent alone still prints its help.
func TestUnknownSubcommandFails(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"groups", "lst"}, {"topics", "lst"}, {"sim", "rnu"}, {"lst"}} {
		_, stderr, status := regroupCLI(ctx, args...)
		if status == 0 || !strings.Contains(stderr, "unknown command") {
			t.Errorf("regroup %s: status %d, stderr %q; want a failure naming the unknown command", strings.Join(args, " "), status, stderr)
		}
	}
	if _, stderr, _ := regroupCLI(ctx, "groups", "lst"); !strings.Contains(stderr, `did you mean "list"`) {
		t.Errorf("regroup groups lst: %q does not suggest list", stderr)
	}
	if stdout, _, status := regroupCLI(ctx, "groups"); status != 0 || !strings.Contains(stdout, "Available Commands") {
		t.Errorf("regroup groups alone: status %d, stdout %q; want its help", status, stdout)
	}
}

// groups watch outlives a coordinator restart: it says on stderr that it
// lost the watch, watches again, and prints the group's state again.
func TestWatchReconnectsAcrossRestart(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"--listen", addr, "--store", "etcd", "--data-dir", t.TempDir(), "--lease-ttl", "2s",
		"--etcd-client-port", fmt.Sprint(freePort(t)), "--etcd-peer-port", fmt.Sprint(freePort(t))}
	first := startServe(t, args...)
	conn := dial(t, addr)
	admin := regroupv1.NewAdminClient(conn)
	waitfor.Until(t, "the topic is created", func() error {
		_, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}})
		return err
	})
	m := startMember(t, conn, "g", "a", "orders")
	waitStable(t, admin, "g", "a")

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	status := make(chan int, 1)
	go func() { status <- run(ctx, []string{"groups", "watch", "g", "--endpoint", addr}, &stdout, &stderr) }()
	defer func() {
		cancel()
		if s := <-status; s != 0 {
			t.Errorf("groups watch exited with status %d after an interrupt; stderr:\n%s", s, stderr.String())
		}
	}()
	// The watch prints the group's state line ("Stable at generation 1:
	// ...") whenever it (re)connects; after the restart the crashed member's
	// restored session (a second) may have ended already, so any state.
	states := func(n int) func() error {
		return func() error {
			if got := strings.Count(stdout.String(), " at generation "); got < n {
				return fmt.Errorf("%d state lines so far:\n%s%s", got, stdout.String(), stderr.String())
			}
			return nil
		}
	}
	waitfor.Until(t, "the watch prints the group's state", states(1))
	m.crash()
	first.stop()
	startServe(t, args...)
	waitfor.Until(t, "the watch prints the group's state again after the restart", states(2))
	if !strings.Contains(stderr.String(), "lost the watch") {
		t.Errorf("no notice of the lost watch on stderr: %q", stderr.String())
	}
}

func TestClusterDescribe(t *testing.T) {
	s := startServe(t)
	stdout, stderr, status := regroupCLI(context.Background(), "cluster", "describe", "--endpoint", s.addr)
	if status != 0 || !strings.Contains(stdout, "leader") || !strings.Contains(stdout, "Coordinators:   "+s.addr) {
		t.Errorf("cluster describe: status %d, stdout %q, stderr %q; want this coordinator shown leading", status, stdout, stderr)
	}
	stdout, _, status = regroupCLI(context.Background(), "cluster", "describe", "--endpoint", s.addr, "-o", "json")
	if status != 0 || !strings.Contains(stdout, `"role": "COORDINATOR_ROLE_LEADER"`) {
		t.Errorf("cluster describe -o json: status %d, stdout %q", status, stdout)
	}
}

func TestEndpointParsing(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9000":           "127.0.0.1:9000",
		"localhost":                "localhost:" + defaultPort,
		"http://127.0.0.1:9000":    "127.0.0.1:9000",
		"https://coord-1:9000/x/y": "coord-1:9000",
		"grpc://coord-1":           "coord-1:" + defaultPort,
		"::1":                      "[::1]:" + defaultPort,
		"[::1]":                    "[::1]:" + defaultPort,
		"[::1]:9000":               "[::1]:9000",
	} {
		if got, err := normalizeEndpoint(in); err != nil || got != want {
			t.Errorf("normalizeEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a:b:c", "http://"} {
		if got, err := normalizeEndpoint(in); err == nil {
			t.Errorf("normalizeEndpoint(%q) = %q; want an error", in, got)
		}
	}
}

// An --endpoint that is not a coordinator's gRPC address is named as the
// likely mistake: the metrics port, or a gRPC server of something else.
func TestEndpointMistakes(t *testing.T) {
	s := startServe(t)
	_, stderr, status := regroupCLI(context.Background(), "groups", "list", "--endpoint", s.metricsAddr)
	if status == 0 || !strings.Contains(stderr, "does not speak gRPC") || !strings.Contains(stderr, "metrics address") {
		t.Errorf("groups list against the metrics port: status %d, stderr %q", status, stderr)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := grpc.NewServer() // serves nothing of Regroup's
	go func() { _ = other.Serve(lis) }()
	defer other.Stop()
	_, stderr, status = regroupCLI(context.Background(), "groups", "list", "--endpoint", lis.Addr().String())
	if status == 0 || !strings.Contains(stderr, "does not serve Regroup's Admin API") {
		t.Errorf("groups list against a gRPC server of something else: status %d, stderr %q", status, stderr)
	}
}

func TestVersion(t *testing.T) {
	stdout, _, status := regroupCLI(context.Background(), "version")
	if status != 0 || !strings.HasPrefix(stdout, "regroup ") || !strings.Contains(stdout, runtime.Version()) {
		t.Errorf("regroup version: status %d, %q; want the module version and the Go version", status, stdout)
	}
}

// A topic a member subscribes to that is not in the registry is named in
// groups describe, and counted in the metrics.
func TestDescribeNamesUnknownTopics(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	startMember(t, conn, "g", "a", "orders", "payments")
	waitStable(t, admin, "g", "a")
	c := cli{t: t, endpoint: s.addr}
	contains(t, "groups describe", c.ok("groups", "describe", "g"), `^Topics:\s+payments: not in the registry, orders \(2\)$`)
	resp, err := http.Get("http://" + s.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `regroup_group_unknown_topics{group="g"} 1`) {
		t.Errorf("the metrics do not count the unknown topic:\n%s", body)
	}
}

// -o wide shows what a table shortens: whole member ids.
func TestWideOutput(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)
	if _, err := admin.PutTopic(context.Background(), &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	startMember(t, conn, "g", "a", "orders")
	d := waitStable(t, admin, "g", "a")
	id := d.GetMembers()[0].GetMemberId()
	c := cli{t: t, endpoint: s.addr}
	row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+a\s+127\.0\.0\.1`)
	if out := c.ok("groups", "describe", "g"); row.MatchString(out) {
		t.Errorf("the members table shows the member id %s whole; it abbreviates minted ids:\n%s", id, out)
	}
	if out := c.ok("groups", "describe", "g", "-o", "wide"); !row.MatchString(out) {
		t.Errorf("-o wide does not show the member id %s whole:\n%s", id, out)
	}
}

// A minted member id too long for its column keeps its prefix (the
// instance id) and the start of its UUID; other ids lose their middle.
func TestMemberCells(t *testing.T) {
	f := cells{}
	for _, tc := range []struct{ id, want string }{
		{"orders-0-17b12962-4eed-4a1d-ad60-c4e16f868456", "orders-0-17b129…"},
		{"a-17b12962-4eed-4a1d-ad60-c4e16f868456", "a-17b12962…"},
		{"a-member-id-chosen-by-someone-else", "a-membe…one-else"},
	} {
		if got := f.member(tc.id, memberWidth); got != tc.want {
			t.Errorf("member(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
	if got := (cells{wide: true}).member("orders-0-17b12962-4eed-4a1d-ad60-c4e16f868456", memberWidth); got != "orders-0-17b12962-4eed-4a1d-ad60-c4e16f868456" {
		t.Errorf("-o wide: member shows %q, want the id whole", got)
	}
}

// TestWatchShowsPartitionsLost: a rebalance during which members reported
// partitions they declared lost says so in `groups watch`; one without
// says nothing of it.
func TestWatchShowsPartitionsLost(t *testing.T) {
	done := func(lost int32) string {
		return describeEvent(&regroupv1.WatchGroupResponse{Event: &regroupv1.WatchGroupResponse_RebalanceDone{
			RebalanceDone: &regroupv1.RebalanceDone{Generation: 4, Members: 3, PartitionsLost: lost},
		}})
	}
	if got := done(7); !strings.HasSuffix(got, ", 0 unowned, 7 lost by members") {
		t.Errorf("with 7 partitions lost: %q", got)
	}
	if got := done(0); strings.Contains(got, "lost") {
		t.Errorf("with none lost: %q", got)
	}
}

// groups describe and list show a next-generation group's epochs and each
// member's assignment against its target, in the middle of a
// reconciliation: the first member still has to give up what the second's
// target has.
func TestDescribeNextGenerationGroup(t *testing.T) {
	s := startServe(t)
	conn := dial(t, s.addr)
	admin := regroupv1.NewAdminClient(conn)
	ctx := context.Background()
	if _, err := admin.PutTopic(ctx, &regroupv1.PutTopicRequest{Topic: &regroupv1.Topic{Name: "orders", Partitions: 4}}); err != nil {
		t.Fatal(err)
	}
	client := regroupv1.NewCoordinatorClient(conn)
	join := func() *regroupv1.ReconcileResponse {
		resp, err := client.Reconcile(ctx, &regroupv1.ReconcileRequest{GroupId: "n", SessionTimeoutMs: 30_000, RebalanceTimeoutMs: 30_000, SubscribedTopics: []string{"orders"}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := join()
	if n, _ := summarize(&regroupv1.Assignment{Partitions: first.GetAssignment().GetPartitions()}); n != 4 {
		t.Fatalf("the first member got %v, want all 4 partitions", first.GetAssignment())
	}
	join()
	// The second join is assigned within the assignment interval.
	waitfor.Until(t, "group n reconciling its second target", func() error {
		d, err := admin.DescribeGroup(ctx, &regroupv1.DescribeGroupRequest{GroupId: "n"})
		if err != nil {
			return err
		}
		if d.GetState() != regroupv1.GroupState_GROUP_STATE_COMPLETING_REBALANCE {
			return fmt.Errorf("group is %v", d.GetState())
		}
		return nil
	})
	c := cli{t: t, endpoint: s.addr}
	out := c.ok("groups", "describe", "n")
	contains(t, "groups describe", out,
		`^Group protocol:\s+next \(Reconcile\)$`, `^Epochs:\s+group 2, target assignment 2$`, `^Assignor:\s+cooperative-sticky$`,
		`^MEMBER\s+INSTANCE\s+SESSION\s+EPOCH\s+PARTITIONS\s+TARGET$`)
	// Members are listed by id: either may come first.
	contains(t, "groups describe", out, `\s1\s+2 orders:\S+ \(revoking 2\)\s+2 orders:\S+$`)
	contains(t, "groups describe", out, `\s2\s+0\s+2 orders:\S+$`)
	contains(t, "groups list", c.ok("groups", "list"), `^n\s+CompletingRebalance\s+2\s+2\s+next/cooperative-…$`)
	d := c.json("groups", "describe", "n")
	if epochs := []any{field(d, "members", 0, "member_epoch"), field(d, "members", 1, "member_epoch")}; field(d, "group_protocol") != "next" ||
		!(epochs[0] == 1.0 && epochs[1] == 2.0 || epochs[0] == 2.0 && epochs[1] == 1.0) {
		t.Errorf("groups describe -o json: %v, want group_protocol next and members at epochs 1 and 2", d)
	}
}

// A single coordinator of a cluster of several shards on its embedded etcd
// leads every shard, and cluster describe shows them.
func TestClusterDescribeShards(t *testing.T) {
	s := startServe(t, "--store", "etcd", "--data-dir", t.TempDir(), "--shards", "4", "--lease-ttl", "2s",
		"--etcd-client-port", fmt.Sprint(freePort(t)), "--etcd-peer-port", fmt.Sprint(freePort(t)))
	var stdout string
	waitfor.Until(t, "cluster describe shows every shard led here", func() error {
		out, stderr, status := regroupCLI(context.Background(), "cluster", "describe", "--endpoint", s.addr)
		stdout = out
		if status != 0 || !strings.Contains(out, "Shards:        4, 4 led here") {
			return fmt.Errorf("status %d, stdout %q, stderr %q", status, out, stderr)
		}
		return nil
	})
	if strings.Contains(stdout, "Leader:") || !strings.Contains(stdout, "SHARD  LEADER") {
		t.Errorf("cluster describe of a sharded cluster: %q; want the shards' table, no single leader", stdout)
	}
	out, _, status := regroupCLI(context.Background(), "cluster", "describe", "--endpoint", s.addr, "-o", "json")
	if status != 0 || strings.Count(out, `"leader_address": "`+s.addr+`"`) < 5 {
		t.Errorf("cluster describe -o json: status %d, stdout %q; want 4 shards (and shard 0 as the leader) led by %s", status, out, s.addr)
	}
	if _, stderr, status := regroupCLI(context.Background(), "serve", "--store", "memory", "--shards", "2", "--listen", "127.0.0.1:0", "--metrics-addr", ""); status == 0 || !strings.Contains(stderr, "--shards 2 needs --store etcd") {
		t.Errorf("serve --store memory --shards 2: status %d, stderr %q; want refused", status, stderr)
	}
}
