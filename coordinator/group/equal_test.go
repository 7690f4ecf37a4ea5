package group

import (
	"testing"

	"google.golang.org/protobuf/proto"

	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// TestProtocolEqualFieldCounts fails when a field is added to a message that
// protocolEqual compares field by field: it must then compare the new one.
func TestProtocolEqualFieldCounts(t *testing.T) {
	for _, c := range []struct {
		m      proto.Message
		fields int
	}{{&regroupv1.Protocol{}, 2}, {&regroupv1.Subscription{}, 5}, {&regroupv1.TopicPartitions{}, 2}} {
		d := c.m.ProtoReflect().Descriptor()
		if n := d.Fields().Len(); n != c.fields {
			t.Errorf("%s has %d fields, protocolEqual compares %d: update it", d.FullName(), n, c.fields)
		}
	}
}

// TestProtocolEqualIsProtoEqual compares protocolEqual with proto.Equal on
// every pair of a set of protocols that differ in one field each.
func TestProtocolEqualIsProtoEqual(t *testing.T) {
	base := func() *regroupv1.Protocol {
		return &regroupv1.Protocol{Name: "sticky", Subscription: &regroupv1.Subscription{
			Topics:          []string{"a", "b"},
			OwnedPartitions: []*regroupv1.TopicPartitions{{Topic: "a", Partitions: []int32{1, 2}}},
			Generation:      3,
			Rack:            "r1",
			UserData:        []byte{1},
		}}
	}
	variants := []*regroupv1.Protocol{nil, {}, {Name: "sticky"}, base()}
	for _, change := range []func(p *regroupv1.Protocol){
		func(p *regroupv1.Protocol) { p.Name = "range" },
		func(p *regroupv1.Protocol) { p.Subscription = &regroupv1.Subscription{} },
		func(p *regroupv1.Protocol) { p.Subscription.Topics = []string{"a"} },
		func(p *regroupv1.Protocol) { p.Subscription.Topics = nil },
		func(p *regroupv1.Protocol) { p.Subscription.OwnedPartitions[0].Partitions = []int32{1, 3} },
		func(p *regroupv1.Protocol) { p.Subscription.OwnedPartitions[0].Topic = "b" },
		func(p *regroupv1.Protocol) { p.Subscription.OwnedPartitions = nil },
		func(p *regroupv1.Protocol) {
			p.Subscription.OwnedPartitions = append(p.Subscription.OwnedPartitions, nil)
		},
		func(p *regroupv1.Protocol) { p.Subscription.Generation = 4 },
		func(p *regroupv1.Protocol) { p.Subscription.Rack = "" },
		func(p *regroupv1.Protocol) { p.Subscription.UserData = nil },
		func(p *regroupv1.Protocol) { p.Subscription.UserData = []byte{} },
		func(p *regroupv1.Protocol) { p.ProtoReflect().SetUnknown([]byte{0x30, 0x01}) },
		func(p *regroupv1.Protocol) { p.Subscription.ProtoReflect().SetUnknown([]byte{0x30, 0x01}) },
		func(p *regroupv1.Protocol) {
			p.Subscription.OwnedPartitions[0].ProtoReflect().SetUnknown([]byte{0x30, 0x01})
		},
	} {
		p := base()
		change(p)
		variants = append(variants, p)
	}
	for i, x := range variants {
		for j, y := range variants {
			if got, want := protocolEqual(x, y), proto.Equal(x, y); got != want {
				t.Errorf("variants %d and %d: protocolEqual %v, proto.Equal %v", i, j, got, want)
			}
		}
	}
}
