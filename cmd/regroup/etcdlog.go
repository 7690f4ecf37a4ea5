package main

import (
	"slices"
	"sort"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdLogger returns a zap logger, for etcd's server and client, that
// writes to log one level lower than etcd's own: etcd warns about things a
// Regroup operator cannot act on (its request limit, a single port for
// HTTP and gRPC), and Regroup logs what matters (a write failed, the lease
// may have expired). While quiet is set (the embedded etcd is stopping)
// nothing is written.
func etcdLogger(log hclog.Logger, quiet *atomic.Bool) *zap.Logger {
	return zap.New(&hclogCore{log: log, quiet: quiet})
}

// hclogCore is a zapcore.Core that writes to an hclog.Logger.
type hclogCore struct {
	log    hclog.Logger
	quiet  *atomic.Bool
	fields []zapcore.Field
}

// level maps a zap level to the hclog level Regroup logs it at.
func level(l zapcore.Level) hclog.Level {
	switch {
	case l >= zapcore.DPanicLevel:
		return hclog.Error
	case l >= zapcore.ErrorLevel:
		return hclog.Warn
	case l >= zapcore.WarnLevel:
		return hclog.Debug
	}
	return hclog.Trace
}

func (c *hclogCore) Enabled(l zapcore.Level) bool {
	return !c.quiet.Load() && c.log.GetLevel() <= level(l)
}

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{log: c.log, quiet: c.quiet, fields: append(slices.Clone(c.fields), fields...)}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, enc.Fields[k])
	}
	c.log.Log(level(e.Level), e.Message, args...)
	return nil
}

func (c *hclogCore) Sync() error { return nil }
