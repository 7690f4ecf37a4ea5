package cluster_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/shard"
	"github.com/regroup-dev/regroup/internal/embedetcd"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	"github.com/regroup-dev/regroup/internal/waitfor"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestLimitsSpanShards shows that --max-members and --max-groups cap the
// process, not each shard it leads: one coordinator leads every shard,
// and newcomers to groups of different shards fill one limit.
func TestLimitsSpanShards(t *testing.T) {
	node, err := embedetcd.Start(embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	pr := startProc(t, "a", []string{node.Endpoint()}, func(c *group.Config) { c.MaxMembers, c.MaxGroups = 4, 3 })
	placed(t, pr)
	// Groups in four different shards.
	var ids []string
	seen := map[int]bool{}
	for i := 0; len(ids) < 4; i++ {
		id := fmt.Sprint("g", i)
		if s := shard.Of(id, shards); !seen[s] {
			seen[s] = true
			ids = append(ids, id)
		}
	}
	cli := regroupv1.NewCoordinatorClient(dial(t, pr.addr))
	join := func(id, instance string) regroup.Code {
		_, err := cli.JoinGroup(context.Background(), &regroupv1.JoinGroupRequest{GroupId: id, ClientId: "c", GroupInstanceId: instance,
			SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 10_000,
			Protocols: []*regroupv1.Protocol{{Name: "range", Subscription: &regroupv1.Subscription{Topics: []string{"orders"}}}}})
		return regroup.CodeOf(rpcerr.FromStatus(err))
	}
	// Three dynamic newcomers in three shards are told their ids: three
	// groups and three members of the process.
	for _, id := range ids[:3] {
		waitfor.Until(t, "a newcomer to "+id+" is told its id", func() error {
			if got := join(id, ""); got != regroup.CodeMemberIDRequired {
				return fmt.Errorf("join answered %q", got)
			}
			return nil
		})
	}
	want := func(what, id string, code regroup.Code) {
		t.Helper()
		if got := join(id, ""); got != code {
			t.Fatalf("%s: %q, want %s", what, got, code)
		}
	}
	want("a newcomer to a fourth group, in a fourth shard (the group limit spans the shards)", ids[3], regroup.CodeLimitExceeded)
	want("a fourth newcomer, to the first group", ids[0], regroup.CodeMemberIDRequired)
	want("a fifth newcomer, in another shard (the member limit spans the shards)", ids[1], regroup.CodeCoordinatorOverloaded)
}
