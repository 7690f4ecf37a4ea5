package fsm_test

import (
	"strings"
	"testing"

	"github.com/regroup-dev/regroup/assignor"
	"github.com/regroup-dev/regroup/member/fsm"
)

// TestNewMachineValidatesProtocol checks that NewMachine builds the machine
// of the configured protocol, that WithDefaults gives a Next member its
// server assignor, and that each protocol refuses the other's settings
// with an error naming them.
func TestNewMachineValidatesProtocol(t *testing.T) {
	coop, err := assignor.Lookup("cooperative-sticky")
	if err != nil {
		t.Fatal(err)
	}
	classic := fsm.Config{GroupID: "g", Topics: []string{"orders"}, Assignors: []assignor.Assignor{coop}}.WithDefaults()
	next := fsm.Config{Protocol: fsm.Next, GroupID: "g", Topics: []string{"orders"}}.WithDefaults()
	if next.ServerAssignor != fsm.DefaultServerAssignor || classic.ServerAssignor != "" {
		t.Fatalf("WithDefaults: server assignor %q for next, %q for classic; want %q and none", next.ServerAssignor, classic.ServerAssignor, fsm.DefaultServerAssignor)
	}
	if m, err := fsm.NewMachine(classic); err != nil {
		t.Fatalf("classic: %v", err)
	} else if _, ok := m.(*fsm.Member); !ok {
		t.Fatalf("classic: NewMachine built a %T", m)
	}
	if m, err := fsm.NewMachine(next); err != nil {
		t.Fatalf("next: %v", err)
	} else if _, ok := m.(*fsm.NextMember); !ok || !m.Cooperative() {
		t.Fatalf("next: NewMachine built a %T (cooperative %v)", m, m.Cooperative())
	}

	for _, tc := range []struct {
		name   string
		cfg    fsm.Config
		change func(*fsm.Config)
		want   string
	}{
		{"next with assignors", next, func(c *fsm.Config) { c.Assignors = []assignor.Assignor{coop} }, "the coordinator assigns"},
		{"next without a server assignor", next, func(c *fsm.Config) { c.ServerAssignor = "" }, "needs a server assignor"},
		{"next with a rack", next, func(c *fsm.Config) { c.Rack = "r1" }, "does not carry a rack"},
		{"next with classic heartbeats", next, func(c *fsm.Config) { c.ClassicHeartbeats = true }, "classic heartbeats"},
		{"classic with a server assignor", classic, func(c *fsm.Config) { c.ServerAssignor = "range" }, "applies to the next-generation protocol"},
		{"next with a bad session", next, func(c *fsm.Config) { c.HeartbeatInterval = c.SessionTimeout }, "at most a third"},
		{"unknown protocol", classic, func(c *fsm.Config) { c.Protocol = fsm.Protocol(7) }, "Protocol(7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			tc.change(&c)
			m, err := fsm.NewMachine(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewMachine: %v, want an error containing %q", err, tc.want)
			}
			if m != nil {
				t.Fatalf("NewMachine returned a machine (%T) with its error", m)
			}
		})
	}
	// The constructors of one protocol refuse the other's configuration.
	if _, err := fsm.New(next); err == nil || !strings.Contains(err.Error(), "NewMachine") {
		t.Errorf("New with a next configuration: %v", err)
	}
	if _, err := fsm.NewNext(classic); err == nil || !strings.Contains(err.Error(), "NewMachine") {
		t.Errorf("NewNext with a classic configuration: %v", err)
	}

	for in, want := range map[string]fsm.Protocol{"": fsm.Classic, "classic": fsm.Classic, "next": fsm.Next} {
		if p, err := fsm.ParseProtocol(in); err != nil || p != want {
			t.Errorf("ParseProtocol(%q) = %v, %v; want %v", in, p, err, want)
		}
		if in != "" && want.String() != in {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := fsm.ParseProtocol("kip-848"); err == nil || !strings.Contains(err.Error(), `"classic" or "next"`) {
		t.Errorf("ParseProtocol(kip-848): %v", err)
	}
}
