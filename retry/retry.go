// Package retry holds what the Redis consumers share to wait between
// attempts: an exponential backoff and a sleep that ends with its context.
package retry

import (
	"context"
	"time"
)

// Backoff doubles its delay from Min up to Max. The zero value is not
// usable: set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	d        time.Duration
}

// Next returns the delay before the next attempt: Min first, then twice
// the last, at most Max.
func (b *Backoff) Next() time.Duration {
	if b.d == 0 {
		b.d = b.Min
	} else {
		b.d = min(b.d*2, b.Max)
	}
	return b.d
}

// Reset starts again from Min (after a success).
func (b *Backoff) Reset() { b.d = 0 }

// Sleep waits d; false when ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
