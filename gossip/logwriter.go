package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// memberlistLogWriter turns memberlist's "[LEVEL] memberlist: msg" lines
// into slog records: DEBUG and INFO at debug level (memberlist's chatter),
// WARN and ERR at warn (memberlist logs expected failures such as a
// push/pull with a dead peer as ERR, so error level would cry wolf).
type memberlistLogWriter struct {
	logger *slog.Logger
}

// newMemberlistLogger returns the *log.Logger memberlist writes to.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(memberlistLogWriter{logger: l.With("component", "memberlist")}, "", 0)
}

// Write implements io.Writer; log.Logger calls it once per line.
func (w memberlistLogWriter) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(p)
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}

// parseMemberlistLine splits a memberlist log line into a level and the
// message without the level tag, the "memberlist: " prefix and the newline.
func parseMemberlistLine(p []byte) (slog.Level, string) {
	line := bytes.TrimRight(p, "\r\n")
	level := slog.LevelDebug
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			switch string(line[1:end]) {
			case "WARN", "ERR", "ERROR":
				level = slog.LevelWarn
			}
			line = bytes.TrimLeft(line[end+1:], " ")
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	return level, string(line)
}
