package group

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// MaxIDLength is the longest group, member, instance, client or topic name
// accepted, in bytes.
const MaxIDLength = 255

// MaxReasonLength is the longest free text a client may send (a join's or
// leave's reason), in bytes.
const MaxReasonLength = 1024

// MaxHoldMs is the largest hold_ms a heartbeat may ask for: a day. The hold
// is further clamped to a third of the member's session timeout.
const MaxHoldMs = 24 * 60 * 60 * 1000

func invalid(field, format string, args ...any) *regroup.Error {
	return regroup.Errorf(regroup.CodeInvalidRequest, "%s: %s", field, fmt.Sprintf(format, args...)).
		With(regroup.MetaField, field)
}

// checkName checks an identifier: at most MaxIDLength bytes of valid UTF-8
// without control or format characters (unicode.Cf: zero-width and bidi
// controls, which make look-alike names), and not empty when required.
func checkName(field, s string, required bool) *regroup.Error {
	if nameOK(s, required) {
		return nil
	}
	return nameError(field, s, required)
}

// nameOK reports whether checkName accepts s, without naming the field:
// callers whose field name must be formatted format it only on failure.
func nameOK(s string, required bool) bool {
	if s == "" {
		return !required
	}
	if len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			// Not ASCII: the general check.
			return utf8.ValidString(s) && !strings.ContainsFunc(s, unprintable)
		} else if c < 0x20 || c == 0x7f {
			return false // an ASCII control character
		}
	}
	return true
}

// nameError is checkName's error for a name nameOK refuses.
func nameError(field, s string, required bool) *regroup.Error {
	if s == "" {
		if required {
			return invalid(field, "must not be empty")
		}
		return nil
	}
	if len(s) > MaxIDLength {
		return invalid(field, "is %d bytes long, the limit is %d", len(s), MaxIDLength)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return invalid(field, "has a control character %q at byte %d", r, i)
		}
		if unicode.Is(unicode.Cf, r) {
			return invalid(field, "has an invisible format character %U at byte %d", r, i)
		}
	}
	return nil
}

// unprintable reports whether r is a control or format character: one that
// moves the cursor, changes a terminal's state or hides in a name.
func unprintable(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// checkText checks free text a client sends, such as a reason: at most
// MaxReasonLength bytes of valid UTF-8 without control or format
// characters, so that it prints as it reads in logs and terminals.
func checkText(field, s string) *regroup.Error {
	switch {
	case len(s) > MaxReasonLength:
		return invalid(field, "is %d bytes long, the limit is %d", len(s), MaxReasonLength)
	case !utf8.ValidString(s):
		return invalid(field, "is not valid UTF-8")
	}
	if i := strings.IndexFunc(s, unprintable); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return invalid(field, "has a control or format character %U at byte %d; send plain text", r, i)
	}
	return nil
}

// Sanitize returns s fit to print on a terminal or in a log line: invalid
// UTF-8 and control and format characters are replaced by Go escapes
// (\x1b, \u202e), so that a stored string cannot move the cursor, change
// colours or reorder text. Printable text is returned unchanged.
func Sanitize(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unprintable) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unprintable(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// ValidateGroupID checks a group id: 1 to 255 bytes, no control characters.
// Drivers call it before looking the group up.
func ValidateGroupID(id string) error {
	if err := checkName("group_id", id, true); err != nil {
		return err
	}
	return nil
}

// ValidateTopic checks a topic registry entry: a valid name and 1 to
// MaxTopicPartitions partitions (LIMIT_EXCEEDED above). The coordinator
// checks topics it is asked to put and topics it loads from the store.
func (c Config) ValidateTopic(t *regroupv1.Topic) error {
	if t == nil {
		return invalid("topic", "is missing")
	}
	if err := checkName("topic.name", t.GetName(), true); err != nil {
		return err
	}
	if t.GetPartitions() <= 0 {
		return invalid("topic.partitions", "must be at least 1, got %d", t.GetPartitions())
	}
	if t.GetPartitions() > c.MaxTopicPartitions {
		return limitExceeded("topic %q has %d partitions; this coordinator's limit is %d per topic (--max-topic-partitions)",
			t.GetName(), t.GetPartitions(), c.MaxTopicPartitions)
	}
	return nil
}

// checkPartitions checks a list of topic partitions; field names it, and is
// called only to report an error.
func checkPartitions(field func() string, tps []*regroupv1.TopicPartitions) *regroup.Error {
	for i, tp := range tps {
		if !nameOK(tp.GetTopic(), true) {
			return nameError(fmt.Sprintf("%s[%d].topic", field(), i), tp.GetTopic(), true)
		}
		for _, p := range tp.GetPartitions() {
			if p < 0 {
				return invalid(fmt.Sprintf("%s[%d].partitions", field(), i), "has negative partition %d", p)
			}
		}
	}
	return nil
}

// checkIdentity checks a request's group, member and instance ids; the
// member id may be empty only when memberRequired is false.
func checkIdentity(groupID, memberID, instanceID string, memberRequired bool) *regroup.Error {
	if err := checkName("group_id", groupID, true); err != nil {
		return err
	}
	if err := checkName("member_id", memberID, memberRequired); err != nil {
		return err
	}
	return checkName("group_instance_id", instanceID, false)
}

func checkTimeout(field string, ms int64, max time.Duration) *regroup.Error {
	if ms <= 0 {
		return invalid(field, "must be positive, got %d", ms)
	}
	if max > 0 && ms > max.Milliseconds() {
		return invalid(field, "is %d, the limit is %d", ms, max.Milliseconds())
	}
	return nil
}

func (c Config) validateJoin(r *regroupv1.JoinGroupRequest) *regroup.Error {
	if err := checkIdentity(r.GetGroupId(), r.GetMemberId(), r.GetGroupInstanceId(), false); err != nil {
		return err
	}
	if err := checkName("client_id", r.GetClientId(), false); err != nil {
		return err
	}
	if err := checkText("reason", r.GetReason()); err != nil {
		return err
	}
	if err := checkTimeout("session_timeout_ms", r.GetSessionTimeoutMs(), 0); err != nil {
		return err
	}
	if err := checkTimeout("rebalance_timeout_ms", r.GetRebalanceTimeoutMs(), c.MaxRebalanceTimeout); err != nil {
		return err
	}
	if r.GetPartitionsLost() < 0 {
		return invalid("partitions_lost", "is %d; it counts partitions, 0 or more", r.GetPartitionsLost())
	}
	if len(r.GetProtocols()) == 0 {
		return invalid("protocols", "must list at least one assignor")
	}
	for i, p := range r.GetProtocols() {
		if err := checkProtocol(i, p, r.GetProtocols()[:i]); err != nil {
			return err
		}
	}
	size := 0
	for _, p := range r.GetProtocols() {
		size += proto.Size(p)
	}
	if size > c.MaxMetadataBytes {
		return invalid("protocols", "metadata is %d bytes, the limit is %d", size, c.MaxMetadataBytes)
	}
	return c.checkSessionBounds(r.GetSessionTimeoutMs())
}

// checkSessionBounds refuses a session timeout outside the coordinator's
// bounds with INVALID_SESSION_TIMEOUT.
func (c Config) checkSessionBounds(ms int64) *regroup.Error {
	if ms < c.MinSessionTimeout.Milliseconds() || ms > c.MaxSessionTimeout.Milliseconds() {
		return regroup.Errorf(regroup.CodeInvalidSessionTimeout,
			"session timeout %v is outside %v..%v; choose one within the coordinator's --min-session-timeout and --max-session-timeout",
			time.Duration(ms)*time.Millisecond, c.MinSessionTimeout, c.MaxSessionTimeout).
			With(regroup.MetaMinSessionTimeoutMs, strconv.FormatInt(c.MinSessionTimeout.Milliseconds(), 10)).
			With(regroup.MetaMaxSessionTimeoutMs, strconv.FormatInt(c.MaxSessionTimeout.Milliseconds(), 10))
	}
	return nil
}

// validateReconcile checks a Reconcile request (see ValidateReconcile).
func (c Config) validateReconcile(r *regroupv1.ReconcileRequest) *regroup.Error {
	epoch := r.GetMemberEpoch()
	if err := checkIdentity(r.GetGroupId(), r.GetMemberId(), r.GetGroupInstanceId(), epoch != 0); err != nil {
		return err
	}
	switch {
	case epoch < -2:
		return invalid("member_epoch", "is %d; send 0 to join, -1 to leave, -2 to leave temporarily, or the epoch of your last answer", epoch)
	case epoch == -2 && r.GetGroupInstanceId() == "":
		return invalid("member_epoch", "-2 (a temporary leave) applies to static members only: set group_instance_id, or leave with -1")
	case epoch == 0 && r.GetMemberId() != "" && r.GetMemberSecret() == "":
		return invalid("member_secret", "must be sent with a member_id")
	}
	if err := checkName("client_id", r.GetClientId(), false); err != nil {
		return err
	}
	if err := checkName("server_assignor", r.GetServerAssignor(), false); err != nil {
		return err
	}
	if r.GetHoldMs() < 0 || r.GetHoldMs() > MaxHoldMs {
		return invalid("hold_ms", "must be between 0 and %d (a day), got %d", MaxHoldMs, r.GetHoldMs())
	}
	if r.GetPartitionsLost() < 0 {
		return invalid("partitions_lost", "is %d; it counts partitions, 0 or more", r.GetPartitionsLost())
	}
	for i, t := range r.GetSubscribedTopics() {
		if !nameOK(t, true) {
			return nameError(fmt.Sprintf("subscribed_topics[%d]", i), t, true)
		}
	}
	if err := checkPartitions(func() string { return "owned" }, r.GetOwned()); err != nil {
		return err
	}
	if size := proto.Size(r); size > c.MaxMetadataBytes {
		return invalid("owned", "the request is %d bytes, the limit is %d", size, c.MaxMetadataBytes)
	}
	if epoch < 0 {
		return nil // a leave: the timeouts no longer matter
	}
	if err := checkTimeout("session_timeout_ms", r.GetSessionTimeoutMs(), 0); err != nil {
		return err
	}
	if err := checkTimeout("rebalance_timeout_ms", r.GetRebalanceTimeoutMs(), c.MaxRebalanceTimeout); err != nil {
		return err
	}
	return c.checkSessionBounds(r.GetSessionTimeoutMs())
}

// ValidateReconcile checks a Reconcile request as the group would before
// acting on it, so that a driver creates a group only for a valid join.
func (c Config) ValidateReconcile(r *regroupv1.ReconcileRequest) error {
	if err := c.validateReconcile(r); err != nil {
		return err
	}
	return nil
}

// checkProtocol checks protocols[i] of a JoinGroup request; before are the
// protocols listed ahead of it.
func checkProtocol(i int, p *regroupv1.Protocol, before []*regroupv1.Protocol) *regroup.Error {
	f := func() string { return fmt.Sprintf("protocols[%d]", i) }
	if !nameOK(p.GetName(), true) {
		return nameError(f()+".name", p.GetName(), true)
	}
	if slices.ContainsFunc(before, func(q *regroupv1.Protocol) bool { return q.GetName() == p.GetName() }) {
		return invalid(f()+".name", "duplicate protocol %q", p.GetName())
	}
	for j, t := range p.GetSubscription().GetTopics() {
		if !nameOK(t, true) {
			return nameError(fmt.Sprintf("%s.subscription.topics[%d]", f(), j), t, true)
		}
	}
	if err := checkPartitions(func() string { return f() + ".subscription.owned_partitions" }, p.GetSubscription().GetOwnedPartitions()); err != nil {
		return err
	}
	if !nameOK(p.GetSubscription().GetRack(), false) {
		return nameError(f()+".subscription.rack", p.GetSubscription().GetRack(), false)
	}
	return nil
}

func (c Config) validateSync(r *regroupv1.SyncGroupRequest) *regroup.Error {
	if err := checkIdentity(r.GetGroupId(), r.GetMemberId(), r.GetGroupInstanceId(), true); err != nil {
		return err
	}
	if err := checkName("protocol_name", r.GetProtocolName(), false); err != nil {
		return err
	}
	for i, a := range r.GetAssignments() {
		f := func() string { return fmt.Sprintf("assignments[%d]", i) }
		if !nameOK(a.GetMemberId(), true) {
			return nameError(f()+".member_id", a.GetMemberId(), true)
		}
		if err := checkPartitions(func() string { return f() + ".assignment.partitions" }, a.GetAssignment().GetPartitions()); err != nil {
			return err
		}
		if n := len(a.GetAssignment().GetUserData()); n > c.MaxMetadataBytes {
			return invalid(f()+".assignment.user_data", "is %d bytes, the limit is %d", n, c.MaxMetadataBytes)
		}
	}
	return nil
}

func validateHeartbeat(r *regroupv1.HeartbeatRequest) *regroup.Error {
	if err := checkIdentity(r.GetGroupId(), r.GetMemberId(), r.GetGroupInstanceId(), true); err != nil {
		return err
	}
	if r.GetHoldMs() < 0 || r.GetHoldMs() > MaxHoldMs {
		return invalid("hold_ms", "must be between 0 and %d (a day), got %d", MaxHoldMs, r.GetHoldMs())
	}
	return nil
}

func validateLeave(r *regroupv1.LeaveGroupRequest) *regroup.Error {
	if err := checkName("group_id", r.GetGroupId(), true); err != nil {
		return err
	}
	if len(r.GetMembers()) == 0 {
		return invalid("members", "must name at least one member")
	}
	for i, m := range r.GetMembers() {
		f := fmt.Sprintf("members[%d]", i)
		if err := checkName(f+".member_id", m.GetMemberId(), false); err != nil {
			return err
		}
		if err := checkName(f+".group_instance_id", m.GetGroupInstanceId(), false); err != nil {
			return err
		}
		if err := checkText(f+".reason", m.GetReason()); err != nil {
			return err
		}
		if m.GetMemberId() == "" && m.GetGroupInstanceId() == "" {
			return invalid(f, "needs a member_id or a group_instance_id")
		}
		if m.GetTemporary() && m.GetGroupInstanceId() == "" {
			return invalid(f+".temporary", "applies to static members only: set group_instance_id")
		}
		if m.GetTemporary() && m.GetMemberId() == "" {
			return invalid(f+".temporary", "is for a member releasing its own partitions: set member_id")
		}
	}
	return nil
}

// ValidateJoin checks a JoinGroup request as the group would before acting
// on it, so that a driver creates a group only for a valid request. It
// returns nil or an INVALID_REQUEST (or INVALID_SESSION_TIMEOUT) error.
func (c Config) ValidateJoin(r *regroupv1.JoinGroupRequest) error {
	if err := c.validateJoin(r); err != nil {
		return err
	}
	return nil
}
