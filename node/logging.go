package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/lni/dragonboat/v4/logger"

	"shardlog/ids"
)

var dragonboatLogOnce sync.Once

// setupDragonboatLogging sends dragonboat's loggers into slog once per process
// (dragonboat panics on a second SetLoggerFactory). Later nodes in the same process
// (tests) share the first node's handler.
func setupDragonboatLogging(log *slog.Logger, level slog.Level) {
	dragonboatLogOnce.Do(func() {
		logger.SetLoggerFactory(func(pkg string) logger.ILogger {
			return &dbLogger{log: log.With("pkg", pkg), level: level}
		})
	})
}

// dbLogger adapts slog to dragonboat's ILogger.
type dbLogger struct {
	log   *slog.Logger
	mu    sync.Mutex
	level slog.Level
}

func (l *dbLogger) SetLevel(lv logger.LogLevel) {
	// dragonboat packages call SetLevel at init; our configured floor wins when higher.
	var s slog.Level
	switch lv {
	case logger.CRITICAL, logger.ERROR:
		s = slog.LevelError
	case logger.WARNING:
		s = slog.LevelWarn
	case logger.INFO:
		s = slog.LevelInfo
	default:
		s = slog.LevelDebug
	}
	l.mu.Lock()
	if s > l.level {
		l.level = s
	}
	l.mu.Unlock()
}

func (l *dbLogger) logf(lv slog.Level, format string, args ...any) {
	l.mu.Lock()
	floor := l.level
	l.mu.Unlock()
	if lv < floor {
		return
	}
	l.log.Log(context.Background(), lv, fmt.Sprintf(format, args...))
}

func (l *dbLogger) Debugf(format string, args ...any)   { l.logf(slog.LevelDebug, format, args...) }
func (l *dbLogger) Infof(format string, args ...any)    { l.logf(slog.LevelInfo, format, args...) }
func (l *dbLogger) Warningf(format string, args ...any) { l.logf(slog.LevelWarn, format, args...) }
func (l *dbLogger) Errorf(format string, args ...any)   { l.logf(slog.LevelError, format, args...) }

// Panicf must panic: dragonboat relies on it for broken invariants.
func (l *dbLogger) Panicf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic(msg)
}

// numHandler tags every record of a node's logger with the node's readable number
// ("node"), once the meta group has given it one, and with its 64-bit ID
// ("node_id") until then: the number is allocated after the logger is made.
type numHandler struct {
	inner slog.Handler
	num   *atomic.Uint32
	id    ids.NodeID
}

func (h numHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h numHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	if num := h.num.Load(); num != 0 {
		r.AddAttrs(slog.Uint64("node", uint64(num)))
	} else {
		r.AddAttrs(slog.Uint64("node_id", uint64(h.id)))
	}
	return h.inner.Handle(ctx, r)
}

func (h numHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return numHandler{inner: h.inner.WithAttrs(as), num: h.num, id: h.id}
}

func (h numHandler) WithGroup(name string) slog.Handler {
	return numHandler{inner: h.inner.WithGroup(name), num: h.num, id: h.id}
}
