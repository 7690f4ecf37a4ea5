package chaos

import (
	"strings"
	"testing"
	"time"
)

func events(t *testing.T, logs map[string]string) []Event {
	t.Helper()
	var all []Event
	for member, text := range logs {
		es, err := ReadLog(member, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
	}
	return all
}

// TestCheckerCatches shows the checker failing on hand-made bad logs, and
// passing a good one.
func TestCheckerCatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		logs map[string]string
		want string // "" for no violation
	}{
		{"a clean hand-over", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n2000 work orders/1 4294967296\n3000 revoked orders/1 4294967296\n",
			"b": "3500 assigned orders/1 8589934592\n4000 work orders/1 8589934592\n",
		}, ""},
		{"two owners", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n3000 revoked orders/1 4294967296\n",
			"b": "2500 assigned orders/1 8589934592\n",
		}, "orders/1 had two owners"},
		{"two owners, one never released", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n",
			"b": "2500 assigned orders/1 8589934592\n",
		}, "orders/1 had two owners"},
		{"lost ends at its deadline, not at the callback", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n9000 lost orders/1 4294967296 2000\n",
			"b": "2500 assigned orders/1 8589934592\n",
		}, ""},
		{"lost whose deadline comes after the next owner", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n9000 lost orders/1 4294967296 3000\n",
			"b": "2500 assigned orders/1 8589934592\n",
		}, "orders/1 had two owners"},
		{"a killed owner owns nothing after its exit", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n2000 exit\n",
			"b": "2500 assigned orders/1 8589934592\n",
		}, ""},
		{"a killed owner owns until its exit", map[string]string{
			"a": "1000 assigned orders/1 4294967296\n3000 exit\n",
			"b": "2500 assigned orders/1 8589934592\n",
		}, "orders/1 had two owners"},
		{"token backwards", map[string]string{
			"a": "1000 assigned orders/1 8589934592\n2000 revoked orders/1 8589934592\n",
			"b": "3000 assigned orders/1 4294967296\n",
		}, "below"},
		{"released without owning", map[string]string{
			"a": "1000 revoked orders/1 8589934592\n",
		}, "did not own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(events(t, tc.logs))
			got := strings.Join(r.Violations, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("violations:\n%s\nwant %q", got, tc.want)
			}
		})
	}
}

// TestCheckerWindows checks the per-window counts on a hand-made log.
func TestCheckerWindows(t *testing.T) {
	r := Check(events(t, map[string]string{
		"a": "1000000000 gen 1\n1000000000 assigned orders/1 4294967296\n1100000000 work orders/1 4294967296\n5000000000 lost orders/1 4294967296 4000000000\n",
		"b": "6000000000 gen 2\n6000000000 assigned orders/1 8589934592\n6100000000 work orders/1 8589934592\n",
	}))
	w := r.Window(time.Unix(0, 2000000000), time.Unix(0, 7000000000))
	if w.Lost != 1 || w.Moved != 1 || w.Generations != 1 || w.LongestIdle != 4100*time.Millisecond || w.Idlest != "orders/1" {
		t.Errorf("window: %+v, want 1 lost, 1 moved, 1 generation, 4.1s idle on orders/1", w)
	}
	if _, err := ReadLog("x", strings.NewReader("12 frobbed orders/1 3\n")); err == nil {
		t.Error("a log line of an unknown kind was accepted")
	}
}
