package coordinator

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/regroup-dev/regroup/coordinator/group"
	"github.com/regroup-dev/regroup/coordinator/node"
)

// Every call put into an inbox is either taken, in the order it was put,
// or, once the inbox closes, answered errEnded: none is lost or answered
// twice, however pushes race with takes and with the close.
func TestInboxLosesNoCall(t *testing.T) {
	const pushers, each = 8, 500
	b := &inbox{wake: make(chan struct{}, 1)}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		taken   = map[group.ReqID]int{}
		lastSeq = map[int]int{} // pusher -> last sequence number taken
		ended   = map[group.ReqID]int{}
		refused int
	)
	stop := make(chan struct{})
	takerDone := make(chan struct{})
	go func() { // the tenure's run loop, reduced to taking
		defer close(takerDone)
		for {
			select {
			case <-stop:
				return
			case <-b.wake:
			}
			for _, p := range b.take() {
				if p.call.ch == nil {
					continue
				}
				id := p.call.msg.Req
				pusher, seq := int(id)/each, int(id)%each
				mu.Lock()
				taken[id]++
				if last, ok := lastSeq[pusher]; ok && seq <= last {
					t.Errorf("pusher %d: call %d taken after call %d", pusher, seq, last)
				}
				lastSeq[pusher] = seq
				mu.Unlock()
			}
		}
	}()
	chans := make([][]chan group.Reply, pushers)
	for i := range pushers {
		chans[i] = make([]chan group.Reply, each)
		wg.Go(func() {
			for j := range each {
				ch := make(chan group.Reply, 1)
				chans[i][j] = ch
				if j%7 == 0 {
					b.drop(group.ReqID(1 << 40)) // forgets mix with calls
				}
				if !b.put(queuedCall{ctx: context.Background(), msg: node.Request{Req: group.ReqID(i*each + j)}, ch: ch}) {
					mu.Lock()
					refused++
					mu.Unlock()
					chans[i][j] = nil
				}
			}
		})
	}
	time.Sleep(time.Millisecond) // let some calls be taken before the close
	b.close()
	wg.Wait()
	close(stop)
	<-takerDone
	for _, p := range b.take() { // what the taker had not woken for yet
		if p.call.ch != nil {
			taken[p.call.msg.Req]++
		}
	}
	for i := range pushers {
		for j, ch := range chans[i] {
			if ch == nil {
				continue
			}
			id := group.ReqID(i*each + j)
			select {
			case r := <-ch:
				if r.Err != errEnded || r.Req != id {
					t.Fatalf("call %d answered %+v, want errEnded", id, r)
				}
				ended[id]++
			default:
			}
			if n := taken[id] + ended[id]; n != 1 {
				t.Fatalf("call %d: taken %d times and ended %d times, want once in all", id, taken[id], ended[id])
			}
		}
	}
	if len(taken)+len(ended)+refused != pushers*each {
		t.Fatalf("%d taken + %d ended + %d refused, want %d calls", len(taken), len(ended), refused, pushers*each)
	}
	if b.put(queuedCall{ch: make(chan group.Reply, 1)}) {
		t.Fatal("a closed inbox took a call")
	}
}
