package coordinator

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/regroup-dev/regroup/coordinator/store"
	storev1 "github.com/regroup-dev/regroup/proto/regroup/store/v1"
)

// tenure is what a Server holds while it leads: the term's store and the
// groups it serves. A tenure ends once, when the term does (or the Server
// closes); its actors are aborted then and never step again, and the next
// term starts from the store with a new tenure.
type tenure struct {
	st    store.Store
	term  Term // nil for a Server made by New
	since time.Time

	groups sync.Map // group id -> *actor

	// registry and broken are guarded by Server.mu.
	registry map[string]int32
	broken   map[string]error

	tombMu     sync.Mutex
	tombstones map[string]*storev1.GroupRecord

	ended   atomic.Bool
	done    chan struct{} // closed by end
	endOnce sync.Once
}

func newTenure(st store.Store, term Term, now time.Time) *tenure {
	return &tenure{
		st:         st,
		term:       term,
		since:      now,
		registry:   map[string]int32{},
		broken:     map[string]error{},
		tombstones: map[string]*storev1.GroupRecord{},
		done:       make(chan struct{}),
	}
}

// valid reports whether the tenure may still serve at now: it has not
// ended and its term's lease certainly has not expired.
func (t *tenure) valid(now time.Time) bool {
	return !t.ended.Load() && (t.term == nil || now.Before(t.term.ValidUntil()))
}

// end marks the tenure ended and answers every waiting request of its
// groups with err; it returns the number of groups it held. Only the first
// call does anything.
func (t *tenure) end(err error) int {
	n := 0
	t.endOnce.Do(func() {
		t.ended.Store(true)
		t.groups.Range(func(_, v any) bool {
			v.(*actor).abort(err)
			n++
			return true
		})
		close(t.done)
	})
	return n
}
