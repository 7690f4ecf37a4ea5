package coordinator

import (
	"sync"
	"time"
)

// wakes runs the timers of a process's tenures on one timer (Shared), so
// that the deadlines that fall due together are served in one wake
// whichever shard they belong to, as one shard's are (timerSlack): a
// process that leads 64 shards with a timer each woke for each shard's
// held heartbeats apart, and answered them in more, smaller writes to the
// members' connections (docs/benchmarks.md, "Shards on one coordinator").
type wakes struct {
	mu    sync.Mutex
	timer *time.Timer
	at    time.Time             // when timer fires; zero while it is stopped
	due   map[*tenure]time.Time // when each armed tenure wants its wake
}

// set asks for t's wake at at (a wall-clock time), replacing any it had.
func (w *wakes) set(t *tenure, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.due == nil {
		w.due = map[*tenure]time.Time{}
	}
	w.due[t] = at
	if w.at.IsZero() || at.Before(w.at) {
		w.reset(at)
	}
}

// clear drops t's wake.
func (w *wakes) clear(t *tenure) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.due, t) // a wake already set for it finds nothing due
}

// reset fires the timer at at, with w.mu held.
func (w *wakes) reset(at time.Time) {
	w.at = at
	d := time.Until(at)
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.fire)
		return
	}
	w.timer.Reset(d)
}

// fire ticks every tenure whose wake is due, or would be within
// timerSlack: their deadlines have come. It sets the timer for the next.
func (w *wakes) fire() {
	w.mu.Lock()
	now := time.Now()
	var ready []*tenure
	var next time.Time
	for t, at := range w.due {
		if !at.After(now.Add(timerSlack)) {
			ready = append(ready, t)
			delete(w.due, t)
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	w.at = time.Time{}
	if !next.IsZero() {
		w.reset(next)
	}
	w.mu.Unlock()
	// Each on its own goroutine, as with a timer each: a shard whose
	// lock is held by a long step delays no other.
	for _, t := range ready {
		go t.tick()
	}
}
