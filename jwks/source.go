package jwks

import "context"

// Kinds of source, as Status.Source shows them.
const (
	SourceURI       = "uri"
	SourceDiscovery = "discovery"
	SourceFile      = "file"
	SourceInline    = "inline"
)

// source is where a KeySet's keys come from: a JWKS URL, OpenID discovery,
// a file or inline content. It holds what differs between them, so that the
// schedule and the state transitions of a KeySet never ask which kind it
// reads. Implementations are comparable values: two sources are equal when
// they read the same keys (kind and location; for inline, the content).
type source interface {
	// kind is uri, discovery, file or inline (Status.Source).
	kind() string
	// location is the URI, the issuer (discovery) or the file path; "" for
	// inline content.
	location() string
	// local: the operator's own file or content. Never vetted against the
	// last set, retried every MinRefreshInterval without back-off, never
	// written to a cache file, its location printed as it is.
	local() bool
	// refreshes: the source may change after Start, so the KeySet schedules
	// fetches and unknown-kid refetches. Inline content never changes.
	refreshes() bool
	// start readies the first keys when the KeySet starts, before its
	// schedule runs.
	start(p *KeySet)
	// read gets the source's current document.
	read(ctx context.Context, p *KeySet) outcome
}

// sourceOf is the one source opts names; Options.Validate has checked that
// there is exactly one.
func sourceOf(opts Options) source {
	switch {
	case opts.URI != "":
		return uriSource{uri: opts.URI}
	case opts.Discovery:
		return discoverySource{issuer: opts.Issuer}
	case opts.File != "":
		return fileSource{path: opts.File}
	}
	return inlineSource{doc: opts.Inline}
}

// remote is what the two sources fetched over HTTP share: a cache file
// for the first keys, vetting, back-off.
type remote struct{}

func (remote) local() bool     { return false }
func (remote) refreshes() bool { return true }
func (remote) start(p *KeySet) { p.loadCache() }

// uriSource is a JWKS URL.
type uriSource struct {
	remote
	uri string
}

func (s uriSource) kind() string     { return SourceURI }
func (s uriSource) location() string { return s.uri }

func (s uriSource) read(ctx context.Context, p *KeySet) outcome {
	ctx, cancel := context.WithTimeout(ctx, p.opts.FetchTimeout)
	defer cancel()
	o, _ := p.getJWKS(ctx, s.uri)
	return o
}

// discoverySource finds the JWKS URL in the issuer's OpenID configuration.
type discoverySource struct {
	remote
	issuer string
}

func (s discoverySource) kind() string     { return SourceDiscovery }
func (s discoverySource) location() string { return s.issuer }

func (s discoverySource) read(ctx context.Context, p *KeySet) outcome {
	ctx, cancel := context.WithTimeout(ctx, p.opts.FetchTimeout)
	defer cancel()
	uri, err := p.jwksLocation(ctx)
	if err != nil {
		return outcome{err: err}
	}
	o, notFound := p.getJWKS(ctx, uri)
	if notFound {
		// The IdP may have moved its keys: ask discovery again.
		p.mu.Lock()
		p.rediscover = true
		p.mu.Unlock()
	}
	return o
}

// fileSource is a JWKS file.
type fileSource struct{ path string }

func (s fileSource) kind() string     { return SourceFile }
func (s fileSource) location() string { return s.path }
func (fileSource) local() bool        { return true }
func (fileSource) refreshes() bool    { return true }

// start reads the file before Start returns.
func (fileSource) start(p *KeySet) {
	p.mu.Lock()
	f := p.startLocked()
	p.mu.Unlock()
	<-f.done
}

func (s fileSource) read(_ context.Context, p *KeySet) outcome { return p.readFile(s.path) }

// inlineSource is a JWKS document in the config, parsed once.
type inlineSource struct{ doc string }

func (inlineSource) kind() string     { return SourceInline }
func (inlineSource) location() string { return "" }
func (inlineSource) local() bool      { return true }
func (inlineSource) refreshes() bool  { return false }

func (s inlineSource) start(p *KeySet) {
	if p.Ready() {
		return // inherited: the same content
	}
	p.mu.Lock()
	p.lastStart = p.clock.Now()
	p.mu.Unlock()
	p.finish(s.read(context.Background(), p))
}

func (s inlineSource) read(_ context.Context, p *KeySet) outcome {
	set, err := parseKeySet([]byte(s.doc), p.opts.Algorithms)
	return outcome{set: set, doc: []byte(s.doc), err: wrapErr("inline key set", err)}
}
