// Package regroup holds the vocabulary that the coordinator, the member
// library and the simulator share: the group protocol's errors.
//
// Errors are *Error values with a Code (the protocol name of the error, as it
// travels in a google.rpc.ErrorInfo reason). Match them with errors.Is against
// the sentinels below:
//
//	if errors.Is(err, regroup.ErrRebalanceInProgress) { ... }
//
// This package imports nothing beyond the standard library, so that the pure
// state machines can use it.
package regroup

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
)

// Code is the protocol name of an error, e.g. "REBALANCE_IN_PROGRESS".
type Code string

// The protocol's error codes. The comments of proto/regroup/v1 say which RPC
// returns which, and what a client should do.
const (
	CodeRebalanceInProgress       Code = "REBALANCE_IN_PROGRESS"
	CodeIllegalGeneration         Code = "ILLEGAL_GENERATION"
	CodeUnknownMemberID           Code = "UNKNOWN_MEMBER_ID"
	CodeMemberIDRequired          Code = "MEMBER_ID_REQUIRED"
	CodeFencedInstanceID          Code = "FENCED_INSTANCE_ID"
	CodeGroupMaxSizeReached       Code = "GROUP_MAX_SIZE_REACHED"
	CodeInconsistentGroupProtocol Code = "INCONSISTENT_GROUP_PROTOCOL"
	CodeInvalidSessionTimeout     Code = "INVALID_SESSION_TIMEOUT"
	CodeInvalidRequest            Code = "INVALID_REQUEST"
	CodeInvalidAssignment         Code = "INVALID_ASSIGNMENT"
	CodeNotCoordinator            Code = "NOT_COORDINATOR"
	CodeCoordinatorNotAvailable   Code = "COORDINATOR_NOT_AVAILABLE"
	CodeUnknownGroup              Code = "UNKNOWN_GROUP"
	CodeUnknownTopic              Code = "UNKNOWN_TOPIC"
	CodeGroupNotEmpty             Code = "GROUP_NOT_EMPTY"
	CodeUnauthenticated           Code = "UNAUTHENTICATED"
	CodeNotAuthorized             Code = "NOT_AUTHORIZED"
	CodeLimitExceeded             Code = "LIMIT_EXCEEDED"
	CodeCoordinatorOverloaded     Code = "COORDINATOR_OVERLOADED"
	CodeFencedMemberEpoch         Code = "FENCED_MEMBER_EPOCH"
	CodeUnreleasedInstanceID      Code = "UNRELEASED_INSTANCE_ID"
	CodeUnsupportedAssignor       Code = "UNSUPPORTED_ASSIGNOR"
	CodeGroupProtocolMismatch     Code = "GROUP_PROTOCOL_MISMATCH"
)

// Metadata keys carried by some errors.
const (
	// MetaMemberID is the id minted for a new member (MEMBER_ID_REQUIRED).
	MetaMemberID = "member_id"
	// MetaLeader is the address of the coordinator leader (NOT_COORDINATOR).
	MetaLeader = "leader"
	// MetaRebalanceTimeoutMs is the time left until the join barrier closes
	// (REBALANCE_IN_PROGRESS), in milliseconds.
	MetaRebalanceTimeoutMs = "rebalance_timeout_ms"
	// MetaField names the malformed request field (INVALID_REQUEST).
	MetaField = "field"
	// MetaTopic, MetaPartition and MetaMembers locate a refused assignment
	// (INVALID_ASSIGNMENT).
	MetaTopic     = "topic"
	MetaPartition = "partition"
	MetaMembers   = "members"
	// MetaMinSessionTimeoutMs and MetaMaxSessionTimeoutMs are the bounds the
	// coordinator accepts (INVALID_SESSION_TIMEOUT).
	MetaMinSessionTimeoutMs = "min_session_timeout_ms"
	MetaMaxSessionTimeoutMs = "max_session_timeout_ms"
	// MetaRetryAfterMs is how long, in milliseconds, the caller should wait
	// before it sends the refused call again (COORDINATOR_OVERLOADED).
	MetaRetryAfterMs = "retry_after_ms"
)

// Error is a protocol error. Its Code says what happened; Message says it to
// a person; Metadata carries values a client acts on (see the Meta* keys).
type Error struct {
	Code     Code
	Message  string
	Metadata map[string]string
}

// Sentinels for errors.Is. Any *Error with the same Code matches.
var (
	ErrRebalanceInProgress       = &Error{Code: CodeRebalanceInProgress}
	ErrIllegalGeneration         = &Error{Code: CodeIllegalGeneration}
	ErrUnknownMemberID           = &Error{Code: CodeUnknownMemberID}
	ErrMemberIDRequired          = &Error{Code: CodeMemberIDRequired}
	ErrFencedInstanceID          = &Error{Code: CodeFencedInstanceID}
	ErrGroupMaxSizeReached       = &Error{Code: CodeGroupMaxSizeReached}
	ErrInconsistentGroupProtocol = &Error{Code: CodeInconsistentGroupProtocol}
	ErrInvalidSessionTimeout     = &Error{Code: CodeInvalidSessionTimeout}
	ErrInvalidRequest            = &Error{Code: CodeInvalidRequest}
	ErrInvalidAssignment         = &Error{Code: CodeInvalidAssignment}
	ErrNotCoordinator            = &Error{Code: CodeNotCoordinator}
	ErrCoordinatorNotAvailable   = &Error{Code: CodeCoordinatorNotAvailable}
	ErrUnknownGroup              = &Error{Code: CodeUnknownGroup}
	ErrUnknownTopic              = &Error{Code: CodeUnknownTopic}
	ErrGroupNotEmpty             = &Error{Code: CodeGroupNotEmpty}
	ErrUnauthenticated           = &Error{Code: CodeUnauthenticated}
	ErrNotAuthorized             = &Error{Code: CodeNotAuthorized}
	ErrLimitExceeded             = &Error{Code: CodeLimitExceeded}
	ErrCoordinatorOverloaded     = &Error{Code: CodeCoordinatorOverloaded}
	ErrFencedMemberEpoch         = &Error{Code: CodeFencedMemberEpoch}
	ErrUnreleasedInstanceID      = &Error{Code: CodeUnreleasedInstanceID}
	ErrUnsupportedAssignor       = &Error{Code: CodeUnsupportedAssignor}
	ErrGroupProtocolMismatch     = &Error{Code: CodeGroupProtocolMismatch}
)

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e with key set to value in its metadata.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Metadata = maps.Clone(e.Metadata)
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	c.Metadata[key] = value
	return &c
}

// Error implements error: "regroup: CODE: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("regroup: ")
	b.WriteString(string(e.Code))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Metadata) > 0 {
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%s", k, e.Metadata[k])
		}
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, regroup.ErrUnknownMemberID) works on any wrapped *Error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// codeInfo is what the protocol says about one code: whether a member that
// receives it must stop, and what the member's user should do about it.
type codeInfo struct {
	// fatal: the member stops (its Run returns an error) rather than
	// recover. Otherwise the code is retriable: the member recovers on its
	// own (it retries, follows a redirect, rejoins or joins afresh).
	fatal bool
	// advice is the remedy told to the member's user when the code is
	// fatal; empty for retriable codes.
	advice string
}

// codes is the one table of the protocol's error codes. Every Code constant
// has an entry (a test checks it); Fatal and Advice read it, and so does the
// member state machine when it decides whether to stop.
var codes = map[Code]codeInfo{
	CodeRebalanceInProgress: {},
	CodeIllegalGeneration:   {},
	CodeUnknownMemberID:     {},
	CodeMemberIDRequired:    {},
	CodeFencedInstanceID: {fatal: true,
		advice: "another process joined with the same instance id and took this member's place; give every process its own instance id"},
	CodeGroupMaxSizeReached: {fatal: true,
		advice: "the group is full; raise the coordinator's --max-group-size or run fewer members"},
	CodeInconsistentGroupProtocol: {fatal: true,
		advice: "this member's assignors are not compatible with the group's; offer an assignor every member offers"},
	CodeInvalidSessionTimeout: {fatal: true,
		advice: "the coordinator refuses this session timeout; choose one within its bounds"},
	CodeInvalidRequest: {fatal: true,
		advice: "the coordinator refused this member's configuration"},
	CodeInvalidAssignment:       {},
	CodeNotCoordinator:          {},
	CodeCoordinatorNotAvailable: {},
	CodeUnknownGroup:            {},
	CodeUnknownTopic:            {},
	CodeGroupNotEmpty:           {},
	CodeUnauthenticated: {fatal: true,
		advice: "the coordinator requires authentication; give the member a client certificate or a token the coordinator accepts"},
	CodeNotAuthorized: {fatal: true,
		advice: "this member's identity may not do this; grant it the right in the coordinator's policy, or run it with the identity that owns the member"},
	CodeLimitExceeded: {},
	// Shed work: the coordinator did nothing with the call. Retry it on
	// the same coordinator after retry_after_ms; it is not a failure of
	// the coordinator, and it renewed no lease.
	CodeCoordinatorOverloaded: {},
	// Next-generation groups (Reconcile). A fenced member lost its place:
	// it declares its partitions lost and joins again.
	CodeFencedMemberEpoch: {},
	// Another member uses the instance id and has not left yet: retry.
	CodeUnreleasedInstanceID: {},
	CodeUnsupportedAssignor: {fatal: true,
		advice: "the coordinator does not know this server-side assignor; choose one of its assignors (regroup serve --help lists them)"},
	CodeGroupProtocolMismatch: {fatal: true,
		advice: "the group uses the other group protocol (classic or next); configure every member of a group with the same Protocol, or use another group id"},
}

// Fatal reports whether a member that receives this code must stop rather
// than retry: its configuration or deployment needs a person's attention.
// Unknown codes (and "") are not fatal.
func (c Code) Fatal() bool {
	return codes[c].fatal
}

// Advice returns what a member's user should do when the member stops on
// this code, e.g. for GROUP_MAX_SIZE_REACHED "the group is full; raise the
// coordinator's --max-group-size or run fewer members". It is empty for
// codes that are not fatal.
func (c Code) Advice() string {
	return codes[c].advice
}

// CodeOf returns the Code of err if it is or wraps an *Error, else "".
func CodeOf(err error) Code {
	if e, ok := err.(*Error); ok {
		return e.Code // the usual case, without errors.As's allocation
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
