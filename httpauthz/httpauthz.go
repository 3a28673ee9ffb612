// Package httpauthz is the adapter between plain-HTTP forward-auth
// protocols and package authz: Envoy's ext_authz `http_service`, nginx
// `auth_request`, Traefik `forwardAuth` and Caddy `forward_auth`. It turns
// an authorization subrequest into an authz.Request, asks the authorizer in
// force, and renders the Decision as the status, headers and body those
// proxies understand. It decides nothing itself.
//
// The original request is recovered in one of two ways, chosen by
// Options.Forwarded:
//
//   - ForwardedNone (Envoy `http_service`): from the subrequest itself:
//     method, host and headers as received, the path with PathPrefix
//     removed. Envoy appends the original path (query included) to its
//     configured path_prefix. Every forwarded header is ignored.
//   - ForwardedXForwarded (Traefik `forwardAuth`, Caddy `forward_auth`) or
//     ForwardedXOriginal (nginx `auth_request` with proxy_set_header): from
//     exactly one family of headers, see Forwarded. Those proxies copy every
//     client header into the subrequest and overwrite only their own
//     family, so the other family is the client's: it is ignored where it
//     agrees, and a request where it disagrees is refused, as is a
//     trusted header that is missing, repeated or not well formed. The
//     refusal is a bad_request decision (400): one request, one view.
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
//     it too. What Traefik's authResponseHeaders and Caddy's copy_headers do
//     with a header the answer leaves out differs (by version, for Caddy):
//     docs/http-mode.md says how to configure each.
//   - Denied: the Decision's status, `www-authenticate`, `retry-after`,
//     `content-type` and body. nginx passes 401 and 403 through and turns
//     any other status (400 bad_request, 503 keys_unavailable) into 500. Of the
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
	// Forwarded is the one header family that carries the original method,
	// URI and host; ForwardedNone (the zero value) takes them from the
	// subrequest and ignores every forwarded header. An unknown value is
	// refused: every request is denied (fail closed, never "trust none"
	// instead, which would decide on the subrequest's own path); check
	// configured names with ParseForwarded.
	Forwarded Forwarded
	// Logger receives panics; nil discards.
	Logger *slog.Logger
}

type handler struct {
	current *atomic.Pointer[authz.Authorizer]
	prefix  string
	family  Forwarded
	// badFamily: Options.Forwarded named no family; every request is
	// denied with internal_error.
	badFamily bool
	log       *slog.Logger
}

// NewHandler returns the forward-auth handler. Mount it with Route, not on
// an http.ServeMux pattern alone: ServeMux redirects paths with "..", "."
// or "//" to their clean form, and such paths are exactly what Envoy appends
// to the prefix and what must be decided, not redirected.
func NewHandler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	_, err := ParseForwarded(string(o.Forwarded))
	return &handler{current: o.Authorizer, prefix: cleanPrefix(o.PathPrefix), family: o.Forwarded, badFamily: err != nil, log: o.Logger}
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
	if h.badFamily {
		d := a.Deny(authz.ReasonInternalError, "unknown forwarded-header family")
		a.Observe(r.Context(), &d, time.Since(start))
		write(w, &d)
		return
	}
	req, bad := h.request(r, path)
	if bad != "" {
		// A request that cannot be read one way only is a deny, as in
		// the gRPC adapter.
		d := a.Deny(authz.ReasonBadRequest, bad)
		a.Observe(r.Context(), &d, time.Since(start))
		write(w, &d)
		return
	}
	d := a.Check(r.Context(), req)
	write(w, &d)
}

// request translates a subrequest whose path, prefix removed, is path. It
// returns a description when the forwarded headers do not tell one
// request.
func (h *handler) request(r *http.Request, path string) (*authz.Request, string) {
	req := &authz.Request{
		Method:  r.Method,
		Path:    path,
		Host:    r.Host,
		Headers: make(map[string]string, len(r.Header)),
		// The subrequest's own scheme until a trusted forwarded family
		// says otherwise (DPoP's htu).
		Scheme: "http",
	}
	if r.TLS != nil {
		req.Scheme = "https"
	}
	for k, vs := range r.Header {
		req.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if h.family == ForwardedNone {
		return req, ""
	}

	v, bad := readForwarded(h.family, r.Header)
	if bad != "" {
		return nil, bad
	}
	req.Method, req.Path, req.Host = v.method, v.uri, v.host
	if v.proto != "" {
		req.Scheme = strings.ToLower(v.proto)
	}
	return req, ""
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
	for _, c := range d.Challenges {
		hdr.Add("WWW-Authenticate", c)
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
