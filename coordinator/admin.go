package coordinator

import (
	"context"
	"errors"
	"maps"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/store"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// existing returns the actor of an existing group, or UNKNOWN_GROUP.
func (s *Server) existing(id string) (*actor, error) {
	if err := group.ValidateGroupID(id); err != nil {
		return nil, err
	}
	a, err := s.lookup(id, false)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, regroup.Errorf(regroup.CodeUnknownGroup, "group %q does not exist", id)
	}
	return a, nil
}

// inspect runs f on a group under its lock; it returns false if the group
// was dropped meanwhile.
func (a *actor) inspect(f func(g *group.Group)) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stale() {
		return false
	}
	f(a.g)
	return true
}

// ListGroups implements the Admin service.
func (s *Server) ListGroups(ctx context.Context, req *regroupv1.ListGroupsRequest) (*regroupv1.ListGroupsResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.ListGroups); handled {
		return resp, err
	}
	t, err := s.serving()
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	resp := &regroupv1.ListGroupsResponse{}
	for _, id := range t.groupIDs() {
		v, ok := t.groups.Load(id)
		if !ok {
			continue
		}
		v.(*actor).inspect(func(g *group.Group) { resp.Groups = append(resp.Groups, g.Summary()) })
	}
	return resp, nil
}

// DescribeGroup implements the Admin service.
func (s *Server) DescribeGroup(ctx context.Context, req *regroupv1.DescribeGroupRequest) (*regroupv1.DescribeGroupResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.DescribeGroup); handled {
		return resp, err
	}
	for {
		a, err := s.existing(req.GetGroupId())
		if err != nil {
			return nil, rpcerr.ToStatus(err)
		}
		var resp *regroupv1.DescribeGroupResponse
		// The description shares messages with the group (the rebalance in
		// progress): copy it under the lock, as gRPC encodes it after.
		if a.inspect(func(g *group.Group) { resp = proto.CloneOf(g.Describe()) }) {
			return resp, nil
		}
	}
}

// RemoveMembers implements the Admin service.
func (s *Server) RemoveMembers(ctx context.Context, req *regroupv1.RemoveMembersRequest) (*regroupv1.RemoveMembersResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.RemoveMembers); handled {
		return resp, err
	}
	if _, err := s.existing(req.GetGroupId()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	leave := &regroupv1.LeaveGroupRequest{GroupId: req.GetGroupId()}
	for _, inst := range req.GetGroupInstanceIds() {
		leave.Members = append(leave.Members, &regroupv1.LeaveMember{GroupInstanceId: inst, Reason: req.GetReason()})
	}
	for _, m := range leave.GetMembers() {
		if m.GetGroupInstanceId() == "" {
			return nil, rpcerr.ToStatus(regroup.Errorf(regroup.CodeInvalidRequest, "group_instance_ids: an instance id is empty").With(regroup.MetaField, "group_instance_ids"))
		}
	}
	resp, err := s.LeaveGroup(ctx, leave)
	if err != nil {
		return nil, err
	}
	return &regroupv1.RemoveMembersResponse{Members: resp.GetMembers()}, nil
}

// DeleteGroup implements the Admin service.
func (s *Server) DeleteGroup(ctx context.Context, req *regroupv1.DeleteGroupRequest) (*regroupv1.DeleteGroupResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.DeleteGroup); handled {
		return resp, err
	}
	for {
		a, err := s.existing(req.GetGroupId())
		if err != nil {
			return nil, rpcerr.ToStatus(err)
		}
		var derr error
		ok := a.inspect(func(g *group.Group) {
			a.step(func() group.Output {
				var out group.Output
				out, derr = g.Delete(s.clock())
				return out
			})
		})
		if !ok {
			continue
		}
		if derr != nil {
			return nil, rpcerr.ToStatus(derr)
		}
		return &regroupv1.DeleteGroupResponse{}, nil
	}
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
	s.mu.Lock()
	reg := t.registry
	s.mu.Unlock()
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

// leading returns the tenure being served, with s.mu held, or the error to
// refuse a topic change with.
func (s *Server) leading() (*tenure, error) {
	t := s.cur.Load()
	if t == nil || !t.valid(s.clock()) {
		return nil, s.notLeading()
	}
	return t, nil
}

// PutTopic implements the Admin service.
func (s *Server) PutTopic(ctx context.Context, req *regroupv1.PutTopicRequest) (*regroupv1.PutTopicResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.PutTopic); handled {
		return resp, err
	}
	if err := group.ValidateTopic(req.GetTopic()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	tp := req.GetTopic()
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.leading()
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	prev := t.registry[tp.GetName()]
	if prev == tp.GetPartitions() {
		return &regroupv1.PutTopicResponse{PreviousPartitions: prev}, nil
	}
	if err := s.writeTopic(ctx, t, func(ctx context.Context) error { return t.st.PutTopic(ctx, tp) }); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	reg := maps.Clone(t.registry)
	reg[tp.GetName()] = tp.GetPartitions()
	s.log.Info("topic changed", "topic", tp.GetName(), "from", prev, "to", tp.GetPartitions())
	return &regroupv1.PutTopicResponse{PreviousPartitions: prev, RebalancedGroups: s.setRegistry(t, reg)}, nil
}

// DeleteTopic implements the Admin service.
func (s *Server) DeleteTopic(ctx context.Context, req *regroupv1.DeleteTopicRequest) (*regroupv1.DeleteTopicResponse, error) {
	if resp, handled, err := forward(ctx, s, req, regroupv1.AdminClient.DeleteTopic); handled {
		return resp, err
	}
	if err := group.ValidateTopic(&regroupv1.Topic{Name: req.GetName(), Partitions: 1}); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.leading()
	if err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	if _, ok := t.registry[req.GetName()]; !ok {
		return nil, rpcerr.ToStatus(regroup.Errorf(regroup.CodeUnknownTopic, "topic %q does not exist", req.GetName()))
	}
	if err := s.writeTopic(ctx, t, func(ctx context.Context) error { return t.st.DeleteTopic(ctx, req.GetName()) }); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	reg := maps.Clone(t.registry)
	delete(reg, req.GetName())
	s.log.Info("topic deleted", "topic", req.GetName())
	return &regroupv1.DeleteTopicResponse{RebalancedGroups: s.setRegistry(t, reg)}, nil
}

// writeTopic runs a topic write of tenure t, with s.mu held. A fenced write
// ends the tenure.
func (s *Server) writeTopic(ctx context.Context, t *tenure, write func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := write(ctx)
	s.cfg.Metrics.StoreWrite(time.Since(start), err)
	if err != nil {
		if errors.Is(err, store.ErrFenced) {
			go s.stepDown(t, "a write was fenced: another coordinator was elected")
		}
		return writeError(err)
	}
	return nil
}

// setRegistry installs a new registry snapshot in t (with s.mu held) and
// hands it to every group; it returns the groups that rebalance because of
// it.
func (s *Server) setRegistry(t *tenure, reg map[string]int32) []string {
	t.registry = reg
	var rebalanced []string
	for _, id := range t.groupIDs() {
		v, ok := t.groups.Load(id)
		if !ok {
			continue
		}
		a := v.(*actor)
		a.inspect(func(g *group.Group) {
			a.step(func() group.Output {
				out, change := g.SetTopics(s.clock(), reg)
				if change != "" {
					rebalanced = append(rebalanced, id)
					s.log.Info("group rebalances for a topic change", "group", id, "change", change)
				}
				return out
			})
		})
	}
	return rebalanced
}

// DescribeCluster implements the Admin service. It describes the
// coordinator called and is never forwarded.
func (s *Server) DescribeCluster(ctx context.Context, _ *regroupv1.DescribeClusterRequest) (*regroupv1.DescribeClusterResponse, error) {
	resp := &regroupv1.DescribeClusterResponse{
		Role:          regroupv1.CoordinatorRole_COORDINATOR_ROLE_FOLLOWER,
		Address:       s.cfg.Address,
		LeaderAddress: s.leader(),
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
