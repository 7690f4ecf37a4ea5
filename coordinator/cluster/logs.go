package cluster

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// shardLogger is the logger of one shard's election and of its terms'
// news (coordinator.Config.TermLogger): their Info lines (campaigning,
// elected, loaded, resigned) come once per shard, 64 times over for one
// coordinator of a default cluster, so they are logged at Debug; the
// Process says what it leads in one line (noteLed). Warnings and errors
// pass as they are, and the groups' news (rebalances, members removed,
// topics changed) goes to the shard's ordinary logger.
type shardLogger struct{ hclog.Logger }

func demote(l hclog.Logger) hclog.Logger { return shardLogger{l} }

// Info implements hclog.Logger at Debug.
func (l shardLogger) Info(msg string, args ...any) { l.Logger.Debug(msg, args...) }

// Log implements hclog.Logger, with Info at Debug.
func (l shardLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Info {
		level = hclog.Debug
	}
	l.Logger.Log(level, msg, args...)
}

// With implements hclog.Logger.
func (l shardLogger) With(args ...any) hclog.Logger { return shardLogger{l.Logger.With(args...)} }

// Named implements hclog.Logger.
func (l shardLogger) Named(name string) hclog.Logger { return shardLogger{l.Logger.Named(name)} }

// ResetNamed implements hclog.Logger.
func (l shardLogger) ResetNamed(name string) hclog.Logger {
	return shardLogger{l.Logger.ResetNamed(name)}
}

// ranges writes the shards led, in order, as ranges: "0-3,7,9-10".
func ranges(led []int) string {
	var b strings.Builder
	for i := 0; i < len(led); {
		j := i
		for j+1 < len(led) && led[j+1] == led[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j == i {
			fmt.Fprint(&b, led[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", led[i], led[j])
		}
		i = j + 1
	}
	return b.String()
}

// noteLed logs the shards this process leads when they changed since the
// last call, with p.mu held.
func (p *Process) noteLed() {
	led := p.Led()
	if slices.Equal(led, p.logged) {
		return
	}
	p.logged = led
	p.log.Info("shards led by this coordinator", "count", len(led), "of", len(p.servers), "shards", ranges(led))
}
