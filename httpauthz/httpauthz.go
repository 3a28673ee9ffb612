// Package httpauthz is the adapter between plain-HTTP forward-auth
// protocols and package authz: Envoy's ext_authz `http_service`, nginx
// `auth_request`, Traefik `forwardAuth` and Caddy `forward_auth`. It turns
// an authorization subrequest into an authz.Request, asks the authorizer in
// force, and renders the Decision as the status, headers and body those
// proxies understand. It decides nothing itself.
//
// The original request is recovered in two ways:
//
//   - From the subrequest itself (Envoy `http_service`): method, host and
//     headers as received, the path with PathPrefix removed. Envoy appends
//     the original path (query included) to its configured path_prefix.
//   - Only when TrustForwarded is set, from the headers the other proxies
//     send: X-Original-Method / X-Original-URI / X-Original-Host (nginx, by
//     convention: set them with proxy_set_header) first, then
//     X-Forwarded-Method / X-Forwarded-Uri / X-Forwarded-Host (Traefik,
//     Caddy). Enable it only when every path to this listener goes through a
//     proxy that overwrites those headers: otherwise a client picks the path
//     its request is authorized for.
//
// Answers:
//
//   - Allowed: 200, no body, each claim header of the Decision as a response
//     header, and `x-envoy-auth-headers-to-remove` listing the headers the
//     Decision removes (Envoy `http_service` applies that list; it is a
//     comma-separated list of header names). nginx cannot remove headers,
//     but `auth_request_set $v $upstream_http_x_jwt_sub;` followed by
//     `proxy_set_header x-jwt-sub $v;` overwrites a client's header, and
//     nginx drops a header whose value is empty, so an absent claim removes
//     it too. Traefik's authResponseHeaders and Caddy's copy_headers replace
//     the listed request headers in the same way.
//   - Denied: the Decision's status, `www-authenticate`, `retry-after`,
//     `content-type` and body. nginx passes 401 and 403 through and turns
//     any other status (503 keys_unavailable) into 500. Of the
//     subrequest's headers it copies only WWW-Authenticate, and only on a
//     401; a 403's challenge needs auth_request_set and an error_page (see
//     nginx_test.go). Envoy, Traefik and Caddy relay status, headers and
//     body as they are.
//
// Query parameters a Decision removes (RemoveQuery) cannot be expressed to
// these proxies; with a query token source, use the gRPC adapter.
//
// Both answers carry `x-jwt-authz-reason` (a value of the closed reason set,
// for the proxy's logs) and `cache-control: no-store`.
//
// Concurrency: a handler is safe for concurrent use. The authorizer is read
// through an atomic pointer on every request, so a config reload swaps it
// without locking and in-flight checks finish on the old one.
package httpauthz

import (
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

// DefaultPathPrefix is the path prefix when Options.PathPrefix is empty.
const DefaultPathPrefix = "/authz"

// Response header names.
const (
	// HeaderRemove is Envoy http_service's list of upstream headers to remove.
	HeaderRemove = "X-Envoy-Auth-Headers-To-Remove"
	// HeaderReason carries the decision's reason.
	HeaderReason = "X-Jwt-Authz-Reason"
)

// Options configures the handler.
type Options struct {
	// Authorizer holds the authorizer in force; required. A reload stores a
	// new one. While it holds nil the handler answers 503.
	Authorizer *atomic.Pointer[authz.Authorizer]
	// PathPrefix is where the handler is mounted; "" means "/authz". A
	// trailing "/" is ignored. The original path is what follows it.
	PathPrefix string
	// TrustForwarded takes the original method, URI and host from the
	// X-Original-* and X-Forwarded-* headers. False ignores them.
	TrustForwarded bool
	// Logger receives panics; nil discards.
	Logger *slog.Logger
}

type handler struct {
	current *atomic.Pointer[authz.Authorizer]
	prefix  string
	trust   bool
	log     *slog.Logger
}

// NewHandler returns the forward-auth handler. Mount it with Route, not on
// an http.ServeMux pattern alone: ServeMux redirects paths with "..", "."
// or "//" to their clean form, and such paths are exactly what Envoy appends
// to the prefix and what must be decided, not redirected.
func NewHandler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{current: o.Authorizer, prefix: cleanPrefix(o.PathPrefix), trust: o.TrustForwarded, log: o.Logger}
}

// Route sends requests for prefix and everything under prefix+"/" to h,
// and all others to next. The path is compared as received (escaped), so
// the handler sees the original path before any cleaning.
func Route(prefix string, h, next http.Handler) http.Handler {
	prefix = cleanPrefix(prefix)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := stripPrefix(requestTarget(r), prefix); ok {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cleanPrefix(p string) string {
	if p == "" {
		p = DefaultPathPrefix
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return strings.TrimRight(p, "/")
}

// requestTarget is the path and query as the client sent them.
func requestTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	// Absolute form ("http://host/path") or a request built in a test.
	t := r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		t += "?" + r.URL.RawQuery
	}
	return t
}

// stripPrefix returns target without prefix when target is prefix itself
// (optionally followed by a query) or lies under prefix+"/".
func stripPrefix(target, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(target, prefix)
	if !ok {
		return "", false
	}
	switch {
	case rest == "":
		return "/", true
	case rest[0] == '?':
		return "/" + rest, true
	case rest[0] == '/':
		return rest, true
	}
	return "", false // "/authzfoo"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := h.current.Load()
	if a == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Retry-After", "5")
		http.Error(w, "no authorizer loaded", http.StatusServiceUnavailable)
		return
	}
	path, ok := stripPrefix(requestTarget(r), h.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			// A bug must cost one request, not the connection.
			h.log.Error("check panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			d := a.Deny(authz.ReasonInternalError, "internal error")
			a.Observe(r.Context(), &d, time.Since(start))
			write(w, &d)
		}
	}()
	req, bad := h.Request(r, path)
	if bad != "" {
		// Bad input is a deny, as in the gRPC adapter.
		d := a.Deny(authz.ReasonMalformedToken, bad)
		a.Observe(r.Context(), &d, time.Since(start))
		write(w, &d)
		return
	}
	d := a.Check(r.Context(), req)
	write(w, &d)
}

// Request translates a subrequest whose path, prefix removed, is path. It
// returns a description when the forwarded headers are ambiguous.
func (h *handler) Request(r *http.Request, path string) (*authz.Request, string) {
	req := &authz.Request{
		Method:  r.Method,
		Path:    path,
		Host:    r.Host,
		Headers: make(map[string]string, len(r.Header)),
	}
	for k, vs := range r.Header {
		req.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if !h.trust {
		return req, ""
	}
	method, bad := forwarded(r.Header, "X-Original-Method", "X-Forwarded-Method")
	if bad != "" {
		return nil, bad
	}
	uri, bad := forwarded(r.Header, "X-Original-Uri", "X-Forwarded-Uri")
	if bad != "" {
		return nil, bad
	}
	host, bad := forwarded(r.Header, "X-Original-Host", "X-Forwarded-Host")
	if bad != "" {
		return nil, bad
	}
	if method != "" {
		req.Method = method
	}
	if uri != "" {
		p, uhost := splitURI(uri)
		req.Path = p
		if host == "" && uhost != "" {
			host = uhost
		}
	}
	if host != "" {
		// X-Forwarded-Host may list every hop; the first is what the
		// client asked for.
		host, _, _ = strings.Cut(host, ",")
		req.Host = strings.TrimSpace(host)
	}
	return req, ""
}

// forwarded returns the value of the first of names present. A header
// sent more than once is refused: which copy the proxy wrote and which the
// client smuggled cannot be told apart.
func forwarded(h http.Header, names ...string) (string, string) {
	for _, n := range names {
		vs := h.Values(n)
		switch len(vs) {
		case 0:
			continue
		case 1:
			return strings.TrimSpace(vs[0]), ""
		}
		return "", "repeated " + strings.ToLower(n) + " header"
	}
	return "", ""
}

// splitURI accepts a request target in origin form ("/p?q") or absolute
// form ("https://h/p?q", as some proxies send) and returns the path with
// its query, and the host of an absolute form.
func splitURI(uri string) (string, string) {
	if strings.HasPrefix(uri, "/") {
		return uri, ""
	}
	if u, err := url.Parse(uri); err == nil && u.Scheme != "" && u.Host != "" {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		if u.RawQuery != "" {
			p += "?" + u.RawQuery
		}
		return p, u.Host
	}
	return uri, "" // authz normalizes it (a leading "/" is added)
}

// write renders a Decision.
func write(w http.ResponseWriter, d *authz.Decision) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set(HeaderReason, string(d.Reason))
	if d.Allow {
		for _, c := range d.Headers {
			hdr.Set(c.Name, c.Value)
		}
		if len(d.RemoveHeaders) > 0 {
			hdr.Set(HeaderRemove, strings.Join(d.RemoveHeaders, ","))
		}
		hdr.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	if d.Challenge != "" {
		hdr.Set("WWW-Authenticate", d.Challenge)
	}
	if d.RetryAfter != "" {
		hdr.Set("Retry-After", d.RetryAfter)
	}
	if d.ContentType != "" {
		hdr.Set("Content-Type", d.ContentType)
	}
	hdr.Set("X-Content-Type-Options", "nosniff")
	status := d.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	_, _ = w.Write(d.Body)
}
