package coordinator

import (
	"context"
	"maps"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
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
	if a.gone {
		return false
	}
	f(a.g)
	return true
}

// ListGroups implements the Admin service.
func (s *Server) ListGroups(ctx context.Context, _ *regroupv1.ListGroupsRequest) (*regroupv1.ListGroupsResponse, error) {
	resp := &regroupv1.ListGroupsResponse{}
	for _, id := range s.groupIDs() {
		v, ok := s.groups.Load(id)
		if !ok {
			continue
		}
		v.(*actor).inspect(func(g *group.Group) { resp.Groups = append(resp.Groups, g.Summary()) })
	}
	return resp, nil
}

// DescribeGroup implements the Admin service.
func (s *Server) DescribeGroup(ctx context.Context, req *regroupv1.DescribeGroupRequest) (*regroupv1.DescribeGroupResponse, error) {
	for {
		a, err := s.existing(req.GetGroupId())
		if err != nil {
			return nil, rpcerr.ToStatus(err)
		}
		var resp *regroupv1.DescribeGroupResponse
		// Copy under the lock: the description shares messages, such as the
		// rebalance in progress, that the group changes later.
		if a.inspect(func(g *group.Group) { resp = proto.CloneOf(g.Describe()) }) {
			return resp, nil
		}
	}
}

// RemoveMembers implements the Admin service.
func (s *Server) RemoveMembers(ctx context.Context, req *regroupv1.RemoveMembersRequest) (*regroupv1.RemoveMembersResponse, error) {
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
	for {
		a, err := s.existing(req.GetGroupId())
		if err != nil {
			return nil, rpcerr.ToStatus(err)
		}
		var derr error
		ok := a.inspect(func(g *group.Group) {
			var out group.Output
			out, derr = g.Delete(s.clock())
			if derr == nil {
				a.apply(out)
			}
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
func (s *Server) ListTopics(ctx context.Context, _ *regroupv1.ListTopicsRequest) (*regroupv1.ListTopicsResponse, error) {
	s.mu.Lock()
	reg := s.registry
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

// PutTopic implements the Admin service.
func (s *Server) PutTopic(ctx context.Context, req *regroupv1.PutTopicRequest) (*regroupv1.PutTopicResponse, error) {
	if err := group.ValidateTopic(req.GetTopic()); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	t := req.GetTopic()
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.registry[t.GetName()]
	if prev == t.GetPartitions() {
		return &regroupv1.PutTopicResponse{PreviousPartitions: prev}, nil
	}
	if err := s.writeTopic(ctx, func(ctx context.Context) error { return s.store.PutTopic(ctx, t) }); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	reg := maps.Clone(s.registry)
	reg[t.GetName()] = t.GetPartitions()
	s.log.Info("topic changed", "topic", t.GetName(), "from", prev, "to", t.GetPartitions())
	return &regroupv1.PutTopicResponse{PreviousPartitions: prev, RebalancedGroups: s.setRegistry(reg)}, nil
}

// DeleteTopic implements the Admin service.
func (s *Server) DeleteTopic(ctx context.Context, req *regroupv1.DeleteTopicRequest) (*regroupv1.DeleteTopicResponse, error) {
	if err := group.ValidateTopic(&regroupv1.Topic{Name: req.GetName(), Partitions: 1}); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.registry[req.GetName()]; !ok {
		return nil, rpcerr.ToStatus(regroup.Errorf(regroup.CodeUnknownTopic, "topic %q does not exist", req.GetName()))
	}
	if err := s.writeTopic(ctx, func(ctx context.Context) error { return s.store.DeleteTopic(ctx, req.GetName()) }); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	reg := maps.Clone(s.registry)
	delete(reg, req.GetName())
	s.log.Info("topic deleted", "topic", req.GetName())
	return &regroupv1.DeleteTopicResponse{RebalancedGroups: s.setRegistry(reg)}, nil
}

func (s *Server) writeTopic(ctx context.Context, write func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if err := write(ctx); err != nil {
		return writeError(err)
	}
	return nil
}

// setRegistry installs a new registry snapshot (with s.mu held) and hands
// it to every group; it returns the groups that rebalance because of it.
func (s *Server) setRegistry(reg map[string]int32) []string {
	s.registry = reg
	var rebalanced []string
	for _, id := range s.groupIDs() {
		v, ok := s.groups.Load(id)
		if !ok {
			continue
		}
		a := v.(*actor)
		a.inspect(func(g *group.Group) {
			out, change := g.SetTopics(s.clock(), reg)
			if change != "" {
				rebalanced = append(rebalanced, id)
				s.log.Info("group rebalances for a topic change", "group", id, "change", change)
			}
			a.apply(out)
		})
	}
	return rebalanced
}
