// Package jwks owns the key sets of the token providers: it fetches them from
// a URI, through OpenID Connect discovery, from a file or from inline JSON,
// keeps them fresh, remembers the last good set across restarts, and serves
// them to the authorizer as an authz.KeySource.
//
// # What a KeySet owns
//
// A KeySet schedules its own fetches. It sends conditional requests
// (If-None-Match, If-Modified-Since) and keeps its keys on 304; it honours the
// response's Cache-Control max-age clamped to [MinRefreshInterval,
// RefreshInterval]; a failed fetch keeps the last good keys (stale-if-error)
// and retries with jittered exponential back-off (a provider without any
// keys retries every MinRefreshInterval instead); a set that suddenly has no
// usable key, or drops every key it had, counts as a failure rather than as
// truth; a token with an unknown kid triggers one refetch, shared by every
// caller and never more than one per MinRefreshInterval. Only keys that may
// verify a signature are kept: no use "enc", no unknown kty or curve, no RSA
// key under 2048 bits, no alg outside the provider's allowlist.
//
// jwx's jwk.Cache is not used: it cannot send conditional requests, refuse an
// empty or wholesale-replaced set, report fetch errors per provider, run on an
// injected clock, or bound unknown-kid refetches across callers. jwx remains
// the JOSE library: documents are parsed with jwk.Parse.
//
// # Key sources, their safety and their printing
//
// Plain-http sources (a URI, a discovery issuer, a discovered jwks_uri, a
// redirect) are refused unless their host is loopback or
// Options.AllowInsecureHTTP is set. Every key-source URI this package prints
// (Status, logs, errors, including net/http's *url.Error) goes through
// RedactURI, which hides userinfo and query values. Keys belong to their
// source: a KeySet built with Options.Previous of the same source starts
// from its predecessor's keys, so a config reload that only changes the
// tuning does not throw working keys away.
//
// # Files
//
// keyset.go is the KeySet: its state, schedule and the hot path. source.go
// holds what differs between the four kinds of source (uri, discovery,
// file, inline); remote.go fetches over HTTP (conditional GETs, discovery,
// freshness), file.go reads key files, cachefile.go persists the last good
// set, update.go applies a fetch's outcome (vetting, back-off, metrics,
// logs) and options.go checks Options, whose defaults and invariants
// (exactly one source, intervals) this package owns.
//
// # Concurrency
//
// Key and Keys are the hot path: they read an immutable key set through an
// atomic.Pointer and take no lock and allocate nothing on a hit. Everything
// else (schedule, validators, errors, the in-flight fetch) sits behind one
// mutex held only for short bookkeeping, never across I/O. At most one fetch
// runs per KeySet at a time; it runs on its own goroutine, so a caller whose
// context ends early does not cancel it for the others. Start launches one
// scheduling goroutine; Close stops it and waits for every goroutine the
// KeySet started.
package jwks
