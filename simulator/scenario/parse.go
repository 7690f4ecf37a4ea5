package scenario

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/member/fsm"
)

// usage is every command's synopsis, for error messages.
var usage = map[string]string{
	"seed":               "seed N",
	"coordinator":        "coordinator [initial-delay=D] [min-session=D] [max-session=D] [max-rebalance=D] [max-size=N] [new-member-timeout=D] [empty-retention=D] [history=N] [lease-ttl=D] [election=D] [failover-gap=D] [write-latency=D|D..D] [coordinators=N] [shards=N]",
	"network":            "network [delay=D|D..D] [loss=P]",
	"topic":              "topic NAME partitions=N",
	"group":              "group NAME " + memberUsage,
	"run":                "run until=D",
	"expect":             "expect METRIC{=,<=,>=,<,>}VALUE [since=D] [cause=KIND] [protocol=classic|next]",
	"at":                 "at TIME COMMAND ARGS... [repeat=N every=D]",
	"join":               "join MEMBERS [group=G] " + memberUsage + " [stagger=D]",
	"leave":              "leave MEMBERS [stagger=D]",
	"crash":              "crash MEMBERS [stagger=D]",
	"restart":            "restart MEMBERS [down=D] [crash] [new-instance] [stagger=D]",
	"pause":              "pause MEMBERS for=D [stagger=D]",
	"partition":          "partition MEMBERS [for=D] [stagger=D]",
	"heal":               "heal MEMBERS [stagger=D]",
	"slow":               "slow MEMBERS [on-assigned=D|D..D] [on-revoked=D|D..D] [on-lost=D|D..D] [stagger=D]",
	"failover":           "failover [gap=D] [coordinator=NAME]",
	"store":              "store fail|lose-acks|slow for=D [latency=D|D..D]",
	"pause-coordinator":  "pause-coordinator for=D [coordinator=NAME]",
	"add-coordinator":    "add-coordinator",
	"remove-coordinator": "remove-coordinator NAME",
	"churn":              "churn every=D for=D [kinds=restart,crash,pause] [down=D] [pause=D|D..D] [group=G]",
}

const memberUsage = "[topics=T,...] [assignors=A,...] [static|dynamic] [leave-on-stop] [session=D] [rebalance=D] [heartbeat=D] [margin=D] [backoff=D..D] [on-assigned=D|D..D] [on-revoked=D|D..D] [on-lost=D|D..D] [assign-time=D|D..D] [drift=P] [heartbeats=held|classic] [protocol=classic|next]"

// timedCommands are the commands that follow "at TIME".
var timedCommands = []string{"join", "leave", "crash", "restart", "pause", "partition", "heal", "slow", "failover", "store", "pause-coordinator", "add-coordinator", "remove-coordinator", "topic", "network", "churn"}

// setupCommands are the commands that stand alone on a line.
var setupCommands = []string{"seed", "coordinator", "network", "topic", "group", "run", "expect", "at"}

// lineError is an error at a line of the scenario.
type lineError struct {
	name string
	line int
	msg  string
}

func (e *lineError) Error() string {
	if e.name == "" {
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return fmt.Sprintf("%s: line %d: %s", e.name, e.line, e.msg)
}

// args are one command's arguments: positionals, key=value pairs and bare
// flags. Every argument must be consumed by the command.
type args struct {
	cmd   string
	pos   []string
	kv    map[string]string
	keys  []string // kv's keys in order of appearance
	flags []string
	used  map[string]bool
}

func splitArgs(cmd string, fields []string, flagNames ...string) (*args, error) {
	a := &args{cmd: cmd, kv: map[string]string{}, used: map[string]bool{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			if k == "" {
				return nil, fmt.Errorf("%s: argument %q has no name before '='", cmd, f)
			}
			if _, dup := a.kv[k]; dup {
				return nil, fmt.Errorf("%s: argument %s given twice", cmd, k)
			}
			a.kv[k] = v
			a.keys = append(a.keys, k)
			continue
		}
		if slices.Contains(flagNames, f) {
			a.flags = append(a.flags, f)
			continue
		}
		a.pos = append(a.pos, f)
	}
	return a, nil
}

func (a *args) get(key string) (string, bool) {
	v, ok := a.kv[key]
	if ok {
		a.used[key] = true
	}
	return v, ok
}

func (a *args) flag(name string) bool {
	if slices.Contains(a.flags, name) {
		a.used["flag:"+name] = true
		return true
	}
	return false
}

// positional returns exactly n positional arguments, named in what.
func (a *args) positional(n int, what string) ([]string, error) {
	if len(a.pos) < n {
		return nil, fmt.Errorf("%s: missing %s; usage: %s", a.cmd, what, usage[a.cmd])
	}
	if len(a.pos) > n {
		return nil, fmt.Errorf("%s: unexpected argument %q; usage: %s", a.cmd, a.pos[n], usage[a.cmd])
	}
	return a.pos, nil
}

// finish reports the first argument no one consumed.
func (a *args) finish() error {
	for _, k := range a.keys {
		if !a.used[k] {
			return fmt.Errorf("%s: unknown argument %q; usage: %s", a.cmd, k, usage[a.cmd])
		}
	}
	for _, f := range a.flags {
		if !a.used["flag:"+f] {
			return fmt.Errorf("%s: unknown argument %q; usage: %s", a.cmd, f, usage[a.cmd])
		}
	}
	return nil
}

func (a *args) duration(key string, dst *time.Duration) error {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return fmt.Errorf("%s: %s=%s: %w", a.cmd, key, v, err)
	}
	*dst = d
	return nil
}

func (a *args) dist(key string, dst *Dist) error {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	d, err := parseDist(v)
	if err != nil {
		return fmt.Errorf("%s: %s=%s: %w", a.cmd, key, v, err)
	}
	*dst = d
	return nil
}

func (a *args) integer(key string, lo, hi int64, dst *int64) error {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("%s: %s=%s: want a whole number from %d to %d", a.cmd, key, v, lo, hi)
	}
	*dst = n
	return nil
}

func (a *args) fraction(key string, dst *float64) error {
	v, ok := a.get(key)
	if !ok {
		return nil
	}
	f, err := parseFraction(v)
	if err != nil {
		return fmt.Errorf("%s: %s=%s: %w", a.cmd, key, v, err)
	}
	*dst = f
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 250ms, 10s or 1m30s")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

func parseDist(s string) (Dist, error) {
	lo, hi, isRange := strings.Cut(s, "..")
	a, err := parseDuration(lo)
	if err != nil {
		return Dist{}, err
	}
	if !isRange {
		return Dist{Min: a, Max: a}, nil
	}
	b, err := parseDuration(hi)
	if err != nil {
		return Dist{}, err
	}
	if b < a {
		return Dist{}, fmt.Errorf("the range %v..%v runs backwards; put the smaller value first", a, b)
	}
	return Dist{Min: a, Max: b}, nil
}

// parseFraction reads a probability or rate: 0.01 or 1%.
func parseFraction(s string) (float64, error) {
	scale := 1.0
	if t, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = t, 0.01
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, errors.New("want a fraction such as 0.01 or a percentage such as 1%")
	}
	f *= scale
	if f < 0 || f >= 1 {
		return 0, errors.New("must be at least 0 and below 1 (100%)")
	}
	return f, nil
}

// expandMembers expands a member list: names and ranges such as m1..m50,
// separated by commas.
func expandMembers(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			return nil, fmt.Errorf("member list %q has an empty entry", s)
		}
		lo, hi, isRange := strings.Cut(part, "..")
		if !isRange {
			if err := checkName(part); err != nil {
				return nil, err
			}
			out = append(out, part)
			continue
		}
		p1, n1, ok1 := splitNumber(lo)
		p2, n2, ok2 := splitNumber(hi)
		if !ok1 || !ok2 || p1 != p2 || n2 < n1 {
			return nil, fmt.Errorf("member range %q: want PREFIX<a>..PREFIX<b> with the same prefix and a <= b, e.g. m1..m50", part)
		}
		if n2-n1 >= 100000 {
			return nil, fmt.Errorf("member range %q has more than 100000 members", part)
		}
		for n := n1; n <= n2; n++ {
			out = append(out, p1+strconv.Itoa(n))
		}
	}
	seen := map[string]bool{}
	for _, m := range out {
		if seen[m] {
			return nil, fmt.Errorf("member %s is listed twice in %q", m, s)
		}
		seen[m] = true
	}
	return out, nil
}

func splitNumber(s string) (string, int, bool) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || i == 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(s[i:])
	if err != nil {
		return "", 0, false
	}
	return s[:i], n, true
}

func checkName(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("name %q is longer than 64 bytes", s)
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("name %q: use letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

// pendingConfig is a group's or join's member arguments, applied once every
// line has been read (so that defaults such as "every topic" are known).
type pendingConfig struct {
	line int
	args *args
}

type pendingJoin struct {
	action int // index in parser.actions
	group  string
	cfg    pendingConfig
}

type parser struct {
	name     string
	sc       *Scenario
	groups   map[string]*pendingConfig
	order    []string // group names in declaration order
	joins    []pendingJoin
	actions  []Action
	topics   map[string]bool
	sawRun   bool
	sawSeed  bool
	sawCoord bool
	sawNet   bool
}

// Parse reads a scenario. name (the file's name) prefixes error messages,
// which give the line: "rolling.sim: line 7: join: unknown argument ...".
func Parse(name, text string) (*Scenario, error) {
	p := &parser{
		name: name,
		sc: &Scenario{
			Name: name,
			Seed: 1,
			Coordinator: Coordinator{
				Group:        group.DefaultConfig(),
				LeaseTTL:     5 * time.Second,
				Election:     500 * time.Millisecond,
				Coordinators: 1,
				Shards:       1,
			},
			Network: Network{Delay: Dist{Min: time.Millisecond, Max: 5 * time.Millisecond}},
		},
		groups: map[string]*pendingConfig{},
		topics: map[string]bool{},
	}
	for i, raw := range strings.Split(text, "\n") {
		line := raw
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if err := p.line(i+1, fields); err != nil {
			return nil, &lineError{name: name, line: i + 1, msg: err.Error()}
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.sc, nil
}

func (p *parser) line(n int, f []string) error {
	switch f[0] {
	case "seed":
		if p.sawSeed {
			return errors.New("seed: given twice")
		}
		p.sawSeed = true
		if len(f) != 2 {
			return fmt.Errorf("seed: usage: %s", usage["seed"])
		}
		s, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("seed: %q is not a whole number from 0 to %d", f[1], uint64(math.MaxUint64))
		}
		p.sc.Seed = s
		return nil
	case "coordinator":
		if p.sawCoord {
			return errors.New("coordinator: given twice; put every setting on one line")
		}
		p.sawCoord = true
		return p.coordinator(f[1:])
	case "network":
		if p.sawNet {
			return errors.New("network: given twice; change the network later with 'at TIME network ...'")
		}
		p.sawNet = true
		a, err := splitArgs("network", f[1:])
		if err != nil {
			return err
		}
		if _, err := a.positional(0, ""); err != nil {
			return err
		}
		return p.network(a, &p.sc.Network)
	case "topic":
		a, err := splitArgs("topic", f[1:])
		if err != nil {
			return err
		}
		t, err := p.topic(a)
		if err != nil {
			return err
		}
		if p.topics[t.Name] {
			return fmt.Errorf("topic: %s is declared twice; change it later with 'at TIME topic %s partitions=N'", t.Name, t.Name)
		}
		p.topics[t.Name] = true
		p.sc.Topics = append(p.sc.Topics, t)
		return nil
	case "group":
		a, err := splitArgs("group", f[1:], memberFlags...)
		if err != nil {
			return err
		}
		pos, err := a.positional(1, "the group's name")
		if err != nil {
			return err
		}
		if err := checkName(pos[0]); err != nil {
			return fmt.Errorf("group: %w", err)
		}
		if p.groups[pos[0]] != nil {
			return fmt.Errorf("group: %s is declared twice", pos[0])
		}
		p.groups[pos[0]] = &pendingConfig{line: n, args: a}
		p.order = append(p.order, pos[0])
		return nil
	case "run":
		if p.sawRun {
			return errors.New("run: given twice")
		}
		p.sawRun = true
		a, err := splitArgs("run", f[1:])
		if err != nil {
			return err
		}
		if _, err := a.positional(0, ""); err != nil {
			return err
		}
		if err := a.duration("until", &p.sc.Until); err != nil {
			return err
		}
		if p.sc.Until == 0 {
			return fmt.Errorf("run: give a positive until=D; usage: %s", usage["run"])
		}
		return a.finish()
	case "expect":
		return p.expect(n, f)
	case "at":
		return p.at(n, f)
	}
	return fmt.Errorf("unknown command %q; commands: %s (and, after 'at TIME': %s)", f[0], strings.Join(setupCommands, ", "), strings.Join(timedCommands, ", "))
}

func (p *parser) coordinator(f []string) error {
	a, err := splitArgs("coordinator", f)
	if err != nil {
		return err
	}
	if _, err := a.positional(0, ""); err != nil {
		return err
	}
	c := &p.sc.Coordinator
	for key, dst := range map[string]*time.Duration{
		"initial-delay":      &c.Group.InitialRebalanceDelay,
		"min-session":        &c.Group.MinSessionTimeout,
		"max-session":        &c.Group.MaxSessionTimeout,
		"max-rebalance":      &c.Group.MaxRebalanceTimeout,
		"new-member-timeout": &c.Group.NewMemberJoinTimeout,
		"empty-retention":    &c.Group.EmptyRetention,
		"failover-gap":       &c.FailoverGap,
		"lease-ttl":          &c.LeaseTTL,
		"election":           &c.Election,
	} {
		if err := a.duration(key, dst); err != nil {
			return err
		}
	}
	size, hist := int64(c.Group.MaxSize), int64(c.Group.HistoryLimit)
	if err := a.integer("max-size", 0, math.MaxInt32, &size); err != nil {
		return err
	}
	if err := a.integer("history", 1, 100000, &hist); err != nil {
		return err
	}
	c.Group.MaxSize, c.Group.HistoryLimit = int(size), int(hist)
	coords, shards := int64(c.Coordinators), int64(c.Shards)
	if err := a.integer("coordinators", 1, 100, &coords); err != nil {
		return err
	}
	if err := a.integer("shards", 1, 4096, &shards); err != nil {
		return err
	}
	c.Coordinators, c.Shards = int(coords), int(shards)
	if err := a.dist("write-latency", &c.WriteLatency); err != nil {
		return err
	}
	if c.LeaseTTL <= 0 || c.Election < 0 {
		return fmt.Errorf("coordinator: lease-ttl must be positive and election not negative; usage: %s", usage["coordinator"])
	}
	if err := c.Group.Validate(); err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	return a.finish()
}

func (p *parser) network(a *args, n *Network) error {
	if err := a.dist("delay", &n.Delay); err != nil {
		return err
	}
	if err := a.fraction("loss", &n.Loss); err != nil {
		return err
	}
	return a.finish()
}

func (p *parser) topic(a *args) (Topic, error) {
	pos, err := a.positional(1, "the topic's name")
	if err != nil {
		return Topic{}, err
	}
	if err := checkName(pos[0]); err != nil {
		return Topic{}, fmt.Errorf("topic: %w", err)
	}
	var n int64
	if _, ok := a.kv["partitions"]; !ok {
		return Topic{}, fmt.Errorf("topic: missing partitions=N; usage: %s", usage["topic"])
	}
	if err := a.integer("partitions", 1, 1<<20, &n); err != nil {
		return Topic{}, err
	}
	return Topic{Name: pos[0], Partitions: int32(n)}, a.finish()
}

// memberFlags are the bare words a member configuration accepts.
var memberFlags = []string{"static", "dynamic", "leave-on-stop"}

// applyMember applies a group's or a join's member arguments to c.
func applyMember(a *args, c *MemberConfig) error {
	if v, ok := a.get("topics"); ok {
		c.Topics = strings.Split(v, ",")
		for _, t := range c.Topics {
			if err := checkName(t); err != nil || t == "" {
				return fmt.Errorf("%s: topics=%s: give topic names separated by commas", a.cmd, v)
			}
		}
	}
	if v, ok := a.get("assignors"); ok {
		c.Assignors = strings.Split(v, ",")
		for _, n := range c.Assignors {
			if _, err := assignor.Lookup(n); err != nil {
				return fmt.Errorf("%s: %w", a.cmd, err)
			}
		}
	}
	static, dynamic := a.flag("static"), a.flag("dynamic")
	if static && dynamic {
		return fmt.Errorf("%s: a member is either static or dynamic, not both", a.cmd)
	}
	if static {
		c.Static = true
	}
	if dynamic {
		c.Static = false
	}
	if a.flag("leave-on-stop") {
		c.LeaveOnStop = true
	}
	if v, ok := a.get("protocol"); ok {
		p, err := fsm.ParseProtocol(v)
		if err != nil || v == "" {
			return fmt.Errorf("%s: protocol=%s: want classic (JoinGroup, SyncGroup and heartbeats; the default) or next (the next-generation protocol: Reconcile, the coordinator assigns)", a.cmd, v)
		}
		c.Protocol = p
	}
	if v, ok := a.get("heartbeats"); ok {
		switch v {
		case "held":
			c.ClassicHeartbeats = false
		case "classic":
			c.ClassicHeartbeats = true
		default:
			return fmt.Errorf("%s: heartbeats=%s: want held (Regroup's) or classic (Kafka's classic client: none held)", a.cmd, v)
		}
	}
	for key, dst := range map[string]*time.Duration{
		"session": &c.SessionTimeout, "rebalance": &c.RebalanceTimeout,
		"heartbeat": &c.HeartbeatInterval, "margin": &c.Margin,
	} {
		if err := a.duration(key, dst); err != nil {
			return err
		}
	}
	var backoff Dist
	if err := a.dist("backoff", &backoff); err != nil {
		return err
	}
	if backoff != (Dist{}) {
		c.MinBackoff, c.MaxBackoff = backoff.Min, backoff.Max
	}
	for key, dst := range map[string]*Dist{
		"on-assigned": &c.Callbacks.OnAssigned, "on-revoked": &c.Callbacks.OnRevoked, "on-lost": &c.Callbacks.OnLost,
		"assign-time": &c.AssignTime,
	} {
		if err := a.dist(key, dst); err != nil {
			return err
		}
	}
	if err := a.fraction("drift", &c.Drift); err != nil {
		return err
	}
	return nil
}

// defaultMember is a member's configuration before any argument.
func defaultMember() MemberConfig {
	return MemberConfig{
		Assignors:        []string{"cooperative-sticky"},
		SessionTimeout:   fsm.DefaultSessionTimeout,
		RebalanceTimeout: fsm.DefaultRebalanceTimeout,
		Callbacks:        Callbacks{OnRevoked: Dist{Min: 200 * time.Millisecond, Max: 200 * time.Millisecond}},
	}
}

// complete fills in the defaults that depend on other settings, from
// fsm.Config.WithDefaults as the member library does, and checks the result
// with the member state machine's own validation.
func complete(c *MemberConfig, group string) error {
	cfg, err := c.Machine(group)
	if err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	// The session and rebalance timeouts' defaults are defaultMember's (the
	// same constants): one set to 0 by an argument stays 0, for the state
	// machine to refuse.
	cfg.SessionTimeout, cfg.RebalanceTimeout = c.SessionTimeout, c.RebalanceTimeout
	c.HeartbeatInterval, c.Margin, c.MinBackoff, c.MaxBackoff = cfg.HeartbeatInterval, cfg.Margin, cfg.MinBackoff, cfg.MaxBackoff
	if c.LeaveOnStop && !c.Static {
		return errors.New("leave-on-stop applies to static members; dynamic members always leave")
	}
	_, err = fsm.NewMachine(cfg)
	return err
}

// Machine returns the member state machine's configuration for c in group,
// as the member library builds it: the assignors looked up, or under
// fsm.Next the one c names as the group's server-side assignor. What
// differs per process (InstanceID, ClientID, Jitter) is left to the caller,
// and the result is not validated (fsm.NewMachine does that).
func (c MemberConfig) Machine(group string) (fsm.Config, error) {
	cfg := fsm.Config{
		GroupID: group, Topics: c.Topics, Protocol: c.Protocol,
		SessionTimeout: c.SessionTimeout, RebalanceTimeout: c.RebalanceTimeout, HeartbeatInterval: c.HeartbeatInterval,
		Margin: c.Margin, LeaveOnStop: c.LeaveOnStop, MinBackoff: c.MinBackoff, MaxBackoff: c.MaxBackoff,
		ClassicHeartbeats: c.ClassicHeartbeats,
	}
	if c.Protocol == fsm.Next && len(c.Assignors) != 1 {
		return fsm.Config{}, fmt.Errorf("protocol=next: the coordinator assigns with the group's server-side assignor: name one (assignors=NAME), not %d", len(c.Assignors))
	}
	for _, n := range c.Assignors {
		a, err := assignor.Lookup(n)
		if err != nil {
			return fsm.Config{}, err
		}
		if c.Protocol == fsm.Next {
			cfg.ServerAssignor = n
			break
		}
		cfg.Assignors = append(cfg.Assignors, a)
	}
	return cfg, nil
}

func (p *parser) expect(n int, f []string) error {
	if len(f) < 2 {
		return fmt.Errorf("expect: usage: %s", usage["expect"])
	}
	e := Expect{Line: n, Text: strings.Join(f[1:], " ")}
	cmp := f[1]
	i := strings.IndexAny(cmp, "<>=")
	if i <= 0 {
		return fmt.Errorf("expect: %q: want METRIC, a comparison and a value with no spaces, e.g. rebalances<=2; usage: %s", cmp, usage["expect"])
	}
	name, rest := cmp[:i], cmp[i:]
	for _, op := range []Op{OpLe, OpGe, OpEq, OpLt, OpGt} {
		if v, ok := strings.CutPrefix(rest, string(op)); ok {
			e.Op, rest = op, v
			break
		}
	}
	if name == "stable-within" {
		if e.Op != OpEq {
			return errors.New("expect: write stable-within=D (or stable<=D)")
		}
		name, e.Op = string(MetricStable), OpLe
	}
	e.Metric = Metric(name)
	switch e.Metric {
	case MetricStable, MetricRebalanceMedian, MetricRebalanceMax:
		d, err := parseDuration(rest)
		if err != nil {
			return fmt.Errorf("expect: %s: %q: %w", name, rest, err)
		}
		e.Value = d.Seconds()
	case MetricRebalances, MetricGeneration, MetricMoved, MetricRevoked, MetricLost, MetricMessages, MetricViolations, MetricFatal, MetricHandoffs, MetricFailovers:
		v, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return fmt.Errorf("expect: %s: %q is not a whole number", name, rest)
		}
		e.Value = float64(v)
	case MetricUnowned, MetricNotProcessing:
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil || v < 0 {
			return fmt.Errorf("expect: %s: %q is not a number of partition-seconds", name, rest)
		}
		e.Value = v
	default:
		return fmt.Errorf("expect: unknown metric %q; metrics: %s", name, strings.Join(metricNames(), ", "))
	}
	a, err := splitArgs("expect", f[2:])
	if err != nil {
		return err
	}
	if _, err := a.positional(0, ""); err != nil {
		return err
	}
	if v, ok := a.get("cause"); ok {
		if e.Metric != MetricRebalances {
			return errors.New("expect: cause= applies to rebalances only")
		}
		if !slices.Contains(causes, group.Cause(v)) {
			return fmt.Errorf("expect: unknown cause %q; causes: %s", v, causeList())
		}
		e.Cause = v
	}
	if v, ok := a.get("protocol"); ok {
		pr, err := fsm.ParseProtocol(v)
		if err != nil || v == "" {
			return fmt.Errorf("expect: protocol=%s: want classic or next (the expectation holds only when every member speaks it)", v)
		}
		e.Protocol = pr.String()
	}
	if _, ok := a.kv["since"]; ok {
		switch e.Metric {
		case MetricRebalances, MetricMoved, MetricRevoked, MetricLost, MetricUnowned, MetricNotProcessing:
		default:
			return errors.New("expect: since= applies to rebalances, moved, revoked, lost, unowned and not-processing")
		}
		if err := a.duration("since", &e.Since); err != nil {
			return err
		}
	}
	if err := a.finish(); err != nil {
		return err
	}
	p.sc.Expects = append(p.sc.Expects, e)
	return nil
}

func metricNames() []string {
	return []string{
		string(MetricRebalances), string(MetricGeneration), string(MetricMoved), string(MetricRevoked),
		string(MetricLost), string(MetricUnowned), string(MetricNotProcessing), string(MetricRebalanceMedian), string(MetricRebalanceMax),
		string(MetricStable) + " (or stable-within)", string(MetricMessages), string(MetricViolations), string(MetricFatal),
		string(MetricHandoffs), string(MetricFailovers),
	}
}

var causes = []group.Cause{
	group.CauseMemberJoined, group.CauseMemberLeft, group.CauseMemberRemoved, group.CauseMemberExpired,
	group.CauseSubscriptionChanged, group.CauseLeaderRejoined, group.CauseSyncTimeout, group.CauseTopicChanged,
	group.CauseAssignmentRefused, group.CauseStaticReplaced, group.CauseFailover, group.CauseGroupTooLarge,
}

func causeList() string {
	names := make([]string, len(causes))
	for i, c := range causes {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}

// at parses "at TIME COMMAND ARGS...".
func (p *parser) at(n int, f []string) error {
	if len(f) < 3 {
		return fmt.Errorf("at: usage: %s", usage["at"])
	}
	at, err := parseDuration(f[1])
	if err != nil {
		return fmt.Errorf("at: time %q: %w", f[1], err)
	}
	cmd := f[2]
	if !slices.Contains(timedCommands, cmd) {
		return fmt.Errorf("at: unknown command %q; commands after 'at TIME': %s", cmd, strings.Join(timedCommands, ", "))
	}
	flags := map[string][]string{"join": memberFlags, "restart": {"crash", "new-instance"}}[cmd]
	a, err := splitArgs(cmd, f[3:], flags...)
	if err != nil {
		return err
	}
	var repeat int64 = 1
	var every time.Duration
	if cmd != "churn" { // churn repeats by itself, with its own every=
		if err := a.integer("repeat", 1, 100000, &repeat); err != nil {
			return err
		}
		if err := a.duration("every", &every); err != nil {
			return err
		}
		if repeat > 1 && every <= 0 {
			return fmt.Errorf("%s: repeat=%d needs every=D, the time between repetitions", cmd, repeat)
		}
		if repeat == 1 && every > 0 {
			return fmt.Errorf("%s: every= needs repeat=N (use stagger=D to space the members of a list)", cmd)
		}
	}
	cmds, err := p.timed(n, a)
	if err != nil {
		return err
	}
	if err := a.finish(); err != nil {
		return err
	}
	for r := range repeat {
		for _, c := range cmds {
			act := Action{Line: n, At: at + time.Duration(r)*every + c.offset, Do: c.cmd}
			if j, ok := c.cmd.(Join); ok {
				p.joins = append(p.joins, pendingJoin{action: len(p.actions), group: j.Group, cfg: pendingConfig{line: n, args: c.member}})
			}
			p.actions = append(p.actions, act)
		}
	}
	return nil
}

type timedCmd struct {
	offset time.Duration
	cmd    Command
	member *args // a join's member arguments
}

// timed parses one timed command into one command per member.
func (p *parser) timed(n int, a *args) ([]timedCmd, error) {
	switch a.cmd {
	case "failover":
		if _, err := a.positional(0, ""); err != nil {
			return nil, err
		}
		var f Failover
		if err := a.duration("gap", &f.Gap); err != nil {
			return nil, err
		}
		f.Coordinator, _ = a.get("coordinator")
		return []timedCmd{{cmd: f}}, a.finish()
	case "store":
		pos, err := a.positional(1, "the fault (fail, lose-acks or slow)")
		if err != nil {
			return nil, err
		}
		f := StoreFault{Kind: StoreFaultKind(pos[0])}
		switch f.Kind {
		case StoreFail, StoreLoseAcks, StoreSlow:
		default:
			return nil, fmt.Errorf("store: unknown fault %q; usage: %s", pos[0], usage["store"])
		}
		if err := a.duration("for", &f.For); err != nil {
			return nil, err
		}
		if err := a.dist("latency", &f.Latency); err != nil {
			return nil, err
		}
		if f.For <= 0 || (f.Kind == StoreSlow) != (f.Latency.Max > 0) {
			return nil, fmt.Errorf("store: give for=D, and latency=D for slow only; usage: %s", usage["store"])
		}
		return []timedCmd{{cmd: f}}, a.finish()
	case "pause-coordinator":
		if _, err := a.positional(0, ""); err != nil {
			return nil, err
		}
		var c PauseCoordinator
		if err := a.duration("for", &c.For); err != nil {
			return nil, err
		}
		if c.For <= 0 {
			return nil, fmt.Errorf("pause-coordinator: give for=D; usage: %s", usage["pause-coordinator"])
		}
		c.Coordinator, _ = a.get("coordinator")
		return []timedCmd{{cmd: c}}, a.finish()
	case "add-coordinator":
		if _, err := a.positional(0, ""); err != nil {
			return nil, err
		}
		return []timedCmd{{cmd: AddCoordinator{}}}, a.finish()
	case "remove-coordinator":
		pos, err := a.positional(1, "the coordinator to remove (c1, c2, ...)")
		if err != nil {
			return nil, err
		}
		return []timedCmd{{cmd: RemoveCoordinator{Name: pos[0]}}}, a.finish()
	case "topic":
		t, err := p.topic(a)
		if err != nil {
			return nil, err
		}
		return []timedCmd{{cmd: SetTopic{Topic: t}}}, a.finish()
	case "network":
		if _, err := a.positional(0, ""); err != nil {
			return nil, err
		}
		var nw SetNetwork
		if _, ok := a.kv["delay"]; ok {
			nw.Delay = new(Dist)
			if err := a.dist("delay", nw.Delay); err != nil {
				return nil, err
			}
		}
		if _, ok := a.kv["loss"]; ok {
			nw.Loss = new(float64)
			if err := a.fraction("loss", nw.Loss); err != nil {
				return nil, err
			}
		}
		if nw.Delay == nil && nw.Loss == nil {
			return nil, fmt.Errorf("network: say what changes; usage: %s", usage["network"])
		}
		return []timedCmd{{cmd: nw}}, nil
	case "churn":
		return p.churn(a)
	}
	pos, err := a.positional(1, "the members (e.g. m1..m50)")
	if err != nil {
		return nil, err
	}
	members, err := expandMembers(pos[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.cmd, err)
	}
	var stagger time.Duration
	if err := a.duration("stagger", &stagger); err != nil {
		return nil, err
	}
	var proto Command
	switch a.cmd {
	case "join":
		j := Join{}
		if v, ok := a.get("group"); ok {
			j.Group = v
		}
		// Member arguments are applied at the end; mark them used now.
		probe := defaultMember()
		if err := applyMember(a, &probe); err != nil {
			return nil, err
		}
		proto = j
	case "leave":
		proto = Leave{}
	case "crash":
		proto = Crash{}
	case "restart":
		r := Restart{Down: time.Second, Crash: a.flag("crash"), NewInstance: a.flag("new-instance")}
		if err := a.duration("down", &r.Down); err != nil {
			return nil, err
		}
		proto = r
	case "pause":
		var d time.Duration
		if _, ok := a.kv["for"]; !ok {
			return nil, fmt.Errorf("pause: missing for=D; usage: %s", usage["pause"])
		}
		if err := a.duration("for", &d); err != nil {
			return nil, err
		}
		proto = Pause{For: d}
	case "partition":
		var d time.Duration
		if err := a.duration("for", &d); err != nil {
			return nil, err
		}
		proto = Partition{For: d}
	case "heal":
		proto = Heal{}
	case "slow":
		s := Slow{}
		for key, dst := range map[string]**Dist{"on-assigned": &s.OnAssigned, "on-revoked": &s.OnRevoked, "on-lost": &s.OnLost} {
			var d Dist
			if _, ok := a.kv[key]; !ok {
				continue
			}
			if err := a.dist(key, &d); err != nil {
				return nil, err
			}
			*dst = &d
		}
		if s.OnAssigned == nil && s.OnRevoked == nil && s.OnLost == nil {
			return nil, fmt.Errorf("slow: say which callback is slow; usage: %s", usage["slow"])
		}
		proto = s
	}
	out := make([]timedCmd, 0, len(members))
	for i, m := range members {
		c := timedCmd{offset: time.Duration(i) * stagger, member: a}
		switch v := proto.(type) {
		case Join:
			v.Member = m
			c.cmd = v
		case Leave:
			c.cmd = Leave{Member: m}
		case Crash:
			c.cmd = Crash{Member: m}
		case Restart:
			v.Member = m
			c.cmd = v
		case Pause:
			v.Member = m
			c.cmd = v
		case Partition:
			v.Member = m
			c.cmd = v
		case Heal:
			c.cmd = Heal{Member: m}
		case Slow:
			v.Member = m
			c.cmd = v
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *parser) churn(a *args) ([]timedCmd, error) {
	if _, err := a.positional(0, ""); err != nil {
		return nil, err
	}
	c := Churn{Kinds: []ChurnKind{ChurnRestart}, Down: time.Second, Pause: Dist{Min: time.Second, Max: 20 * time.Second}}
	for _, k := range []string{"every", "for"} {
		if _, ok := a.kv[k]; !ok {
			return nil, fmt.Errorf("churn: missing %s=D; usage: %s", k, usage["churn"])
		}
	}
	if err := a.duration("every", &c.Every); err != nil {
		return nil, err
	}
	if c.Every <= 0 {
		return nil, errors.New("churn: every= must be positive")
	}
	if err := a.duration("for", &c.For); err != nil {
		return nil, err
	}
	if v, ok := a.get("kinds"); ok {
		c.Kinds = nil
		for _, k := range strings.Split(v, ",") {
			switch ChurnKind(k) {
			case ChurnRestart, ChurnCrash, ChurnPause:
				c.Kinds = append(c.Kinds, ChurnKind(k))
			default:
				return nil, fmt.Errorf("churn: unknown kind %q; kinds: restart, crash, pause", k)
			}
		}
	}
	if err := a.duration("down", &c.Down); err != nil {
		return nil, err
	}
	if err := a.dist("pause", &c.Pause); err != nil {
		return nil, err
	}
	if v, ok := a.get("group"); ok {
		c.Group = v
	}
	return []timedCmd{{cmd: c}}, nil
}

// finish applies defaults and member configurations, sorts the timeline
// and checks that every member is used only after it joined.
func (p *parser) finish() error {
	sc := p.sc
	fail := func(line int, format string, args ...any) error {
		return &lineError{name: p.name, line: line, msg: fmt.Sprintf(format, args...)}
	}
	if len(sc.Topics) == 0 {
		return fmt.Errorf("%s: no topic: declare one with 'topic NAME partitions=N'", nameOr(p.name))
	}
	var all []string
	for _, t := range sc.Topics {
		all = append(all, t.Name)
	}
	if len(p.order) == 0 {
		p.groups["g"] = &pendingConfig{}
		p.order = []string{"g"}
	}
	cfgs := map[string]MemberConfig{}
	for _, name := range p.order {
		pc := p.groups[name]
		c := defaultMember()
		if pc.args != nil {
			if err := applyMember(pc.args, &c); err != nil {
				return fail(pc.line, "%v", err)
			}
			if err := pc.args.finish(); err != nil {
				return fail(pc.line, "%v", err)
			}
		}
		if len(c.Topics) == 0 {
			c.Topics = slices.Clone(all)
		}
		base := c
		if err := complete(&c, name); err != nil {
			return fail(pc.line, "group %s: %v", name, err)
		}
		cfgs[name] = base
		sc.Groups = append(sc.Groups, Group{Name: name, Member: c})
	}
	for _, j := range p.joins {
		if j.group == "" {
			j.group = p.order[0]
		}
		base, ok := cfgs[j.group]
		if !ok {
			return fail(j.cfg.line, "join: unknown group %q; declare it with 'group %s'", j.group, j.group)
		}
		c := base
		c.Topics, c.Assignors = slices.Clone(base.Topics), slices.Clone(base.Assignors)
		if err := applyMember(j.cfg.args, &c); err != nil {
			return fail(j.cfg.line, "%v", err)
		}
		if err := complete(&c, j.group); err != nil {
			return fail(j.cfg.line, "join: %v", err)
		}
		act := p.actions[j.action]
		jn := act.Do.(Join)
		jn.Group, jn.Config = j.group, c
		p.actions[j.action].Do = jn
	}
	counts := map[string]int32{}
	for _, t := range sc.Topics {
		counts[t.Name] = t.Partitions
	}
	sort.SliceStable(p.actions, func(i, k int) bool { return p.actions[i].At < p.actions[k].At })
	joined := map[string]string{}
	coords := map[string]bool{}
	for i := range sc.Coordinator.Coordinators {
		coords[CoordinatorName(i)] = true
	}
	next := sc.Coordinator.Coordinators
	coordinator := func(a *Action, name string) error {
		if name != "" && !coords[name] {
			return fail(a.Line, "%s: no coordinator %s runs at %v (they are c1 to c%d, less those removed)", a.Verb(), name, a.At, next)
		}
		return nil
	}
	for i := range p.actions {
		a := &p.actions[i]
		switch c := a.Do.(type) {
		case AddCoordinator:
			c.Name = CoordinatorName(next)
			next++
			coords[c.Name] = true
			a.Do = c
		case RemoveCoordinator:
			if err := coordinator(a, c.Name); err != nil {
				return err
			}
			if len(coords) == 1 {
				return fail(a.Line, "remove-coordinator: %s is the last coordinator; add another first", c.Name)
			}
			delete(coords, c.Name)
		case PauseCoordinator:
			if err := coordinator(a, c.Coordinator); err != nil {
				return err
			}
		case Join:
			if g, ok := joined[c.Member]; ok && g != c.Group {
				return fail(a.Line, "join: %s joined group %s before; a member belongs to one group", c.Member, g)
			}
			joined[c.Member] = c.Group
			for _, t := range c.Config.Topics {
				if !p.topics[t] && !topicCreated(p.actions, t) {
					return fail(a.Line, "join: %s subscribes to topic %s, which is never declared", c.Member, t)
				}
			}
		case Failover:
			if err := coordinator(a, c.Coordinator); err != nil {
				return err
			}
			if c.Gap == 0 {
				c.Gap = sc.Coordinator.Gap()
				a.Do = c
			}
		case Churn:
			if _, ok := cfgs[c.Group]; c.Group != "" && !ok {
				return fail(a.Line, "churn: unknown group %q", c.Group)
			}
		case SetTopic:
			if old, ok := counts[c.Topic.Name]; ok && c.Topic.Partitions < old {
				return fail(a.Line, "topic: %s would shrink from %d to %d partitions; topics only grow (as in Kafka)", c.Topic.Name, old, c.Topic.Partitions)
			}
			counts[c.Topic.Name] = c.Topic.Partitions
		default:
			if m := a.Member(); m != "" {
				if _, ok := joined[m]; !ok {
					return fail(a.Line, "%s: %s has not joined by %v; add a join for it first", a.Verb(), m, a.At)
				}
			}
		}
	}
	sc.Actions = p.actions
	return nil
}

// topicCreated reports whether an action creates topic t.
func topicCreated(actions []Action, t string) bool {
	for _, a := range actions {
		if c, ok := a.Do.(SetTopic); ok && c.Topic.Name == t {
			return true
		}
	}
	return false
}

func nameOr(name string) string {
	if name == "" {
		return "scenario"
	}
	return name
}

// Member returns the member the action is about, or "" (failover, topic,
// network, churn).
func (a Action) Member() string {
	switch c := a.Do.(type) {
	case Join:
		return c.Member
	case Leave:
		return c.Member
	case Crash:
		return c.Member
	case Restart:
		return c.Member
	case Pause:
		return c.Member
	case Partition:
		return c.Member
	case Heal:
		return c.Member
	case Slow:
		return c.Member
	}
	return ""
}

// Verb returns the action's command name in the language, e.g. "join".
func (a Action) Verb() string {
	switch c := a.Do.(type) {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Crash:
		return "crash"
	case Restart:
		return "restart"
	case Pause:
		return "pause"
	case Partition:
		return "partition"
	case Heal:
		return "heal"
	case Slow:
		return "slow"
	case Failover:
		return "failover"
	case StoreFault:
		return "store"
	case PauseCoordinator:
		return "pause-coordinator"
	case AddCoordinator:
		return "add-coordinator"
	case RemoveCoordinator:
		return "remove-coordinator"
	case SetTopic:
		return "topic"
	case SetNetwork:
		return "network"
	case Churn:
		return "churn"
	default:
		return fmt.Sprintf("%T", c)
	}
}
