package jwks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

var _ authz.KeySource = (*KeySet)(nil)

// Defaults of Options.
const (
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
)

// maxDocumentBytes bounds a JWKS or discovery document: a hostile or broken
// endpoint must not exhaust memory.
const maxDocumentBytes = 1 << 20

// Kinds of source, as Status.Source shows them.
const (
	SourceURI       = "uri"
	SourceDiscovery = "discovery"
	SourceFile      = "file"
	SourceInline    = "inline"
)

// Options configure a KeySet. Exactly one of URI, Discovery, File and
// Inline must be set.
type Options struct {
	// Name is the provider name, the metric label. Required.
	Name string
	// Issuer is the provider's issuer. With Discovery the document is
	// fetched from Issuer + ".well-known/openid-configuration" (a "/" is
	// inserted when Issuer lacks one) and its issuer must equal Issuer
	// byte for byte.
	Issuer string
	// URI is the JWKS URL (http or https).
	URI string
	// Discovery finds the JWKS URL through OpenID discovery; it is looked
	// up again every RefreshInterval and after a JWKS fetch answers 404.
	Discovery bool
	// File is a JWKS file, read at Start and re-read when its size, mtime or
	// content change (checked every MinRefreshInterval).
	File string
	// Inline is a JWKS document, parsed once at Start.
	Inline string
	// Algorithms is the provider's allowlist: a JWK whose alg is set and not
	// in it is not usable. Empty: a JWK's alg is not restricted here (the
	// authorizer still enforces its own allowlist).
	Algorithms []string
	// RefreshInterval is the longest time between two fetches; default 15m.
	// A shorter Cache-Control max-age wins.
	RefreshInterval time.Duration
	// MinRefreshInterval is the shortest time between two fetch starts,
	// background and unknown-kid ones alike; default 30s. Also the first
	// retry delay after a failure, and the retry delay while the provider
	// has no keys at all.
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one fetch (discovery and JWKS together); default
	// 5s. It is wall-clock time, as it bounds real I/O.
	FetchTimeout time.Duration
	// AllowInsecureHTTP allows plain-http key sources (URI, the discovery
	// issuer, a discovered jwks_uri, redirects) whatever their host. When
	// false only loopback hosts (127.0.0.0/8, ::1, localhost) may be reached
	// over plain http: anyone on the path could swap the keys.
	AllowInsecureHTTP bool
	// Previous is the key set this one replaces (a config reload). When it
	// has the same source (kind and location: URI, discovery issuer, file
	// path or inline content), the new KeySet starts from its keys,
	// last-success time, validators and schedule; only the tuning (intervals,
	// timeout, algorithms, cache file) is this Options'. Otherwise it is
	// ignored. Previous is only read; the caller still closes it.
	Previous *KeySet
	// CacheFile, when set, keeps the last good key set of a URI or discovery
	// source: written atomically after each good fetch, read at Start, so a
	// restart while the IdP is down still serves. Ignored for File and Inline.
	CacheFile string
	// HTTPClient fetches discovery and JWKS documents. Default: a client
	// with dial and TLS timeouts and at most 3 redirects, never to plain
	// http from https. Nothing a token says is ever fetched.
	HTTPClient *http.Client
	// Clock drives every schedule; default RealClock.
	Clock Clock
	// Logger receives fetch failures and key changes; default discards.
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// OnKeysRemoved is called, after the new set is in place, with the kids a
	// good fetch removed (so cached tokens signed by them can be dropped).
	// It must not block for long and must not call back into the KeySet's
	// fetch path.
	OnKeysRemoved func(kids []string)
}

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
	kind      string
	location  string
	shown     string // location fit to print: RedactURI for URLs
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

// New checks opts and builds a KeySet. It does no I/O.
func New(opts Options) (*KeySet, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if opts.Name == "" {
		bad("name is required")
	}
	p := &KeySet{ready: make(chan struct{})}
	n := 0
	if opts.URI != "" {
		n++
		p.kind, p.location = SourceURI, opts.URI
		if err := checkHTTPURL(opts.URI); err != nil {
			bad("uri: %w", err)
		} else if err := checkTransport(opts.URI, opts.AllowInsecureHTTP); err != nil {
			bad("uri: %w", err)
		}
	}
	if opts.Discovery {
		n++
		p.kind, p.location = SourceDiscovery, opts.Issuer
		if err := checkHTTPURL(opts.Issuer); err != nil {
			bad("issuer (for discovery): %w", err)
		} else if err := checkTransport(opts.Issuer, opts.AllowInsecureHTTP); err != nil {
			bad("issuer (for discovery): %w", err)
		}
	}
	if opts.File != "" {
		n++
		p.kind, p.location = SourceFile, opts.File
	}
	if opts.Inline != "" {
		n++
		p.kind, p.location = SourceInline, ""
	}
	if n != 1 {
		bad("exactly one of uri, discovery, file and inline must be set, got %d", n)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"refresh_interval", &opts.RefreshInterval, DefaultRefreshInterval},
		{"min_refresh_interval", &opts.MinRefreshInterval, DefaultMinRefreshInterval},
		{"fetch_timeout", &opts.FetchTimeout, DefaultFetchTimeout},
	} {
		switch {
		case *d.v < 0:
			bad("%s: must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if opts.MinRefreshInterval > opts.RefreshInterval {
		bad("min_refresh_interval (%s) exceeds refresh_interval (%s)", opts.MinRefreshInterval, opts.RefreshInterval)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("jwks: provider %q: %w", opts.Name, errors.Join(errs...))
	}
	if p.kind == SourceFile || p.kind == SourceInline {
		opts.CacheFile = ""
	}
	if p.kind == SourceURI {
		p.jwksURI = opts.URI
	}
	p.shown = p.location
	if p.kind == SourceURI || p.kind == SourceDiscovery {
		p.shown = RedactURI(p.location)
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
	if prev := opts.Previous; prev != nil && prev.sameSource(p) {
		p.inherit(prev)
	}
	return p, nil
}

// sameSource reports whether p and q read their keys from the same place.
func (p *KeySet) sameSource(q *KeySet) bool {
	return p.kind == q.kind && p.location == q.location &&
		(p.kind != SourceInline || p.opts.Inline == q.opts.Inline)
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

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", RedactURI(s))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", RedactURI(s))
	}
	return nil
}

func defaultClient(allowInsecure bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   1,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("refusing a redirect from https to http")
			}
			if err := checkTransport(req.URL.String(), allowInsecure); err != nil {
				return fmt.Errorf("refusing a redirect: %w", err)
			}
			return nil
		},
	}
}

// Start reads the cache file (URI and discovery sources), parses an inline
// set or reads a file, and starts the goroutine that fetches at once and
// then on schedule. It returns without waiting for the first fetch; use
// WaitReady. The KeySet stops when ctx ends or Close is called. Calls after
// the first are no-ops.
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

	switch p.kind {
	case SourceInline:
		if p.Ready() {
			return // inherited: the same content
		}
		p.mu.Lock()
		p.lastStart = p.clock.Now()
		p.mu.Unlock()
		set, err := parseKeySet([]byte(p.opts.Inline), p.opts.Algorithms)
		p.finish(outcome{set: set, doc: []byte(p.opts.Inline), err: wrapErr("inline key set", err)})
		return
	case SourceFile:
		p.mu.Lock()
		f := p.startLocked() // the first read, before Start returns
		p.mu.Unlock()
		<-f.done
	default:
		if !p.Ready() {
			p.loadCache()
		}
	}
	p.wg.Go(func() { p.loop(p.ctx) })
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
		Source:      p.kind,
		Location:    p.shown,
		JWKSURI:     RedactURI(p.jwksURI),
		FetchedAt:   p.fetchedAt,
		NextRefresh: p.dueLocked(),
		LastError:   p.lastErr,
	}
	if p.kind == SourceInline || p.ctx == nil {
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
	if p.ctx == nil || p.closed || p.kind == SourceInline ||
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
		if o := p.fetch(ctx); o.err == nil || ctx.Err() == nil {
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

// fetch gets the source's current document.
func (p *KeySet) fetch(ctx context.Context) outcome {
	if p.kind == SourceFile {
		return p.readFile()
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.FetchTimeout)
	defer cancel()
	return p.fetchRemote(ctx)
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readAll reads at most maxDocumentBytes.
func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocumentBytes {
		return nil, fmt.Errorf("document exceeds %d bytes", maxDocumentBytes)
	}
	return b, nil
}

// discoveryURL is where the issuer's OpenID configuration lives.
func discoveryURL(issuer string) string {
	if !strings.HasSuffix(issuer, "/") {
		issuer += "/"
	}
	return issuer + ".well-known/openid-configuration"
}
