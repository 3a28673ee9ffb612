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
	// Scheme is the request's scheme as the proxy saw it (http, https);
	// the DPoP htu check reads it.
	Scheme string
	// Certificate is the client certificate of the connection, as Envoy
	// sends it with include_peer_certificate: true (URL-encoded PEM); ""
	// for none. The mTLS binding check reads it.
	Certificate string
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
// It is for hosts written in rules, which config validation has checked;
// request hosts go through readHost.
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

// readHost normalises a request's host as normalizeHost does, and reports
// false for a host that cannot be read one way only: userinfo
// ("user@host"), two ports ("a:80:80"), a port that is not digits, empty
// labels ("api.example.com..", "a..b", ".a"), or a character outside
// letters, digits, "-", "_" and ".". A rule's host would otherwise be
// compared with something the upstream may read differently. An empty
// host stays empty (it matches no host rule).
func readHost(h string) (string, bool) {
	if h == "" {
		return "", true
	}
	if strings.HasPrefix(h, "[") { // IPv6 literal, optional port
		end := strings.IndexByte(h, ']')
		if end < 0 || !validPort(h[end+1:]) {
			return "", false
		}
		for i := 1; i < end; i++ {
			if c := h[i]; !isHex(c) && c != ':' && c != '.' {
				return "", false
			}
		}
		if end == 1 {
			return "", false
		}
		return strings.ToLower(h[:end+1]), true
	}
	name := h
	if i := strings.IndexByte(h, ':'); i >= 0 {
		name = h[:i]
		if !validPort(h[i:]) {
			return "", false
		}
	}
	name = strings.TrimSuffix(name, ".") // the root label: "a.com." is "a.com"
	if name == "" {
		return "", false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return strings.ToLower(name), true
}

// validPort reports whether s is empty or ":" followed by at most five
// digits (an empty port is allowed by RFC 3986).
func validPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) > 6 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// PathParams says what ";" parameters in a path segment do.
type PathParams int

// Path parameter policies (the config's paths.parameters).
const (
	// PathParamsReject refuses a path with ";" in a segment (bad_request),
	// as Spring Security's firewall does. The zero value.
	PathParamsReject PathParams = iota
	// PathParamsStrip drops ";..." from every segment before matching, as
	// Tomcat and Jetty do before they route.
	PathParamsStrip
	// PathParamsKeep matches ";" literally, for upstreams that give it no
	// meaning.
	PathParamsKeep
)

// PathOptions says how request paths are read before rules match them.
type PathOptions struct {
	// Parameters is the ";" policy; the zero value rejects.
	Parameters PathParams
	// CaseInsensitive matches path rules without regard to letter case,
	// for upstreams that serve /ADMIN as /admin.
	CaseInsensitive bool
}

// readPath turns a request path into the form rules match against, or
// reports why it cannot be read one way only:
//   - it does not start with "/" (absolute form "http://h/x"; the caller
//     lets "OPTIONS *" through before);
//   - it holds ";" in a segment under PathParamsReject, or an encoded ";"
//     (%3B) under Reject or Strip (servers disagree on whether it splits);
//   - a decoded segment holds a control character, or ends in "." or a
//     space (other than "." and ".."): IIS-like servers trim those, so
//     "/admin." and "/admin%20" would be served as "/admin".
func readPath(raw string, o PathOptions) (string, string) {
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		return "", "the request path does not start with /"
	}
	if o.Parameters != PathParamsKeep && hasEncodedSemicolon(p) {
		return "", "the request path holds an encoded ;"
	}
	if strings.IndexByte(p, ';') >= 0 {
		switch o.Parameters {
		case PathParamsReject:
			return "", "the request path holds ; parameters"
		case PathParamsStrip:
			// Where "/" or "\\" may be encoded, servers that decode before
			// or after cutting parameters see different paths:
			// "/public%2F..;%2Fadmin" is "/public/.." to one, "/admin" to
			// another.
			if strings.IndexByte(p, '\\') >= 0 || hasEncodedSeparator(p) {
				return "", "the request path holds ; parameters and an encoded separator"
			}
			p = stripParams(p)
		}
	}
	if why := badSegment(p); why != "" {
		return "", why
	}
	return NormalizePath(p), ""
}

func hasEncodedSemicolon(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && p[i+1] == '3' && (p[i+2] == 'b' || p[i+2] == 'B') {
			return true
		}
	}
	return false
}

// hasEncodedSeparator reports whether p holds %2F or %5C, in any case.
func hasEncodedSeparator(p string) bool {
	for i := 0; i+2 < len(p); i++ {
		if p[i] == '%' && (p[i+1] == '2' && (p[i+2] == 'f' || p[i+2] == 'F') || p[i+1] == '5' && (p[i+2] == 'c' || p[i+2] == 'C')) {
			return true
		}
	}
	return false
}

// stripParams drops ";..." up to the next "/" from every segment.
func stripParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	skip := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '/':
			skip = false
			b.WriteByte(c)
		case c == ';':
			skip = true
		case !skip:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// badSegment decodes p's segments (split at "/", "\\", %2F and %5C, as
// NormalizePath does) and describes the first that cannot be read one way
// only, or returns "". It allocates nothing: it runs on every request.
func badSegment(p string) string {
	n, dots := 0, true // length of the segment so far; all of it dots
	var last byte
	end := func() bool { // the segment ends in a trimmed character
		bad := n > 0 && (last == '.' || last == ' ') && !(dots && n <= 2)
		n, dots = 0, true
		return bad
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
		}
		if c < 0x20 || c == 0x7f {
			return "the request path holds a control character"
		}
		if c == '/' || c == '\\' {
			if end() {
				return "a request path segment ends in a dot or a space"
			}
			continue
		}
		n++
		last = c
		dots = dots && c == '.'
	}
	if end() {
		return "a request path segment ends in a dot or a space"
	}
	return ""
}
