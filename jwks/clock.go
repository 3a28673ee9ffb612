package jwks

import "time"

// Clock is the time source of a KeySet. Every scheduling decision (refresh
// timers, the unknown-kid rate limit, back-off, freshness) reads it, so tests
// can drive a KeySet through hours of simulated time without sleeping; see
// jwkstest.Clock. Fetch timeouts bound real network I/O and therefore use the
// wall clock.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer a KeySet uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// RealClock is the wall clock; the default Clock.
type RealClock struct{}

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer implements Clock.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
