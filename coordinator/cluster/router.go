package cluster

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator"
	"github.com/regroup-dev/regroup/coordinator/auth"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// The process's gRPC services route every call of a group to the
// coordinator of the group's shard, which serves it when this process
// leads the shard and otherwise answers NOT_COORDINATOR with the shard
// leader's address (Admin calls are forwarded there). The topic registry
// is shared: its calls go to shard 0's coordinator, and every leader
// follows the changes (coordinator/store.TopicWatcher).

// topicShard is the shard whose coordinator answers the topic registry's
// calls.
const topicShard = 0

// Register registers the Coordinator and Admin services on srv.
func (p *Process) Register(srv grpc.ServiceRegistrar) {
	regroupv1.RegisterCoordinatorServer(srv, p)
	regroupv1.RegisterAdminServer(srv, p)
}

// of returns the coordinator of group id's shard, or the error that
// answers a call with an invalid group id.
func (p *Process) of(id string) (*coordinator.Server, error) {
	if err := group.ValidateGroupID(id); err != nil {
		return nil, rpcerr.ToStatus(err)
	}
	return p.servers[shard.Of(id, len(p.servers))], nil
}

// JoinGroup implements the Coordinator service.
func (p *Process) JoinGroup(ctx context.Context, req *regroupv1.JoinGroupRequest) (*regroupv1.JoinGroupResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.JoinGroup(ctx, req)
}

// SyncGroup implements the Coordinator service.
func (p *Process) SyncGroup(ctx context.Context, req *regroupv1.SyncGroupRequest) (*regroupv1.SyncGroupResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.SyncGroup(ctx, req)
}

// Heartbeat implements the Coordinator service.
func (p *Process) Heartbeat(ctx context.Context, req *regroupv1.HeartbeatRequest) (*regroupv1.HeartbeatResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.Heartbeat(ctx, req)
}

// LeaveGroup implements the Coordinator service.
func (p *Process) LeaveGroup(ctx context.Context, req *regroupv1.LeaveGroupRequest) (*regroupv1.LeaveGroupResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.LeaveGroup(ctx, req)
}

// Reconcile implements the Coordinator service.
func (p *Process) Reconcile(ctx context.Context, req *regroupv1.ReconcileRequest) (*regroupv1.ReconcileResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.Reconcile(ctx, req)
}

// FindCoordinator implements the Coordinator service: the leader of the
// group's shard, and every live coordinator, that one first.
func (p *Process) FindCoordinator(ctx context.Context, req *regroupv1.FindCoordinatorRequest) (*regroupv1.FindCoordinatorResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	resp, err := s.FindCoordinator(ctx, req)
	if err != nil {
		return nil, err
	}
	if live := p.live.Load(); live != nil {
		resp.Coordinators = leaderFirst(*live, resp.GetLeaderAddress())
	}
	return resp, nil
}

// leaderFirst returns addrs with leader moved (or added) to the front.
func leaderFirst(addrs []string, leader string) []string {
	out := slices.DeleteFunc(slices.Clone(addrs), func(a string) bool { return a == leader })
	if leader != "" {
		out = append([]string{leader}, out...)
	}
	return out
}

// DescribeGroup implements the Admin service.
func (p *Process) DescribeGroup(ctx context.Context, req *regroupv1.DescribeGroupRequest) (*regroupv1.DescribeGroupResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.DescribeGroup(ctx, req)
}

// WatchGroup implements the Admin service.
func (p *Process) WatchGroup(req *regroupv1.WatchGroupRequest, stream grpc.ServerStreamingServer[regroupv1.WatchGroupResponse]) error {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return err
	}
	return s.WatchGroup(req, stream)
}

// RemoveMembers implements the Admin service.
func (p *Process) RemoveMembers(ctx context.Context, req *regroupv1.RemoveMembersRequest) (*regroupv1.RemoveMembersResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.RemoveMembers(ctx, req)
}

// DeleteGroup implements the Admin service.
func (p *Process) DeleteGroup(ctx context.Context, req *regroupv1.DeleteGroupRequest) (*regroupv1.DeleteGroupResponse, error) {
	s, err := p.of(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	return s.DeleteGroup(ctx, req)
}

// ListTopics implements the Admin service.
func (p *Process) ListTopics(ctx context.Context, req *regroupv1.ListTopicsRequest) (*regroupv1.ListTopicsResponse, error) {
	return p.servers[topicShard].ListTopics(ctx, req)
}

// PutTopic implements the Admin service.
func (p *Process) PutTopic(ctx context.Context, req *regroupv1.PutTopicRequest) (*regroupv1.PutTopicResponse, error) {
	return p.servers[topicShard].PutTopic(ctx, req)
}

// DeleteTopic implements the Admin service.
func (p *Process) DeleteTopic(ctx context.Context, req *regroupv1.DeleteTopicRequest) (*regroupv1.DeleteTopicResponse, error) {
	return p.servers[topicShard].DeleteTopic(ctx, req)
}

// ListGroups implements the Admin service: the groups of every shard. A
// call forwarded by another coordinator gets the groups of the shards this
// one leads, and their numbers. Otherwise this one lists its own shards
// and asks the leader of each other shard not yet listed (forwarding the
// call through that shard's coordinator), which answers for every shard
// it leads; a shard that moved in between is asked for again, up to
// listRounds times, and the call fails, naming the shards, rather than
// leave one out.
func (p *Process) ListGroups(ctx context.Context, req *regroupv1.ListGroupsRequest) (*regroupv1.ListGroupsResponse, error) {
	n := len(p.servers)
	listed := make([]bool, n)
	resp := &regroupv1.ListGroupsResponse{}
	var lastErr error
	local := func(i int) {
		groups, err := p.servers[i].LocalGroups()
		if err != nil {
			lastErr = err
			return
		}
		listed[i] = true
		resp.Groups = append(resp.Groups, groups...)
	}
	if coordinator.Forwarded(ctx) {
		for i, s := range p.servers {
			if s.Leading() {
				local(i)
			}
		}
		if lastErr != nil && !slices.Contains(listed, true) {
			return nil, lastErr
		}
		resp.Shards = shardsWhere(listed, true)
		return resp, nil
	}
	for round := 0; round < listRounds && slices.Contains(listed, false); round++ {
		failed := map[string]bool{} // leaders that did not answer this round
		for i, s := range p.servers {
			if listed[i] {
				continue
			}
			if s.Leading() {
				local(i)
				continue
			}
			leader := p.electors[i].Leader()
			if failed[leader] {
				continue // asked already: the next round asks again
			}
			r, err := s.ListGroups(ctx, req)
			if err != nil {
				lastErr, failed[leader] = err, true
				continue
			}
			fresh := make([]bool, n)
			for _, sh := range r.GetShards() {
				if sh >= 0 && int(sh) < n && !listed[sh] {
					listed[sh], fresh[sh] = true, true
				}
			}
			for _, g := range r.GetGroups() {
				if fresh[shard.Of(g.GetGroupId(), n)] {
					resp.Groups = append(resp.Groups, g)
				}
			}
		}
	}
	if missing := shardsWhere(listed, false); len(missing) > 0 {
		if regroup.CodeOf(rpcerr.FromStatus(lastErr)) == regroup.CodeCoordinatorOverloaded {
			return nil, lastErr // with its back-off hint
		}
		why := "their leaders moved while they were listed"
		if lastErr != nil {
			why = fmt.Sprintf("their leaders moved or did not answer (last: %v)", lastErr)
		}
		return nil, rpcerr.ToStatus(regroup.Errorf(regroup.CodeCoordinatorNotAvailable,
			"the groups of shards %v could not be listed: %s; retry shortly", missing, why))
	}
	slices.SortFunc(resp.Groups, func(a, b *regroupv1.GroupSummary) int { return cmp.Compare(a.GetGroupId(), b.GetGroupId()) })
	resp.Shards = shardsWhere(listed, true)
	return resp, nil
}

// listRounds is how many times ListGroups asks for a shard not yet listed.
const listRounds = 3

// shardsWhere returns the numbers of the shards whose flag is v.
func shardsWhere(flags []bool, v bool) []int32 {
	var out []int32
	for i, f := range flags {
		if f == v {
			out = append(out, int32(i))
		}
	}
	return out
}

// DescribeCluster implements the Admin service: this coordinator, every
// live one, and each shard's leader, groups and members (counted from a
// ListGroups of the whole cluster, or for the shards this one leads alone
// when that fails). It is never forwarded.
func (p *Process) DescribeCluster(ctx context.Context, req *regroupv1.DescribeClusterRequest) (*regroupv1.DescribeClusterResponse, error) {
	resp, err := p.servers[0].DescribeCluster(ctx, req)
	if err != nil {
		return nil, err
	}
	if live := p.live.Load(); live != nil {
		resp.Coordinators = slices.Clone(*live)
	}
	if p.Leading() {
		resp.Role = regroupv1.CoordinatorRole_COORDINATOR_ROLE_LEADER
	}
	n := len(p.servers)
	groups, members, counted := make([]int32, n), make([]int32, n), make([]bool, n)
	lctx, cancel := context.WithTimeout(ctx, describeListTimeout)
	all, err := p.ListGroups(lctx, &regroupv1.ListGroupsRequest{})
	cancel()
	// Only the groups the caller may describe count: the other leaders'
	// answers hold only those, and so must this one's part.
	count := func(id string, m int32) {
		if auth.MayDescribe(ctx, id) {
			i := shard.Of(id, n)
			groups[i]++
			members[i] += m
		}
	}
	if err == nil {
		for i := range counted {
			counted[i] = true
		}
		for _, g := range all.GetGroups() {
			count(g.GetGroupId(), g.GetMembers())
		}
	} else {
		for i, s := range p.servers {
			counted[i] = s.Leading()
		}
		for _, st := range p.GroupStats() {
			count(st.ID, int32(st.Members))
		}
	}
	for i, e := range p.electors {
		resp.Shards = append(resp.Shards, &regroupv1.ShardStatus{Shard: int32(i), LeaderAddress: e.Leader(), Groups: groups[i], Members: members[i], Counted: counted[i]})
	}
	return resp, nil
}

// describeListTimeout bounds the listing of the cluster's groups that
// DescribeCluster counts from.
const describeListTimeout = 5 * time.Second
