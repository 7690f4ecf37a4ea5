package member_test

import (
	"strings"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member"
)

// TestNewRefusesBadConfigs checks that configurations that cannot work are
// errors from New, naming what is wrong.
func TestNewRefusesBadConfigs(t *testing.T) {
	sticky, _ := assignor.Lookup("sticky")
	// New dials nothing (Run does); still, no test names the README's
	// default port, which a user's coordinator may be serving.
	good := func() member.Config {
		return member.Config{Group: "g", Topics: []string{"orders"}, Endpoints: []string{"127.0.0.1:1"}}
	}
	for _, tc := range []struct {
		name   string
		change func(*member.Config)
		want   string
	}{
		{"empty group", func(c *member.Config) { c.Group = "" }, "group id is empty"},
		{"no topics", func(c *member.Config) { c.Topics = nil }, "no topics"},
		{"heartbeat above a third of the session", func(c *member.Config) {
			c.SessionTimeout, c.HeartbeatInterval = 6*time.Second, 3*time.Second
		}, "at most a third of the session timeout"},
		{"margin too large", func(c *member.Config) { c.SafetyMargin = 19 * time.Second }, "safety margin"},
		{"negative timeout", func(c *member.Config) { c.RebalanceTimeout = -time.Second }, "must be positive"},
		{"empty endpoint", func(c *member.Config) { c.Endpoints = []string{"127.0.0.1:1", ""} }, "endpoint is empty"},
		{"assignor twice", func(c *member.Config) { c.Assignors = []assignor.Assignor{sticky, sticky} }, "listed twice"},
		{"nil assignor", func(c *member.Config) { c.Assignors = []assignor.Assignor{nil} }, "is nil"},
		{"leave-on-stop without an instance", func(c *member.Config) { c.LeaveOnStop = true }, "applies to static members"},
		{"unknown protocol", func(c *member.Config) { c.Protocol = "kip-848" }, `use "classic" or "next"`},
		{"server assignor with classic", func(c *member.Config) { c.ServerAssignor = "range" }, "applies to the next-generation protocol"},
		{"assignors with next", func(c *member.Config) {
			c.Protocol, c.Assignors = "next", []assignor.Assignor{sticky}
		}, "the coordinator assigns"},
		{"rack with next", func(c *member.Config) { c.Protocol, c.Rack = "next", "r1" }, "does not carry a rack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.change(&c)
			_, err := member.New(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	for _, protocol := range []string{"", "classic", "next"} {
		c := good()
		c.Protocol = protocol
		m, err := member.New(c)
		if err != nil {
			t.Fatalf("protocol %q: the defaults are refused: %v", protocol, err)
		}
		if len(m.Assignment()) != 0 {
			t.Fatal("a new member owns partitions")
		}
	}
}
