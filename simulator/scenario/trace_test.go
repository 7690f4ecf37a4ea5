package scenario

import (
	"strings"
	"testing"
)

// TestFromTrace turns a trace into scenario lines, in any order of time,
// and names the trace's line in every error.
func TestFromTrace(t *testing.T) {
	got, err := FromTrace(strings.NewReader(`time,event,member,duration
# comments are skipped
90s,pause,m4,25s
0,join,m1..m5,
12.5,restart,m2,3s
1m0s,restart,m3,
70,leave,m5,
80,crash,m1,
`))
	if err != nil {
		t.Fatal(err)
	}
	want := "at 1m30s pause m4 for=25s\nat 0s join m1..m5\nat 12.5s restart m2 down=3s\nat 1m0s restart m3\nat 1m10s leave m5\nat 1m20s crash m1\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	sc, err := Parse("replay", "topic t partitions=4\n"+got)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Actions) != 10 || sc.Actions[0].At != 0 {
		t.Errorf("actions %v, want 10 sorted by time", sc.Actions)
	}
	for _, bad := range []struct{ text, want string }{
		{"", "empty"},
		{"at,event,member,duration\n", "line 1: want the header"},
		{"time,event,member,duration\n0,join,m1,\n5,dance,m1,\n", "line 3: unknown event \"dance\""},
		{"time,event,member,duration\n5,pause,m1,\n", "line 2: pause: give how long"},
		{"time,event,member,duration\n5,leave,m1,2s\n", "line 2: leave takes no duration"},
		{"time,event,member,duration\nsoon,crash,m1,\n", "line 2: time \"soon\""},
		{"time,event,member,duration\n-1,crash,m1,\n", "must not be negative"},
		{"time,event,member,duration\n1,crash,m 1,\n", "line 2: name"},
		{"time,event,member,duration\n1,crash\n", "line 2: 2 fields"},
	} {
		if _, err := FromTrace(strings.NewReader(bad.text)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want an error with %q", bad.text, err, bad.want)
		}
	}
}
