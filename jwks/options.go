package jwks

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Defaults of Options.
const (
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
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

// ErrSourceCount is the error of Options that name no key source, or more
// than one.
var ErrSourceCount = errors.New("exactly one of uri, discovery, file, inline must be set")

// OptionError is a problem with one field of Options. Field is the name the
// config file uses (uri, discovery, refresh_interval, ...); "" when the
// problem is the combination (ErrSourceCount).
type OptionError struct {
	Field string
	Err   error
}

func (e *OptionError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *OptionError) Unwrap() error { return e.Err }

// Validate checks the key source and its tuning, with the defaults applied
// (Name is New's to check). It returns every problem joined, each an
// *OptionError. A caller that reads user input (package config) calls it to
// report the problems with their field paths before New.
func (o Options) Validate() error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, &OptionError{Field: field, Err: err}) }
	n := 0
	for _, set := range []bool{o.URI != "", o.Discovery, o.File != "", o.Inline != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		bad("", ErrSourceCount)
	}
	if o.URI != "" {
		if u, err := httpURL(o.URI); err != nil {
			bad("uri", fmt.Errorf("must be an http(s) URL, not %q", RedactURI(o.URI)))
		} else if insecureHTTP(u, o.AllowInsecureHTTP) {
			bad("uri", fmt.Errorf("%q: %w", RedactURI(o.URI), ErrInsecureHTTP))
		}
	}
	if o.Discovery {
		if u, err := httpURL(o.Issuer); err != nil {
			bad("discovery", errors.New("needs an issuer that is an http(s) URL"))
		} else if insecureHTTP(u, o.AllowInsecureHTTP) {
			bad("discovery", fmt.Errorf("issuer %q: %w", RedactURI(o.Issuer), ErrInsecureHTTP))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"refresh_interval", o.RefreshInterval}, {"min_refresh_interval", o.MinRefreshInterval}, {"fetch_timeout", o.FetchTimeout}} {
		if d.v < 0 {
			bad(d.name, fmt.Errorf("must be positive, not %s", d.v))
		}
	}
	if d := o.withDefaults(); d.MinRefreshInterval > d.RefreshInterval {
		bad("min_refresh_interval", errors.New("must not exceed refresh_interval"))
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero durations.
func (o Options) withDefaults() Options {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.RefreshInterval, DefaultRefreshInterval},
		{&o.MinRefreshInterval, DefaultMinRefreshInterval},
		{&o.FetchTimeout, DefaultFetchTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	return o
}

// httpURL parses an absolute http(s) URL.
func httpURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", RedactURI(s))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", RedactURI(s))
	}
	return u, nil
}
