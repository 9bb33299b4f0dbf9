package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lni/dragonboat/v4/logger"
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
