package coordinator

import (
	"context"
	"errors"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// inspect runs f on a group of the tenure being served, for an Admin read
// (method), or returns the error that answers it (see tenure.inspect).
func (s *Server) inspect(method, id string, f func(g *group.Group)) error {
	arrived := time.Now()
	for {
		t, err := s.serving()
		if err != nil {
			return err
		}
		if err := t.inspect(method, arrived, id, f); !errors.Is(err, errEnded) {
			return err
		}
	}
}

// change runs an Admin call that changes state through the node and
// returns its answer.
func change[T any](ctx context.Context, s *Server, req proto.Message) (T, error) {
	r, err := s.call(ctx, req)
	return replyOf[T](r, err)
}

// ListGroups implements the Admin service.
func (s *Server) ListGroups(ctx context.Context, req *regroupv1.ListGroupsRequest) (*regroupv1.ListGroupsResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.ListGroups); handled {
		return resp, err
	}
	groups, err := s.LocalGroups()
	if err != nil {
		return nil, err
	}
	return &regroupv1.ListGroupsResponse{Groups: groups}, nil
}

// LocalGroups lists the groups this coordinator serves, never forwarding:
// it fails with NOT_COORDINATOR (or COORDINATOR_NOT_AVAILABLE) unless the
// coordinator leads from the start of the listing to its end, and with
// COORDINATOR_OVERLOADED while it sheds reads.
func (s *Server) LocalGroups() ([]*regroupv1.GroupSummary, error) {
	for {
		t, err := s.serving()
		if err != nil {
			return nil, rpcerr.ToStatus(err)
		}
		groups, err := t.groups(time.Now())
		if errors.Is(err, errEnded) {
			continue // serving says why, or names the next tenure
		}
		return groups, err
	}
}

// groups lists the tenure's groups for an Admin read that arrived at
// arrived, or fails with errEnded.
func (t *tenure) groups(arrived time.Time) ([]*regroupv1.GroupSummary, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended.Load() {
		return nil, errEnded
	}
	if err := t.admit("ListGroups", arrived); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	var groups []*regroupv1.GroupSummary
	for _, id := range t.node.GroupIDs() {
		if g, err := t.node.Group(id); err == nil {
			groups = append(groups, g.Summary())
		}
	}
	return groups, nil
}

// DescribeGroup implements the Admin service.
func (s *Server) DescribeGroup(ctx context.Context, req *regroupv1.DescribeGroupRequest) (*regroupv1.DescribeGroupResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.DescribeGroup); handled {
		return resp, err
	}
	var resp *regroupv1.DescribeGroupResponse
	// The description shares messages with the group (the rebalance in
	// progress): copy it under the lock, as gRPC encodes it after.
	if err := s.inspect("DescribeGroup", req.GetGroupId(), func(g *group.Group) { resp = proto.CloneOf(g.Describe()) }); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return resp, nil
}

// RemoveMembers implements the Admin service.
func (s *Server) RemoveMembers(ctx context.Context, req *regroupv1.RemoveMembersRequest) (*regroupv1.RemoveMembersResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.RemoveMembers); handled {
		return resp, err
	}
	return change[*regroupv1.RemoveMembersResponse](ctx, s, req)
}

// DeleteGroup implements the Admin service.
func (s *Server) DeleteGroup(ctx context.Context, req *regroupv1.DeleteGroupRequest) (*regroupv1.DeleteGroupResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.DeleteGroup); handled {
		return resp, err
	}
	return change[*regroupv1.DeleteGroupResponse](ctx, s, req)
}

// ListTopics implements the Admin service.
func (s *Server) ListTopics(ctx context.Context, req *regroupv1.ListTopicsRequest) (*regroupv1.ListTopicsResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.ListTopics); handled {
		return resp, err
	}
	t, err := s.serving()
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	t.mu.Lock()
	reg := t.node.Registry()
	t.mu.Unlock()
	names := make([]string, 0, len(reg))
	for n := range reg {
		names = append(names, n)
	}
	sort.Strings(names)
	resp := &regroupv1.ListTopicsResponse{}
	for _, n := range names {
		resp.Topics = append(resp.Topics, &regroupv1.Topic{Name: n, Partitions: reg[n]})
	}
	return resp, nil
}

// PutTopic implements the Admin service.
func (s *Server) PutTopic(ctx context.Context, req *regroupv1.PutTopicRequest) (*regroupv1.PutTopicResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.PutTopic); handled {
		return resp, err
	}
	resp, err := change[*regroupv1.PutTopicResponse](ctx, s, req)
	if err == nil && resp.GetPreviousPartitions() != req.GetTopic().GetPartitions() {
		s.log.Info("topic changed", "topic", req.GetTopic().GetName(), "from", resp.GetPreviousPartitions(), "to", req.GetTopic().GetPartitions(),
			"rebalanced_groups", len(resp.GetRebalancedGroups()))
	}
	return resp, err
}

// DeleteTopic implements the Admin service.
func (s *Server) DeleteTopic(ctx context.Context, req *regroupv1.DeleteTopicRequest) (*regroupv1.DeleteTopicResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.DeleteTopic); handled {
		return resp, err
	}
	resp, err := change[*regroupv1.DeleteTopicResponse](ctx, s, req)
	if err == nil {
		s.log.Info("topic deleted", "topic", req.GetName(), "rebalanced_groups", len(resp.GetRebalancedGroups()))
	}
	return resp, err
}

// DescribeCluster implements the Admin service. It describes the
// coordinator called and is never forwarded.
func (s *Server) DescribeCluster(ctx context.Context, _ *regroupv1.DescribeClusterRequest) (*regroupv1.DescribeClusterResponse, error) {
	resp := &regroupv1.DescribeClusterResponse{
		Role:          regroupv1.CoordinatorRole_COORDINATOR_ROLE_FOLLOWER,
		Address:       s.cfg.Address,
		LeaderAddress: s.leader(),
		Coordinators:  s.coordinators(),
	}
	now := s.clock()
	t := s.cur.Load()
	if t == nil || !t.valid(now) {
		return resp, nil
	}
	resp.Role = regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER
	resp.LeadingSince = timestamppb.New(t.since)
	if t.term != nil {
		info := t.term.Info()
		resp.ElectionKey = info.Key
		resp.ElectionRevision = info.Revision
		resp.LeaseId = info.LeaseID
		resp.LeaseTtlMs = info.LeaseTTL.Milliseconds()
		resp.LeaseRemainingMs = max(0, t.term.ValidUntil().Sub(now).Milliseconds())
	}
	return resp, nil
}
