package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

func groupsWatchCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "watch GROUP",
		Short: "Follow a group live: state changes, rebalances, removals",
		Long: `Follow a group live, one line per event, until interrupted: first its current
state, then every state change, rebalance started (with its cause) and done
(with its duration and the partitions it moved and revoked), member removed
or replaced, and refused assignment. With -o json, one JSON object per line.

--timeout bounds only the wait for the first line. When the watch is lost
(the coordinator restarts or fails over, the network drops, or the watcher
read too slowly to keep up), a notice goes to stderr and the watch starts
again, with its current state first, until interrupted. A group that does
not exist, or that you may not describe, ends it (exit status 1).`,
		Example: `  regroup groups watch orders-consumers
  regroup groups watch orders-consumers -o json | jq -c 'select(.rebalance_done)'`,
		Args: oneArg("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchGroup(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), c, args[0])
		},
	}
}

// watchGroup prints the events of a group until ctx ends (a nil error) or
// the coordinator refuses the watch; a watch lost after it started is
// started again. A first watch that cannot start is an error.
func watchGroup(ctx context.Context, out, notices io.Writer, c *client, id string) error {
	retry := 200 * time.Millisecond
	for first := true; ; first = false {
		got, err := watchOnce(ctx, out, c, id, first)
		switch {
		case ctx.Err() != nil:
			return nil // interrupted
		case first && !got && err != nil:
			return c.explain(err)
		case err == nil:
			err = fmt.Errorf("the coordinator at %s ended the watch", c.endpoint)
		case !lostWatch(err):
			return c.explain(err)
		}
		if got {
			retry = 200 * time.Millisecond
		}
		fmt.Fprintf(notices, "regroup: lost the watch of group %q (%v); watching again in %v\n", id, c.explain(err), retry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, 5*time.Second)
	}
}

// lostWatch reports whether a watch that failed with err is worth starting
// again: the coordinator went away or moved, or dropped a slow watcher, as
// opposed to refusing it.
func lostWatch(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	switch regroup.CodeOf(rpcerr.FromStatus(err)) {
	case regroup.CodeNotCoordinator, regroup.CodeCoordinatorNotAvailable:
		return true
	case "":
		switch status.Code(err) {
		case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.DeadlineExceeded, codes.Unknown:
			return true
		}
	}
	return false
}

// watchOnce runs one watch stream until it ends: a nil error when the
// coordinator closed it cleanly. got reports whether any event arrived.
// The first watch of a run must give its first line within --timeout.
func watchOnce(ctx context.Context, out io.Writer, c *client, id string, first bool) (got bool, err error) {
	admin, conn, err := c.admin()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var firstTimeout *time.Timer
	if first {
		firstTimeout = time.AfterFunc(c.timeout, cancel)
		defer firstTimeout.Stop()
	}
	stream, err := admin.WatchGroup(sctx, &regroupv1.WatchGroupRequest{GroupId: id})
	for err == nil {
		var msg *regroupv1.WatchGroupResponse
		msg, err = stream.Recv()
		if first && !got && !firstTimeout.Stop() && ctx.Err() == nil {
			return false, fmt.Errorf("cannot reach the coordinator at %s: no answer within %v; check that it runs there, or raise --timeout", c.endpoint, c.timeout)
		}
		if err != nil {
			break
		}
		got = true
		if c.output == "json" {
			err = printJSONLine(out, msg)
		} else {
			_, err = fmt.Fprintln(out, watchLine(msg))
		}
	}
	if errors.Is(err, io.EOF) {
		return got, nil
	}
	return got, err
}

// watchLine is the line `groups watch` prints for msg. Causes and reasons
// come from clients, or from records an older coordinator stored: control
// and format characters are escaped, so that nothing a client sent can
// move the cursor or forge lines on an operator's terminal.
func watchLine(msg *regroupv1.WatchGroupResponse) string {
	return msg.GetTime().AsTime().Local().Format("15:04:05.000") + " " + group.Sanitize(describeEvent(msg))
}

// describeEvent says what a watch message reports, in words.
func describeEvent(msg *regroupv1.WatchGroupResponse) string {
	switch ev := msg.GetEvent().(type) {
	case *regroupv1.WatchGroupResponse_Snapshot:
		s := ev.Snapshot
		return fmt.Sprintf("%s at generation %d: %d members, protocol %s, leader %s",
			stateName(s.GetState()), s.GetGeneration(), s.GetMembers(), orNone(s.GetProtocolName()), orNone(s.GetLeaderId()))
	case *regroupv1.WatchGroupResponse_StateChanged:
		return fmt.Sprintf("state %s -> %s", stateName(ev.StateChanged.GetFrom()), stateName(ev.StateChanged.GetTo()))
	case *regroupv1.WatchGroupResponse_RebalanceStarted:
		return fmt.Sprintf("rebalance started (%s): %s", ev.RebalanceStarted.GetCauseKind(), ev.RebalanceStarted.GetCause())
	case *regroupv1.WatchGroupResponse_RebalanceDone:
		r := ev.RebalanceDone
		s := fmt.Sprintf("rebalance done: generation %d in %s (join %s), %d members, %d moved, %d revoked, %d unowned",
			r.GetGeneration(), humanDuration(r.GetDuration().AsDuration()), humanDuration(r.GetJoinDuration().AsDuration()),
			r.GetMembers(), r.GetPartitionsMoved(), r.GetPartitionsRevoked(), r.GetPartitionsUnowned())
		if n := r.GetPartitionsLost(); n > 0 {
			s += fmt.Sprintf(", %d lost by members", n)
		}
		return s
	case *regroupv1.WatchGroupResponse_MemberRemoved:
		return fmt.Sprintf("member removed: %s: %s", ev.MemberRemoved.GetMemberId(), ev.MemberRemoved.GetReason())
	case *regroupv1.WatchGroupResponse_MemberReplaced:
		return fmt.Sprintf("static member replaced without a rebalance: %s", ev.MemberReplaced.GetDetail())
	case *regroupv1.WatchGroupResponse_AssignmentRefused:
		return fmt.Sprintf("assignment of leader %s refused: %s", ev.AssignmentRefused.GetLeaderId(), ev.AssignmentRefused.GetReason())
	}
	return fmt.Sprintf("unknown event at generation %d (this regroup is older than the coordinator; -o json shows it)", msg.GetGeneration())
}
