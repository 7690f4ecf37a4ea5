// Package rpcerr converts between regroup's protocol errors and gRPC statuses
// carrying a google.rpc.ErrorInfo, in both directions.
package rpcerr

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
)

// Domain is the ErrorInfo domain of regroup's errors.
const Domain = "regroup.dev"

// grpcCode maps each protocol error to the gRPC code it travels with.
var grpcCode = map[regroup.Code]codes.Code{
	regroup.CodeRebalanceInProgress:       codes.Aborted,
	regroup.CodeIllegalGeneration:         codes.FailedPrecondition,
	regroup.CodeUnknownMemberID:           codes.NotFound,
	regroup.CodeMemberIDRequired:          codes.FailedPrecondition,
	regroup.CodeFencedInstanceID:          codes.FailedPrecondition,
	regroup.CodeFencedMemberEpoch:         codes.FailedPrecondition,
	regroup.CodeUnreleasedInstanceID:      codes.FailedPrecondition,
	regroup.CodeUnsupportedAssignor:       codes.InvalidArgument,
	regroup.CodeGroupProtocolMismatch:     codes.FailedPrecondition,
	regroup.CodeGroupMaxSizeReached:       codes.ResourceExhausted,
	regroup.CodeInconsistentGroupProtocol: codes.FailedPrecondition,
	regroup.CodeInvalidSessionTimeout:     codes.InvalidArgument,
	regroup.CodeInvalidRequest:            codes.InvalidArgument,
	regroup.CodeInvalidAssignment:         codes.InvalidArgument,
	regroup.CodeNotCoordinator:            codes.Unavailable,
	regroup.CodeCoordinatorNotAvailable:   codes.Unavailable,
	regroup.CodeUnknownGroup:              codes.NotFound,
	regroup.CodeUnknownTopic:              codes.NotFound,
	regroup.CodeGroupNotEmpty:             codes.FailedPrecondition,
	regroup.CodeUnauthenticated:           codes.Unauthenticated,
	regroup.CodeNotAuthorized:             codes.PermissionDenied,
	regroup.CodeLimitExceeded:             codes.ResourceExhausted,
	regroup.CodeCoordinatorOverloaded:     codes.Unavailable,
}

// ToStatus converts err into a gRPC status error. A *regroup.Error becomes a
// status with its code's gRPC code and an ErrorInfo; context errors become
// Canceled or DeadlineExceeded; anything else becomes Internal.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var e *regroup.Error
	if !errors.As(err, &e) {
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, err.Error())
		}
		return status.Error(codes.Internal, err.Error())
	}
	c, ok := grpcCode[e.Code]
	if !ok {
		c = codes.Unknown
	}
	st := status.New(c, statusMessage(e))
	withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   string(e.Code),
		Domain:   Domain,
		Metadata: e.Metadata,
	})
	if derr != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// FromStatus converts a gRPC status error carrying a regroup ErrorInfo back
// into a *regroup.Error. Other errors are returned unchanged.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK {
		return err
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != Domain {
			continue
		}
		return &regroup.Error{
			Code:     regroup.Code(info.GetReason()),
			Message:  messageOf(st.Message(), regroup.Code(info.GetReason())),
			Metadata: info.GetMetadata(),
		}
	}
	return err
}

// statusMessage is the status message for e: "CODE: message". Metadata
// travels in the ErrorInfo.
func statusMessage(e *regroup.Error) string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// messageOf undoes statusMessage.
func messageOf(msg string, code regroup.Code) string {
	msg = strings.TrimPrefix(msg, string(code))
	return strings.TrimPrefix(msg, ": ")
}
