package auth

import (
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// stamp is what tells that a file changed: its modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

// reloader holds a value parsed from some files and parses them again when
// one of them changes (its modification time or size), checking at most
// once per interval. A parse that fails keeps the previous value and logs
// an error once per change. Its methods are safe for concurrent use; the
// check costs one stat per file, outside any lock readers wait on.
type reloader[T any] struct {
	what     string // "TLS certificate", for the logs
	files    []string
	parse    func() (T, error)
	interval time.Duration
	log      hclog.Logger
	clock    func() time.Time

	val  atomic.Pointer[T]
	next atomic.Int64 // unix nanoseconds of the next check

	mu     sync.Mutex // one check at a time
	stamps []stamp
}

// newReloader parses the files once; an error here is the caller's to
// report (the files are wrong at start).
func newReloader[T any](what string, files []string, interval time.Duration, log hclog.Logger, parse func() (T, error)) (*reloader[T], error) {
	r := &reloader[T]{what: what, files: files, parse: parse, interval: interval, log: log, clock: time.Now}
	r.stamps = r.stat()
	v, err := parse()
	if err != nil {
		return nil, err
	}
	r.val.Store(&v)
	r.next.Store(r.clock().Add(interval).UnixNano())
	return r, nil
}

// get returns the current value, parsing the files again first if the
// check is due and one of them changed.
func (r *reloader[T]) get() T {
	if now := r.clock(); now.UnixNano() >= r.next.Load() && r.mu.TryLock() {
		r.next.Store(now.Add(r.interval).UnixNano())
		r.check()
		r.mu.Unlock()
	}
	return *r.val.Load()
}

// check reloads the files if they changed, with r.mu held.
func (r *reloader[T]) check() {
	st := r.stat()
	if slices.Equal(st, r.stamps) {
		return
	}
	r.stamps = st
	v, err := r.parse()
	if err != nil {
		r.log.Error("cannot reload "+r.what+"; keeping the previous one until the files are fixed", "files", r.files, "error", err)
		return
	}
	r.val.Store(&v)
	r.log.Info("reloaded "+r.what, "files", r.files)
}

// stat returns the files' stamps; a file that cannot be read has the zero
// stamp, so that its return counts as a change.
func (r *reloader[T]) stat() []stamp {
	st := make([]stamp, len(r.files))
	for i, f := range r.files {
		if fi, err := os.Stat(f); err == nil {
			st[i] = stamp{mod: fi.ModTime(), size: fi.Size()}
		}
	}
	return st
}
