package authz

import (
	"strings"
)

// Request is what the authorizer decides on: the protocol adapters (Envoy's
// CheckRequest, the HTTP mode) translate their input into it.
type Request struct {
	// Method is the HTTP method as sent; compared case-insensitively.
	Method string
	// Path is the request path, query string included, as the proxy saw it.
	Path string
	// Host is the authority, port included or not.
	Host string
	// Headers holds the request headers with lower-case keys. Repeated
	// headers are either joined with "," (as Envoy does) or, when the
	// adapter saw them separately, listed in Repeated.
	Headers map[string]string
	// Repeated lists lower-case header names that occurred more than once
	// and were not joined (Envoy's header_map). A token header among them is
	// malformed_token.
	Repeated map[string]int
	// Context holds per-route settings (Envoy's context_extensions).
	Context map[string]string
}

// header returns a request header by lower-case name.
func (r *Request) header(name string) (string, bool) {
	v, ok := r.Headers[name]
	return v, ok
}

// NormalizePath turns a request path into the form rules match against:
// query and fragment dropped, percent-encoded unreserved characters decoded
// (RFC 3986 §2.3), encoded slashes and backslashes decoded to "/", other
// escapes kept with upper-case hex, "." and ".." segments resolved (never
// above the root) and repeated "/" merged. So "/public/../admin",
// "/%61dmin" and "/public%2F..%2Fadmin" all become "/admin".
//
// Decoding %2F and %5C goes beyond the contract's "unreserved characters":
// an upstream that decodes them would otherwise see a path that no rule
// was matched against; resolving them here can only make the match stricter.
func NormalizePath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if isClean(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p) + 1)
	if !strings.HasPrefix(p, "/") {
		b.WriteByte('/')
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			switch {
			case isUnreserved(d):
				b.WriteByte(d)
			case d == '/' || d == '\\':
				b.WriteByte('/')
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
		case c == '\\':
			b.WriteByte('/')
		default:
			b.WriteByte(c)
		}
	}
	return resolveDots(b.String())
}

// isClean reports whether p needs no work: it starts with "/", has no
// escapes, backslashes, empty or dot segments. Most paths are clean, and
// this keeps the hot path free of allocations.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', '\\':
			return false
		case '/':
			rest := p[i+1:]
			if strings.HasPrefix(rest, "/") || rest == "." || rest == ".." ||
				strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
				return false
			}
		}
	}
	return true
}

// resolveDots removes "." and ".." segments and empty segments from an
// absolute path. A trailing "/" is kept.
func resolveDots(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last && i > 0
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	res := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		res += "/"
	}
	return res
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// normalizeHost lower-cases a host and drops its port and a trailing dot.
func normalizeHost(h string) string {
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if i := strings.Index(h, "]"); i >= 0 {
			return strings.ToLower(h[:i+1])
		}
		return strings.ToLower(h)
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.ToLower(h)
}
