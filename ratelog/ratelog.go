// Package ratelog writes log lines that a client can cause (refused
// handshakes, joins, events) at a bounded rate, so that an attacker cannot
// fill the log: past the rate, lines are counted instead of written, and
// the next line written says how many were left out.
package ratelog

import (
	"context"
	"log/slog"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Defaults of New.
const (
	DefaultPerSecond = 10
	DefaultBurst     = 50
)

// Logger is a rate-limited *slog.Logger. The zero value is not usable.
type Logger struct {
	log        *slog.Logger
	lim        *rate.Limiter
	suppressed atomic.Int64
	onSuppress func()
}

// New writes through log at most perSecond lines a second, in bursts of
// burst (zero: the defaults). onSuppress, when set, is called for every
// line left out (for a metric).
func New(log *slog.Logger, perSecond float64, burst int, onSuppress func()) *Logger {
	if perSecond <= 0 {
		perSecond = DefaultPerSecond
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	return &Logger{log: log, lim: rate.NewLimiter(rate.Limit(perSecond), burst), onSuppress: onSuppress}
}

// Log writes the line, or counts it when over the rate. A line written
// after some were left out carries suppressed=<count>.
func (l *Logger) Log(ctx context.Context, level slog.Level, msg string, attrs ...any) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	if !l.lim.Allow() {
		l.suppressed.Add(1)
		if l.onSuppress != nil {
			l.onSuppress()
		}
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, slog.Int64("suppressed", n))
	}
	l.log.Log(ctx, level, msg, attrs...)
}
