package authz

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Current holds the Authorizer in force and is the one entry point of every
// adapter (gRPC ext_authz, the HTTP authorization mode, any other): an
// adapter translates its protocol into a Request, calls Check, and renders
// the Decision. Everything else about answering is Current's: the reload
// swap, the answer before the first config, a panic, a request the adapter
// could not read, and counting and logging every decision.
//
// Concurrency: a Current is safe for concurrent use. The Authorizer is read
// through an atomic pointer on every Check, so a reload stores a new one
// without locking and in-flight checks finish on the old one.
type Current struct {
	a   atomic.Pointer[Authorizer]
	log *slog.Logger
}

// CurrentOptions configure a Current.
type CurrentOptions struct {
	// Logger receives the panics Check recovers, with their stacks; nil
	// discards them.
	Logger *slog.Logger
}

// NewCurrent returns a Current holding no Authorizer yet.
func NewCurrent(o CurrentOptions) *Current {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Current{log: o.Logger}
}

// Store puts a in force.
func (c *Current) Store(a *Authorizer) { c.a.Store(a) }

// Load returns the Authorizer in force, nil before the first Store.
func (c *Current) Load() *Authorizer { return c.a.Load() }

// Refusal is an adapter's answer for a request it cannot translate: a
// reason of the closed set (ReasonBadRequest, ReasonHeadersTooLarge) and a
// description. The zero Refusal refuses nothing.
type Refusal struct {
	Reason      Reason
	Description string
}

// Refuse is a Refusal with this reason and description.
func Refuse(reason Reason, description string) Refusal {
	return Refusal{Reason: reason, Description: description}
}

// Check asks the Authorizer in force about the request read translates.
// Every call ends in a Decision, however broken the input:
//
//   - before the first Store: a 503 keys_unavailable denial (nothing is
//     loaded, so no key is), with retry-after, not counted;
//   - a refusal from read: a denial with its reason and description;
//   - a panic in read or in deciding: a denial with internal_error (a bug
//     costs one request, not the process), logged with its stack;
//
// and every decision is counted and logged by the Authorizer that made it.
func (c *Current) Check(ctx context.Context, read func() (*Request, Refusal)) Decision {
	return c.CheckOn(ctx, c.a.Load(), read)
}

// CheckOn is Check on a, an Authorizer this Current held, rather than the
// one in force now: for an adapter that read the request for a (keeping
// only the headers a.HeadersRead names) before deciding, so that a reload
// in between cannot hand the request to an Authorizer reading headers the
// adapter left out. A nil a is answered as before the first Store.
func (c *Current) CheckOn(ctx context.Context, a *Authorizer, read func() (*Request, Refusal)) (d Decision) {
	if a == nil {
		d = Decision{Reason: ReasonKeysUnavailable, Description: "no configuration loaded yet"}
		d.finishDeny(DefaultRealm, BodyJSON)
		return d
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("check panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			d = a.Deny(ReasonInternalError, "internal error")
			a.Observe(ctx, &d, time.Since(start))
		}
	}()
	r, refused := read()
	if refused.Reason != "" {
		d = a.Deny(refused.Reason, refused.Description)
		a.Observe(ctx, &d, time.Since(start))
		return d
	}
	return a.Check(ctx, r)
}

// KeysRemoved tells the Authorizer in force that provider's key set dropped
// kids: tokens they signed stop verifying at once (their cached
// verifications are dropped). A key set's OnKeysRemoved calls it.
func (c *Current) KeysRemoved(provider string, kids []string) {
	if a := c.a.Load(); a != nil {
		a.KeysRemoved(provider, kids)
	}
}
