package scenario

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/regroup-dev/regroup"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// Err formats an error as the scenario files show it: "error CODE: message
// [key=value]...", metadata in key order.
func Err(err error) string {
	e, ok := err.(*regroup.Error)
	if !ok {
		return "error " + err.Error()
	}
	s := "error " + string(e.Code) + ": " + e.Message
	for _, k := range slices.Sorted(maps.Keys(e.Metadata)) {
		s += fmt.Sprintf(" [%s=%s]", k, e.Metadata[k])
	}
	return s
}

// Token formats a fencing token as "generation.n".
func Token(tok int64) string { return fmt.Sprintf("%d.%d", tok>>32, tok&0xffffffff) }

// Parts formats partition lists as "topic=0,1 other=2", with sep between
// a topic and its partitions, or "-" for none.
func Parts(tps []*regroupv1.TopicPartitions, sep string) string {
	if len(tps) == 0 {
		return "-"
	}
	var ss []string
	for _, tp := range tps {
		var ps []string
		for _, p := range tp.GetPartitions() {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		ss = append(ss, tp.GetTopic()+sep+strings.Join(ps, ","))
	}
	return strings.Join(ss, " ")
}

// SeqIDs mints member ids "PREFIX-N" with one counter per scenario, and,
// for an empty prefix (the group mints member secrets so; every member in
// the scenarios has a client or instance id), "secret-N" with a counter of
// its own, so that secrets do not renumber members. With PanicPrefix set,
// a prefix starting with it panics, to stand for a bug in a state machine.
type SeqIDs struct {
	PanicPrefix string
	n, secrets  int
}

// MemberID implements coordinator/group.IDSource.
func (s *SeqIDs) MemberID(prefix string) string {
	if s.PanicPrefix != "" && strings.HasPrefix(prefix, s.PanicPrefix) {
		panic("a bug in the group state machine")
	}
	if prefix == "" {
		s.secrets++
		return fmt.Sprintf("secret-%d", s.secrets)
	}
	s.n++
	return fmt.Sprintf("%s-%d", prefix, s.n)
}
