package simulator

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/member/fsm"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
	"github.com/regroup-dev/regroup/simulator/scenario"
)

// network carries messages between member nodes and the coordinator. Each
// message gets a delay drawn from delay and is lost with probability loss;
// a node cut off by a partition loses everything it sends or is sent,
// including messages in flight when the partition starts. Messages on one
// link in one direction arrive in the order they were sent, as on one TCP
// connection.
type network struct {
	delay scenario.Dist
	loss  float64
}

// errConnection is what a member hears when no coordinator serves (during
// a failover): the connection is refused, a transport error it retries.
var errConnection = errors.New("rpc error: code = Unavailable desc = connection refused: no coordinator is serving")

// errDeadline is what a member hears when it gives up waiting for a reply,
// as a gRPC call's deadline would tell it.
var errDeadline = errors.New("rpc error: code = DeadlineExceeded desc = context deadline exceeded")

// transmit decides the fate of a message on n's link: its arrival time, or
// false if it is lost.
func (s *sim) transmit(n *node, up bool) (int64, bool) {
	s.metrics.Messages++
	if n.partitioned {
		return 0, false
	}
	if s.net.loss > 0 && s.rng.Float64() < s.net.loss {
		return 0, false
	}
	at := s.now + s.draw(s.net.delay)
	last := &n.downLast
	if up {
		last = &n.upLast
	}
	at = max(at, *last)
	*last = at
	return at, true
}

// sendRequest sends request r of process p to the coordinator, and arms
// the member's own timeout for it.
func (s *sim) sendRequest(p *process, r fsm.Request) {
	p.inflight = append(p.inflight, inflight{id: r.ID, deadline: p.toGlobal(p.localNow(s.now) + int64(r.Timeout))})
	at, ok := s.transmit(p.node, true)
	if s.opts.Messages {
		s.traceMessage(p.name(), "coord", r.Msg, nil, ok)
	}
	if ok {
		s.at(at, event{kind: evToCoord, proc: p, tok: r.ID, msg: r.Msg, dur: int64(r.Timeout)})
	}
}

// sendReply sends the answer to request id of process p.
func (s *sim) sendReply(p *process, id uint64, msg proto.Message, err error) {
	at, ok := s.transmit(p.node, false)
	if s.opts.Messages {
		s.traceMessage("coord", p.name(), msg, err, ok)
	}
	if ok {
		s.at(at, event{kind: evToMember, proc: p, tok: id, msg: msg, err: err})
	}
}

func (s *sim) traceMessage(from, to string, msg proto.Message, err error, ok bool) {
	what := describe(msg, err)
	if !ok {
		what += " (lost)"
	}
	s.tracef(from, "-> %s %s", to, what)
}

// describe summarizes a message for the trace.
func describe(msg proto.Message, err error) string {
	if err != nil {
		var e *regroup.Error
		if errors.As(err, &e) {
			return "error " + string(e.Code)
		}
		return "error " + err.Error()
	}
	switch m := msg.(type) {
	case *regroupv1.JoinGroupRequest:
		return fmt.Sprintf("JoinGroup member=%q", m.GetMemberId())
	case *regroupv1.SyncGroupRequest:
		return fmt.Sprintf("SyncGroup gen=%d member=%s assignments=%d", m.GetGeneration(), m.GetMemberId(), len(m.GetAssignments()))
	case *regroupv1.HeartbeatRequest:
		return fmt.Sprintf("Heartbeat gen=%d member=%s", m.GetGeneration(), m.GetMemberId())
	case *regroupv1.LeaveGroupRequest:
		var ids []string
		for _, e := range m.GetMembers() {
			ids = append(ids, e.GetMemberId())
		}
		return "LeaveGroup " + strings.Join(ids, ",")
	case *regroupv1.ReconcileRequest:
		what := fmt.Sprintf("Reconcile epoch=%d member=%q owned=%s hold=%dms", m.GetMemberEpoch(), m.GetMemberId(), fmtTopicParts(m.GetOwned()), m.GetHoldMs())
		if n := m.GetPartitionsLost(); n > 0 {
			what += fmt.Sprintf(" lost=%d", n)
		}
		return what
	case *regroupv1.JoinGroupResponse:
		return fmt.Sprintf("JoinGroup ok gen=%d leader=%s", m.GetGeneration(), m.GetLeaderId())
	case *regroupv1.SyncGroupResponse:
		return fmt.Sprintf("SyncGroup ok %s", fmtTopicParts(m.GetAssignment().GetPartitions()))
	case *regroupv1.HeartbeatResponse:
		return "Heartbeat ok"
	case *regroupv1.LeaveGroupResponse:
		return "LeaveGroup ok"
	case *regroupv1.ReconcileResponse:
		what := fmt.Sprintf("Reconcile ok epoch=%d member=%s", m.GetMemberEpoch(), m.GetMemberId())
		if a := m.GetAssignment(); a != nil {
			what += fmt.Sprintf(" assignment=%s @%d.%d", fmtTopicParts(a.GetPartitions()), a.GetFencingToken()>>32, a.GetFencingToken()&(1<<32-1))
		}
		return what
	}
	return fmt.Sprintf("%T", msg)
}
