package httpauthz

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Forwarded names the one family of forwarded headers a handler trusts to
// carry the original request. The zero value trusts none.
type Forwarded string

// The families. Each has four members, named prefix + "-Method", "-Uri",
// "-Host" and "-Proto":
//
//	x-forwarded: X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host, X-Forwarded-Proto
//	x-original:  X-Original-Method,  X-Original-Uri,  X-Original-Host,  X-Original-Proto
//
// Header names are compared case-insensitively and with "_" read as "-"
// (CGI and several frameworks merge X_Forwarded_Uri into X-Forwarded-Uri),
// so every spelling of a member counts as that member.
const (
	// ForwardedNone: the subrequest itself is the original request (Envoy
	// http_service). Both families are ignored.
	ForwardedNone Forwarded = ""
	// ForwardedXForwarded: Traefik forwardAuth and Caddy forward_auth set
	// the X-Forwarded-* members (overwriting a client's).
	ForwardedXForwarded Forwarded = "x-forwarded"
	// ForwardedXOriginal: nginx auth_request, where the configuration sets
	// the X-Original-* members with proxy_set_header (which replaces a
	// client's header of the same name).
	ForwardedXOriginal Forwarded = "x-original"
)

// ParseForwarded checks a configured family name.
func ParseForwarded(s string) (Forwarded, error) {
	switch f := Forwarded(s); f {
	case ForwardedNone, ForwardedXForwarded, ForwardedXOriginal:
		return f, nil
	}
	return "", fmt.Errorf("must be \"\" (none), %q or %q, not %q", ForwardedXForwarded, ForwardedXOriginal, s)
}

// other is the family that a handler trusting f ignores.
func (f Forwarded) other() Forwarded {
	switch f {
	case ForwardedXForwarded:
		return ForwardedXOriginal
	case ForwardedXOriginal:
		return ForwardedXForwarded
	}
	return ForwardedNone
}

// member is one field of a family.
type member struct {
	suffix   string
	required bool // the trusted family must carry it
	list     bool // "," cannot occur in one value: a list is a repeat
	fold     bool // compared case-insensitively with the other family
}

// members are the fields, in the order they are checked.
var members = []member{
	{suffix: "method", required: true, list: true, fold: true},
	{suffix: "uri", required: true},
	{suffix: "host", required: true, list: true, fold: true},
	{suffix: "proto", list: true, fold: true},
}

// forwardedView is the original request as the trusted family tells it.
type forwardedView struct {
	method, uri, host, proto string
}

// familyValues collects, per lower-case member name ("x-forwarded-uri"),
// every value sent under any spelling of that name.
func familyValues(h http.Header) map[string][]string {
	var out map[string][]string
	for k, vs := range h {
		n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if !strings.HasPrefix(n, "x-forwarded-") && !strings.HasPrefix(n, "x-original-") {
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[n] = append(out[n], vs...)
	}
	return out
}

// readForwarded returns the original request as family f tells it, or a
// description of why it cannot be read one way only.
func readForwarded(f Forwarded, h http.Header) (forwardedView, string) {
	vals := familyValues(h)
	var v forwardedView
	got := [4]*string{&v.method, &v.uri, &v.host, &v.proto}
	for i, m := range members {
		name := string(f) + "-" + m.suffix
		vs := vals[name]
		switch {
		case len(vs) == 0 && m.required:
			return v, "missing " + name + " header"
		case len(vs) == 0:
			continue
		case len(vs) > 1 || (m.list && strings.Contains(vs[0], ",")):
			return v, "repeated " + name + " header"
		}
		val := strings.TrimSpace(vs[0])
		if bad := checkMember(m.suffix, val); bad != "" {
			return v, name + " header " + bad
		}
		// The other family is the client's: ignored when it agrees, refused
		// when it would tell another request.
		oname := string(f.other()) + "-" + m.suffix
		for _, o := range vals[oname] {
			o = strings.TrimSpace(o)
			if o != val && !(m.fold && strings.EqualFold(o, val)) {
				return v, oname + " header disagrees with " + name
			}
		}
		*got[i] = val
	}
	// An absolute-form URI names a host and a scheme of its own.
	if !strings.HasPrefix(v.uri, "/") && v.uri != "*" {
		u, _ := url.ParseRequestURI(v.uri) // checkMember accepted it
		if !strings.EqualFold(u.Host, v.host) {
			return v, string(f) + "-uri host disagrees with " + string(f) + "-host"
		}
		if v.proto != "" && !strings.EqualFold(u.Scheme, v.proto) {
			return v, string(f) + "-uri scheme disagrees with " + string(f) + "-proto"
		}
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		if u.RawQuery != "" {
			p += "?" + u.RawQuery
		}
		v.uri = p
	}
	return v, ""
}

// checkMember returns why a trusted value is not well formed, or "".
func checkMember(suffix, val string) string {
	if val == "" {
		return "is empty"
	}
	switch suffix {
	case "method":
		for i := 0; i < len(val); i++ {
			if !isTchar(val[i]) {
				return "is not a method"
			}
		}
	case "uri":
		if strings.ContainsAny(val, " \t#") {
			return "is not a request target"
		}
		if strings.HasPrefix(val, "/") || val == "*" {
			return ""
		}
		u, err := url.ParseRequestURI(val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return "is not a request target"
		}
	case "host":
		if strings.ContainsAny(val, " \t/@?#\\") {
			return "is not a host"
		}
	case "proto":
		for i := 0; i < len(val); i++ {
			c := val[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
				return "is not a scheme"
			}
		}
	}
	return ""
}

// isTchar reports an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
