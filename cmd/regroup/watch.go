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

	"github.com/regroup-dev/regroup/coordinator/group"
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

--timeout bounds only the wait for the first line. A watcher that reads too
slowly to keep up is disconnected by the coordinator (exit status 1): run it
again.`,
		Example: `  regroup groups watch orders-consumers
  regroup groups watch orders-consumers -o json | jq -c 'select(.rebalance_done)'`,
		Args: oneArg("GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchGroup(ctx, cmd.OutOrStdout(), c, args[0])
		},
	}
}

// watchGroup prints the events of a group until ctx ends (a nil error) or
// the stream fails.
func watchGroup(ctx context.Context, out io.Writer, c *client, id string) error {
	admin, conn, err := c.admin()
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	firstTimeout := time.AfterFunc(c.timeout, cancel)
	defer firstTimeout.Stop()
	stream, err := admin.WatchGroup(sctx, &regroupv1.WatchGroupRequest{GroupId: id})
	for first := true; err == nil; first = false {
		var msg *regroupv1.WatchGroupResponse
		msg, err = stream.Recv()
		if first && !firstTimeout.Stop() && ctx.Err() == nil {
			return fmt.Errorf("cannot reach the coordinator at %s: no answer within %v; check that it runs there, or raise --timeout", c.endpoint, c.timeout)
		}
		if err != nil {
			break
		}
		if c.output == "json" {
			err = printJSONLine(out, msg)
		} else {
			_, err = fmt.Fprintln(out, watchLine(msg))
		}
	}
	switch {
	case ctx.Err() != nil:
		return nil // interrupted
	case errors.Is(err, io.EOF):
		return fmt.Errorf("the coordinator at %s ended the watch of group %q", c.endpoint, id)
	}
	return c.explain(err)
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
		return fmt.Sprintf("rebalance done: generation %d in %s (join %s), %d members, %d moved, %d revoked, %d unowned",
			r.GetGeneration(), humanDuration(r.GetDuration().AsDuration()), humanDuration(r.GetJoinDuration().AsDuration()),
			r.GetMembers(), r.GetPartitionsMoved(), r.GetPartitionsRevoked(), r.GetPartitionsUnowned())
	case *regroupv1.WatchGroupResponse_MemberRemoved:
		return fmt.Sprintf("member removed: %s: %s", ev.MemberRemoved.GetMemberId(), ev.MemberRemoved.GetReason())
	case *regroupv1.WatchGroupResponse_MemberReplaced:
		return fmt.Sprintf("static member replaced without a rebalance: %s", ev.MemberReplaced.GetDetail())
	case *regroupv1.WatchGroupResponse_AssignmentRefused:
		return fmt.Sprintf("assignment of leader %s refused: %s", ev.AssignmentRefused.GetLeaderId(), ev.AssignmentRefused.GetReason())
	}
	return fmt.Sprintf("unknown event at generation %d (this regroup is older than the coordinator; -o json shows it)", msg.GetGeneration())
}
