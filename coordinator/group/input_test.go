package group

import (
	"errors"
	"strings"
	"testing"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestIDsRefuseFormatCharacters checks that ids with invisible format
// characters (zero-width, bidi controls), which make look-alike names, are
// refused with INVALID_REQUEST naming the field.
func TestIDsRefuseFormatCharacters(t *testing.T) {
	for _, id := range []string{"pay\u200bments", "ab\u202ec", "\ufeffg", "a\u2066b"} {
		err := ValidateGroupID(id)
		if !errors.Is(err, regroup.ErrInvalidRequest) || !strings.Contains(err.Error(), "format character") {
			t.Errorf("ValidateGroupID(%q) = %v, want INVALID_REQUEST naming a format character", id, err)
		}
	}
	if err := ValidateGroupID("paiements-日本"); err != nil {
		t.Errorf("a printable non-ASCII id is refused: %v", err)
	}
}

// TestReasonsAreChecked checks the reasons of JoinGroup and LeaveGroup:
// length, valid UTF-8, no control or format characters.
func TestReasonsAreChecked(t *testing.T) {
	cfg := DefaultConfig()
	join := func(reason string) error {
		return cfg.ValidateJoin(&regroupv1.JoinGroupRequest{GroupId: "g", SessionTimeoutMs: 10000, RebalanceTimeoutMs: 10000,
			Protocols: []*regroupv1.Protocol{{Name: "range"}}, Reason: reason})
	}
	leave := func(reason string) error {
		if err := validateLeave(&regroupv1.LeaveGroupRequest{GroupId: "g", Members: []*regroupv1.LeaveMember{{MemberId: "m", Reason: reason}}}); err != nil {
			return err
		}
		return nil
	}
	for _, check := range []func(string) error{join, leave} {
		for _, bad := range []string{"\x1b[2J\x1b[Hforged line", "line\nbreak", "rtl \u202e", "\xff", strings.Repeat("x", MaxReasonLength+1)} {
			if err := check(bad); !errors.Is(err, regroup.ErrInvalidRequest) {
				t.Errorf("reason %q: got %v, want INVALID_REQUEST", bad, err)
			}
		}
		if err := check("rolling restart: déploiement 42"); err != nil {
			t.Errorf("a plain reason is refused: %v", err)
		}
	}
}

// TestHoldMsBounded checks that a hold_ms past a day is refused rather than
// overflowing.
func TestHoldMsBounded(t *testing.T) {
	for _, hold := range []int64{-1, MaxHoldMs + 1, 1 << 62} {
		if err := validateHeartbeat(&regroupv1.HeartbeatRequest{GroupId: "g", MemberId: "m", HoldMs: hold}); !errors.Is(err, regroup.ErrInvalidRequest) {
			t.Errorf("hold_ms %d: got %v, want INVALID_REQUEST", hold, err)
		}
	}
	if err := validateHeartbeat(&regroupv1.HeartbeatRequest{GroupId: "g", MemberId: "m", HoldMs: MaxHoldMs}); err != nil {
		t.Errorf("hold_ms %d refused: %v", int64(MaxHoldMs), err)
	}
}

// TestSanitize checks that Sanitize escapes what could drive a terminal and
// leaves printable text alone.
func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"member left":          "member left",
		"déploiement 日本":       "déploiement 日本",
		"\x1b[31mred\x1b[0m":   `\x1b[31mred\x1b[0m`,
		"a\nb\tc":              `a\nb\tc`,
		"rtl\u202eevil":        `rtl\u202eevil`,
		"bad\xffutf8":          `bad\xffutf8`,
		"zero\u200bwidth":      `zero\u200bwidth`,
		"\u0085next line (C1)": `\u0085next line (C1)`,
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTopicPartitionLimit checks that a topic past MaxTopicPartitions is
// refused with LIMIT_EXCEEDED naming the limit.
func TestTopicPartitionLimit(t *testing.T) {
	cfg := DefaultConfig()
	err := cfg.ValidateTopic(&regroupv1.Topic{Name: "huge", Partitions: 1<<31 - 1})
	if !errors.Is(err, regroup.ErrLimitExceeded) || !strings.Contains(err.Error(), "--max-topic-partitions") {
		t.Errorf("got %v, want LIMIT_EXCEEDED naming --max-topic-partitions", err)
	}
	if err := cfg.ValidateTopic(&regroupv1.Topic{Name: "big", Partitions: cfg.MaxTopicPartitions}); err != nil {
		t.Errorf("a topic at the limit is refused: %v", err)
	}
}
