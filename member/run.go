package member

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup/member/fsm"
)

func jitter() float64 { return rand.Float64() }

// answer is a request's outcome or a callback's end, for the run loop.
type answer struct {
	id       uint64
	msg      proto.Message
	err      error
	callback bool
}

// Run joins the group and keeps the member in it until ctx ends; then it
// revokes every partition and leaves (a static member only releases its
// partitions, unless LeaveOnStop). It returns nil after a clean stop, or an
// error that says what went wrong if the member cannot continue (another
// process took its instance id, the group is full, its assignors are
// incompatible...). Coordinator trouble is retried, not returned. Run may
// be called once.
func (m *Member) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("regroup: member: Run was already called")
	}
	defer m.tr.close()
	// Requests and callbacks outlive ctx: the member still has to revoke
	// and leave after it ends.
	life, stopLife := context.WithCancel(context.Background())
	defer stopLife()
	answers := make(chan answer, 16)
	cbs := newCallbackRunner(life, m.cfg.Listener, answers)
	defer cbs.stop()

	m.log.Info("joining", "endpoints", m.cfg.Endpoints, "topics", m.cfg.Topics, "protocol", m.cfg.Protocol, "cooperative", m.machine.Cooperative())
	out := m.machine.Start(time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	done := ctx.Done()
	var stopDeadline <-chan time.Time
	for {
		m.apply(life, out, answers, cbs)
		if out.Done {
			cbs.drain(m.cfg.RebalanceTimeout)
			if out.Err != nil {
				m.log.Error("member stopped", "error", out.Err)
			} else {
				m.log.Info("member stopped")
			}
			return out.Err
		}
		resetTimer(timer, m.machine.NextDeadline())
		select {
		case a := <-answers:
			if a.callback {
				out = m.machine.CallbackDone(time.Now(), a.id)
			} else {
				out = m.machine.Response(time.Now(), a.id, a.msg, a.err)
			}
		case <-timer.C:
			out = m.machine.Tick(time.Now())
		case <-done:
			done = nil
			m.log.Info("stopping: revoking partitions and leaving")
			stopDeadline = time.After(m.cfg.RebalanceTimeout + m.cfg.SessionTimeout)
			out = m.machine.Stop(time.Now())
		case <-stopDeadline:
			m.log.Warn("stopping took too long; giving up without leaving")
			m.setAssignment(nil)
			return nil
		case d := <-m.pause:
			time.Sleep(d) // the whole member stands still, as in a stop-the-world pause
			out = m.machine.Tick(time.Now())
		}
	}
}

func resetTimer(t *time.Timer, at time.Time) {
	t.Stop()
	d := time.Hour
	if !at.IsZero() {
		d = max(time.Until(at), 0)
	}
	t.Reset(d)
}

// apply carries out one step's output.
func (m *Member) apply(life context.Context, out fsm.Output, answers chan<- answer, cbs *callbackRunner) {
	for _, e := range out.Events {
		switch e.Kind {
		case fsm.EventRetry, fsm.EventOverload, fsm.EventUnknownTopics:
			m.log.Warn(e.Detail)
		case fsm.EventLost, fsm.EventFatal:
			m.log.Error(e.Detail)
		case fsm.EventJoined, fsm.EventAssignment:
			m.log.Info(e.Detail, "member", m.machine.MemberID())
		default:
			m.log.Debug(e.Detail, "member", m.machine.MemberID())
		}
	}
	for _, r := range out.Requests {
		go func() {
			ctx, cancel := context.WithTimeout(life, r.Timeout)
			defer cancel()
			send := m.tr.call
			if r.Probe {
				send = m.tr.probe
			}
			msg, err := send(ctx, r.Msg)
			select {
			case answers <- answer{id: r.ID, msg: msg, err: err}:
			case <-life.Done():
			}
		}()
	}
	for _, c := range out.Callbacks {
		cbs.enqueue(c)
	}
	m.setAssignment(m.machine.Assignment())
}

// setAssignment publishes the member's state.
func (m *Member) setAssignment(a []Partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.assignment = a
	c := Change{State: m.machine.State(), MemberID: m.machine.MemberID(), Generation: m.machine.Generation(), Assignment: a}
	if c.State == m.last.State && c.Generation == m.last.Generation && c.MemberID == m.last.MemberID && slices.Equal(c.Assignment, m.last.Assignment) {
		return
	}
	m.last = c
	c.Time = time.Now()
	select {
	case m.changes <- c:
	default:
	}
}
