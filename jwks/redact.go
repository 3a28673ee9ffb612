package jwks

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Redacted replaces each secret part of a URI.
const Redacted = "REDACTED"

// RedactURI returns s fit to print: userinfo (user and password) and every
// query value are replaced with REDACTED, and a fragment is dropped. A JWKS
// URI may carry credentials (https://user:pass@host/jwks.json?api_key=K);
// they must not reach /readyz, /debug/keys, logs or error messages. Every
// place that prints a key-source URI goes through this one function.
//
// A string that does not parse as a URL is redacted by its shape: anything
// before the last "@" of the authority and everything after "?" or "#".
func RedactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return redactShape(s)
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = redactQuery(u.RawQuery)
		u.ForceQuery = false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// redactQuery keeps the parameter names and replaces their values; a part
// without "=" is replaced whole (it may be a bare secret).
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok {
			parts[i] = name + "=" + Redacted
		} else if p != "" {
			parts[i] = Redacted
		}
	}
	return strings.Join(parts, "&")
}

// redactShape redacts a string that is not a URL as if it were one.
func redactShape(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?" + Redacted
	}
	rest, scheme := s, ""
	if i := strings.Index(s, "//"); i >= 0 {
		scheme, rest = s[:i+2], s[i+2:]
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		rest = Redacted + rest[at:]
	}
	return scheme + rest
}

// redactErr rewrites a *url.Error (what net/http returns, with the request
// URL in its text; net/http strips only the password) so that it prints the
// redacted URL. The wrapped error stays reachable for errors.Is and As.
func redactErr(err error) error {
	ue, ok := err.(*url.Error)
	if !ok {
		return err
	}
	return &redactedURLError{op: ue.Op, url: RedactURI(ue.URL), err: ue.Err}
}

type redactedURLError struct {
	op, url string
	err     error
}

func (e *redactedURLError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.op, e.url, redactInner(e.err))
}
func (e *redactedURLError) Unwrap() error { return e.err }

// Timeout reports whether the underlying error is a timeout, as
// *url.Error does.
func (e *redactedURLError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}

// redactInner prints an inner error of a *url.Error: one nested *url.Error
// (a redirect's, say) is redacted too.
func redactInner(err error) string {
	if err == nil {
		return "<nil>"
	}
	if _, ok := err.(*url.Error); ok {
		return redactErr(err).Error()
	}
	return err.Error()
}

// IsLoopbackHost reports whether host (as url.URL.Hostname returns it,
// without brackets or port) is "localhost" or an address in 127.0.0.0/8 or
// ::1. Names that merely resolve to a loopback address do not count: only
// what the URI itself says is trusted.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkTransport refuses a plain-http URL whose host is not loopback, unless
// insecure is allowed: keys fetched over plain http can be replaced by
// anyone on the path.
func checkTransport(s string, allowInsecure bool) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", RedactURI(s))
	}
	if insecureHTTP(u, allowInsecure) {
		return fmt.Errorf("%s: %w", RedactURI(s), ErrInsecureHTTP)
	}
	return nil
}

// insecureHTTP reports a plain-http URL whose host is not loopback, when
// that is not allowed.
func insecureHTTP(u *url.URL, allowInsecure bool) bool {
	return u.Scheme == "http" && !allowInsecure && !IsLoopbackHost(u.Hostname())
}

// ErrInsecureHTTP is the error of a plain-http key source whose host is not
// loopback while Options.AllowInsecureHTTP is false.
var ErrInsecureHTTP = errors.New("plain http:// is refused for a host that is not loopback (127.0.0.0/8, ::1, localhost); use https, or set allow_insecure_http: true")
