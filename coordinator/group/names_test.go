package group

import (
	"strings"
	"testing"
)

// TestNameOK checks that nameOK accepts exactly the names nameError finds
// nothing wrong with.
func TestNameOK(t *testing.T) {
	names := []string{"", "a", "group-1", "é", "a\x00", "a\x1f", "a\x7f", "a\u0085", "a\u00a0", "\xff", "a\xc3",
		"\ufffd", strings.Repeat("x", MaxIDLength), strings.Repeat("x", MaxIDLength+1), "日本",
		"pay\u200bments", "a\u202eb", "\ufeffa", "a\u00ad"}
	for _, s := range names {
		for _, required := range []bool{false, true} {
			if got, want := nameOK(s, required), nameError("f", s, required) == nil; got != want {
				t.Errorf("nameOK(%q, %v) = %v, want %v", s, required, got, want)
			}
		}
	}
}
