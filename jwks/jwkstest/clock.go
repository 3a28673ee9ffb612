package jwkstest

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/jwks"
)

var _ jwks.Clock = (*Clock)(nil)

// Clock is a fake jwks.Clock. Time stands still until Advance, which fires
// every timer that has come due. Safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewClock returns a Clock reading start; the zero time means
// 2026-01-01T00:00:00Z.
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Clock{now: start}
}

// Now implements jwks.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer implements jwks.Clock. A timer of d <= 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) jwks.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	ft := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		ft.ch <- c.now
		return ft
	}
	c.timers = append(c.timers, ft)
	return ft
}

// Advance moves the clock forward by d and fires the timers due by then, in
// order of their deadlines.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(a, b int) bool { return c.timers[a].at.Before(c.timers[b].at) })
	n := 0
	for _, ft := range c.timers {
		if ft.at.After(c.now) {
			c.timers[n] = ft
			n++
			continue
		}
		ft.ch <- c.now // buffered, and a timer fires once
	}
	clear(c.timers[n:])
	c.timers = c.timers[:n]
}

// Timers counts pending timers.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next is the deadline of the earliest pending timer; false when none.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	next := c.timers[0].at
	for _, ft := range c.timers[1:] {
		if ft.at.Before(next) {
			next = ft.at
		}
	}
	return next, true
}

// WaitTimers waits (in real time, up to 10 s) until at least n timers are
// pending: the goroutines under test have come to rest. It fails t on
// timeout.
func (c *Clock) WaitTimers(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Timers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("jwkstest: %d timers pending, want %d", c.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type fakeTimer struct {
	c  *Clock
	at time.Time
	ch chan time.Time
}

func (ft *fakeTimer) C() <-chan time.Time { return ft.ch }

// Stop implements jwks.Timer.
func (ft *fakeTimer) Stop() bool {
	ft.c.mu.Lock()
	defer ft.c.mu.Unlock()
	for n, other := range ft.c.timers {
		if other == ft {
			ft.c.timers = append(ft.c.timers[:n], ft.c.timers[n+1:]...)
			return true
		}
	}
	return false
}
