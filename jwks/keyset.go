package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

var _ authz.KeySource = (*KeySet)(nil)

// Status is a KeySet's state for /debug/keys and /readyz: public
// parameters only.
type Status struct {
	Name string `json:"name"`
	// Source is uri, discovery, file or inline.
	Source string `json:"source"`
	// Location is the URI, the issuer (discovery) or the file path.
	Location string `json:"location,omitempty"`
	// JWKSURI is the JWKS URL in use (resolved through discovery).
	JWKSURI   string    `json:"jwks_uri,omitempty"`
	Keys      []KeyInfo `json:"keys"`
	FetchedAt time.Time `json:"fetched_at,omitzero"`
	// NextRefresh is when the next scheduled fetch may start.
	NextRefresh time.Time `json:"next_refresh,omitzero"`
	// LastError is the error of the last fetch; empty after a good one.
	LastError string `json:"last_error,omitempty"`
	Ready     bool   `json:"ready"`
}

// KeySet is one provider's key set. Create it with New, then Start it;
// Close it when done. Key and Keys are safe for concurrent use at any time.
type KeySet struct {
	opts      Options
	src       source
	shown     string // the location fit to print: RedactURI for URLs
	client    *http.Client
	ownClient bool
	clock     Clock
	log       *slog.Logger

	keys  atomic.Pointer[generation]
	ready chan struct{} // closed when the first usable set is in place
	wg    sync.WaitGroup

	mu           sync.Mutex
	ctx          context.Context // nil until Start
	cancel       context.CancelFunc
	closed       bool
	flight       *flight   // the fetch in progress, if any
	lastStart    time.Time // start of the last fetch, any reason
	nextRefresh  time.Time
	failures     int // consecutive
	lastErr      string
	fetchedAt    time.Time
	jwksURI      string
	doc          []byte // the document behind keys, to re-filter on inherit
	discoveredAt time.Time
	rediscover   bool
	validators   validators
	file         fileStamp
	suspect      suspect
}

type flight struct{ done chan struct{} }

// New checks opts (Options.Validate, and a Name) and builds a KeySet. It
// does no I/O.
func New(opts Options) (*KeySet, error) {
	var errs []error
	if opts.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if err := opts.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("jwks: provider %q: %w", opts.Name, errors.Join(errs...))
	}
	opts = opts.withDefaults()
	p := &KeySet{src: sourceOf(opts), ready: make(chan struct{})}
	p.shown = p.src.location()
	if p.src.local() {
		opts.CacheFile = ""
	} else {
		p.shown = RedactURI(p.shown)
	}
	if u, ok := p.src.(uriSource); ok {
		p.jwksURI = u.uri
	}
	p.opts = opts
	p.clock = opts.Clock
	if p.clock == nil {
		p.clock = RealClock{}
	}
	p.log = opts.Logger
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("provider", opts.Name)
	p.client = opts.HTTPClient
	if p.client == nil {
		p.client, p.ownClient = defaultClient(opts.AllowInsecureHTTP), true
	}
	p.opts.Previous = nil // only read here: do not keep the chain of predecessors alive
	if prev := opts.Previous; prev != nil && prev.src == p.src {
		p.inherit(prev)
	}
	return p, nil
}

// inherit takes prev's keys and fetch state: the keys belong to the source,
// not to the tuning, so a reload that changes only the tuning must not throw
// working keys away (during an IdP outage it would turn every token into
// keys_unavailable until the IdP returns).
func (p *KeySet) inherit(prev *KeySet) {
	prev.mu.Lock() // finish stores keys under it: keys and state agree
	defer prev.mu.Unlock()
	set := prev.keys.Load()
	if set != nil && !slices.Equal(prev.opts.Algorithms, p.opts.Algorithms) {
		// The allowlist filters the keys: apply the new one to the same
		// document.
		next, err := parseKeySet(prev.doc, p.opts.Algorithms)
		if err != nil {
			set = nil
		} else {
			next.fromCache = set.fromCache
			set = next
		}
	}
	if set != nil {
		p.keys.Store(set)
		close(p.ready)
		p.doc = prev.doc
	}
	p.fetchedAt, p.lastErr, p.failures = prev.fetchedAt, prev.lastErr, prev.failures
	p.lastStart, p.validators, p.file = prev.lastStart, prev.validators, prev.file
	p.jwksURI, p.discoveredAt = prev.jwksURI, prev.discoveredAt
	// Keep the old schedule, but no later than the new refresh_interval
	// allows.
	p.nextRefresh = prev.nextRefresh
	if !p.fetchedAt.IsZero() {
		if due := p.fetchedAt.Add(p.opts.RefreshInterval); due.Before(p.nextRefresh) {
			p.nextRefresh = due
		}
	}
}

// Start readies the first keys (the cache file of a URI or discovery
// source, an inline set, the first read of a file) and, unless the source
// is inline, starts the goroutine that fetches at once and then on
// schedule. It returns without waiting for the first fetch; use WaitReady.
// The KeySet stops when ctx ends or Close is called. Calls after the first
// are no-ops.
func (p *KeySet) Start(ctx context.Context) {
	p.mu.Lock()
	if p.ctx != nil || p.closed {
		p.mu.Unlock()
		return
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	p.mu.Unlock()
	p.opts.Metrics.init(p.opts.Name, p.Ready())
	if s := p.keys.Load(); s != nil {
		p.opts.Metrics.setKeys(p.opts.Name, len(s.keys))
	}
	p.src.start(p)
	if p.src.refreshes() {
		p.wg.Go(func() { p.loop(p.ctx) })
	}
}

// Close stops the KeySet's goroutines and waits for them. Keys stay
// served. It is idempotent.
func (p *KeySet) Close() {
	p.mu.Lock()
	p.closed = true
	cancel := p.cancel
	p.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	p.wg.Wait()
	if p.ownClient {
		p.client.CloseIdleConnections()
	}
}

// Name is the provider name the KeySet was built for (Options.Name).
func (p *KeySet) Name() string { return p.opts.Name }

// SameSource reports whether the KeySet reads its keys where o says to:
// the same kind and location (for inline content, the same content). A
// KeySet built with o and this one as Options.Previous starts from its
// keys.
func (p *KeySet) SameSource(o Options) bool {
	return o.Validate() == nil && p.src == sourceOf(o)
}

// Ready reports whether the KeySet has a usable key set.
func (p *KeySet) Ready() bool { return p.keys.Load() != nil }

// WaitReady blocks until the KeySet has a usable key set or ctx ends; then
// the error names the last fetch error.
func (p *KeySet) WaitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		st := p.Status()
		return fmt.Errorf("jwks: provider %q not ready (last error: %q): %w", p.opts.Name, st.LastError, ctx.Err())
	}
}

// Key returns the usable key with this kid. On a miss it joins the fetch in
// progress, or starts one unless a fetch started less than
// MinRefreshInterval ago, waits for it (bounded by ctx and FetchTimeout) and
// looks again. It returns authz.ErrNoKeys when the KeySet has never had
// keys, authz.ErrUnknownKey otherwise; an empty kid never matches (kid-less
// tokens use Keys) and never causes a refetch. A hit takes no lock and
// allocates nothing.
func (p *KeySet) Key(ctx context.Context, kid string) (*authz.Key, error) {
	s := p.keys.Load()
	if s == nil {
		return nil, authz.ErrNoKeys
	}
	if k, ok := s.byKID[kid]; ok {
		return k, nil
	}
	if kid == "" {
		return nil, authz.ErrUnknownKey
	}
	if f := p.refetch(); f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", authz.ErrUnknownKey, ctx.Err())
		}
	}
	// Look again even without a refetch: one may have ended since the
	// first look.
	if k, ok := p.keys.Load().byKID[kid]; ok {
		return k, nil
	}
	return nil, authz.ErrUnknownKey
}

// Keys returns every usable key, for tokens without a kid. The slice is
// shared: callers must not modify it.
func (p *KeySet) Keys(context.Context) ([]*authz.Key, error) {
	s := p.keys.Load()
	if s == nil {
		return nil, authz.ErrNoKeys
	}
	return s.keys, nil
}

// Status reports the KeySet's state.
func (p *KeySet) Status() Status {
	p.mu.Lock()
	st := Status{
		Name:        p.opts.Name,
		Source:      p.src.kind(),
		Location:    p.shown,
		JWKSURI:     RedactURI(p.jwksURI),
		FetchedAt:   p.fetchedAt,
		NextRefresh: p.dueLocked(),
		LastError:   p.lastErr,
	}
	if !p.src.refreshes() || p.ctx == nil {
		st.NextRefresh = time.Time{}
	}
	p.mu.Unlock()
	st.Keys = []KeyInfo{}
	if s := p.keys.Load(); s != nil {
		st.Ready = true
		st.Keys = slices.Clone(s.info)
	}
	return st
}

// refetch returns the fetch to wait for after a kid miss: the one in
// progress, a new one, or nil when the rate limit forbids one.
func (p *KeySet) refetch() *flight {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flight != nil {
		return p.flight
	}
	if p.ctx == nil || p.closed || !p.src.refreshes() ||
		p.clock.Now().Sub(p.lastStart) < p.opts.MinRefreshInterval {
		return nil
	}
	p.opts.Metrics.refetched(p.opts.Name)
	return p.startLocked()
}

// startLocked starts a fetch on its own goroutine, so that no caller's
// context can cancel it for the others.
func (p *KeySet) startLocked() *flight {
	f := &flight{done: make(chan struct{})}
	p.flight = f
	p.lastStart = p.clock.Now()
	ctx := p.ctx
	p.wg.Go(func() {
		defer close(f.done)
		// A fetch cut short by Close is neither a result nor news.
		if o := p.src.read(ctx, p); o.err == nil || ctx.Err() == nil {
			p.finish(o)
		}
		p.mu.Lock()
		p.flight = nil
		p.mu.Unlock()
	})
	return f
}

// loop fetches whenever the schedule says so, until ctx ends.
func (p *KeySet) loop(ctx context.Context) {
	for {
		for {
			p.mu.Lock()
			wait := p.dueLocked().Sub(p.clock.Now())
			p.mu.Unlock()
			if wait <= 0 {
				break
			}
			t := p.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		f := p.flight
		if f == nil {
			f = p.startLocked()
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-f.done:
		}
	}
}

// dueLocked is when the next scheduled fetch may start: never sooner than
// MinRefreshInterval after the last one started.
func (p *KeySet) dueLocked() time.Time {
	due := p.nextRefresh
	if floor := p.lastStart.Add(p.opts.MinRefreshInterval); !p.lastStart.IsZero() && floor.After(due) {
		due = floor
	}
	return due
}
