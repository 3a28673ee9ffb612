package authz_test

// Tables for the normalisations that decide what a rule is matched
// against (request paths and hosts) and for the one rewrite of a client
// header (the cookie of a token that must not reach the upstream).

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/authz"
)

func TestNormalizePathTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"/a?x=/admin", "/a"},
		{"/a#/admin", "/a"},
		{"/a?x#y", "/a"},
		{"a/b", "/a/b"},
		{"/%61dmin", "/admin"},
		{"/%7Euser/%2d%2E%5F", "/~user/-._"},
		{"/a%2Fb", "/a/b"},
		{"/a%2fb", "/a/b"},
		{"/a%5Cb", "/a/b"},
		{"/a\\b", "/a/b"},
		{"/a%20b", "/a%20b"},
		{"/a%3bb", "/a%3Bb"},
		{"/a%zzb", "/a%zzb"},
		{"/a%2", "/a%2"},
		{"/public/../admin", "/admin"},
		{"/public/%2e%2e/admin", "/admin"},
		{"/public%2F..%2Fadmin", "/admin"},
		{"/public\\..\\admin", "/admin"},
		{"/../../admin", "/admin"},
		{"/..", "/"},
		{"/a/..", "/"},
		{"/a/.", "/a/"},
		{"/a/./b", "/a/b"},
		{"//admin", "/admin"},
		{"/a//b///c", "/a/b/c"},
		{"/a/b//", "/a/b/"},
		{"/.hidden/..x", "/.hidden/..x"},
		{"/ADMIN", "/ADMIN"},
	} {
		if got := authz.NormalizePath(tc.in); got != tc.want {
			t.Errorf("NormalizePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNormalizePathInvariants holds over drawn paths: the result is
// absolute, has no dot or empty segments, no backslash, no encoded
// unreserved character or separator, and normalising it again changes
// nothing — unless the input holds a broken escape ("%4%61" decodes to
// "%4a", which a second pass would read as "J": a path is decoded once,
// as the upstream decodes it once).
func TestNormalizePathInvariants(t *testing.T) {
	t.Parallel()
	const seed = 20261202
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 12))
	pieces := []string{"/", "//", ".", "..", "%2e", "%2E", "%2F", "%2f", "%5C", "\\", "a", "admin", "%61", "%7e",
		"%20", "%3B", "%", "%4", "?", "#", "-", "~", "x.y"}
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		in := b.String()
		got := authz.NormalizePath(in)
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("NormalizePath(%q) = %q: not absolute", in, got)
		}
		if strings.Contains(got, "\\") || strings.Contains(got, "//") {
			t.Fatalf("NormalizePath(%q) = %q: backslash or empty segment", in, got)
		}
		for seg := range strings.SplitSeq(got, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizePath(%q) = %q: dot segment", in, got)
			}
		}
		for _, enc := range []string{"%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%61", "%7e", "%7E"} {
			if strings.Contains(got, enc) {
				t.Fatalf("NormalizePath(%q) = %q: still holds %s", in, got, enc)
			}
		}
		if again := authz.NormalizePath(got); again != got && !brokenEscape(in) {
			t.Fatalf("NormalizePath not idempotent: %q -> %q -> %q", in, got, again)
		}
	}
}

func TestReadHostTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"", "", true},
		{"api.example.com", "api.example.com", true},
		{"API.Example.COM", "api.example.com", true},
		{"api.example.com:8443", "api.example.com", true},
		{"api.example.com:", "api.example.com", true},
		{"api.example.com.", "api.example.com", true},
		{"api.example.com.:443", "api.example.com", true},
		{"under_score.example", "under_score.example", true},
		{"[::1]", "[::1]", true},
		{"[::1]:8080", "[::1]", true},
		{"[FE80::1]", "[fe80::1]", true},
		{"10.0.0.1:80", "10.0.0.1", true},
		{"user@api.example.com", "", false},
		{"api.example.com:80:80", "", false},
		{"api.example.com:http", "", false},
		{"api.example.com:123456", "", false},
		{"api.example.com..", "", false},
		{"a..b", "", false},
		{".a", "", false},
		{".", "", false},
		{":80", "", false},
		{"a b", "", false},
		{"a%2eb", "", false},
		{"a/b", "", false},
		{"a\\b", "", false},
		{"[]", "", false},
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"[::g]", "", false},
		{"exämple.com", "", false},
	} {
		got, ok := authz.ReadHost(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("readHost(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	// A rule's host and a readable request host normalise alike.
	for _, h := range []string{"API.example.com", "api.example.com:8443", "api.example.com.", "[::1]:80"} {
		got, _ := authz.ReadHost(h)
		if n := authz.NormalizeHost(h); n != got {
			t.Errorf("normalizeHost(%q) = %q, readHost = %q", h, n, got)
		}
	}
}

// TestHostRulesThroughCheck: the request host (or :authority when the
// adapter has none) is normalised before host rules match, and an
// unreadable one is bad_request whatever the rules say.
func TestHostRulesThroughCheck(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a, is := newRulesAuthorizer(t, now)
	a0 := is["auth0"]
	rich := a0.sign(t, nil, a0.claims(now, map[string]any{"https://example.com/tenant": "acme"}))
	for _, tc := range []struct {
		host, authority string
		want            authz.Reason
	}{
		{"api.example.com", "", authz.ReasonOK},
		{"API.EXAMPLE.COM:443", "", authz.ReasonOK},
		{"api.example.com.", "", authz.ReasonOK},
		{"", "api.example.com", authz.ReasonOK},
		{"evil.com", "api.example.com", authz.ReasonNoMatchingRule},
		{"x.tenants.example.com", "", authz.ReasonOK},
		{"X.Tenants.Example.Com.:8080", "", authz.ReasonOK},
		{"tenants.example.com", "", authz.ReasonNoMatchingRule},
		{"xtenants.example.com", "", authz.ReasonNoMatchingRule},
		{"api.example.com.evil.com", "", authz.ReasonNoMatchingRule},
		{"user@api.example.com", "", authz.ReasonBadRequest},
		{"api.example.com..", "", authz.ReasonBadRequest},
		{"", "api.example.com:80:80", authz.ReasonBadRequest},
	} {
		h := map[string]string{"authorization": "Bearer " + rich}
		if tc.authority != "" {
			h[":authority"] = tc.authority
		}
		d := a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/t/x", Host: tc.host, Headers: h})
		if d.Reason != tc.want {
			t.Errorf("host %q, :authority %q: reason %s (%s), want %s", tc.host, tc.authority, d.Reason, d.Description, tc.want)
		}
	}
}

func TestCookieWithoutTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, name string
		want     string
		left     bool
	}{
		{"at=tok", "at", "", false},
		{"a=1; at=tok; b=2", "at", "a=1; b=2", true},
		{"at=tok; b=2", "at", "b=2", true},
		{"a=1;at=tok;b=2", "at", "a=1; b=2", true},
		{"a=1 ;  at = tok ; b=2", "at", "a=1; b=2", true},
		{"at=one; a=1; at=two", "at", "a=1", true},
		{"att=1; xat=2; at=tok", "at", "att=1; xat=2", true},
		{"a=at; at=tok", "at", "a=at", true},
		{"flag; at=tok", "at", "flag", true},
		{"a=1;; ;b=2", "at", "a=1; b=2", true},
		{"", "at", "", false},
	} {
		got, left := authz.CookieWithout(tc.in, tc.name)
		if got != tc.want || left != tc.left {
			t.Errorf("cookieWithout(%q, %q) = %q, %v; want %q, %v", tc.in, tc.name, got, left, tc.want, tc.left)
		}
	}
}

// TestCookieRewriteThroughCheck: with forward_token: false and a cookie
// source, an allowed request's cookie header is rewritten without the
// token's cookie (other cookies kept), or removed when nothing else is
// left; the token never reaches the upstream, dry run included.
func TestCookieRewriteThroughCheck(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a, is := newRulesAuthorizer(t, now)
	a0 := is["auth0"]
	good := a0.sign(t, nil, a0.claims(now, nil))
	for _, tc := range []struct {
		name, path, cookie string
		reason             authz.Reason
		setCookie          string // "" = the header is not set
		removeCookie       bool
	}{
		{"among others", "/v1/items", "a=1; at=" + good + "; b=2", authz.ReasonOK, "a=1; b=2", false},
		{"alone", "/v1/items", "at=" + good, authz.ReasonOK, "", true},
		{"first", "/v1/items", "at=" + good + ";session=s", authz.ReasonOK, "session=s", false},
		{"quoted", "/v1/items", `x=1; at="` + good + `"`, authz.ReasonOK, "x=1", false},
		{"dry run that would deny", "/trial", "keep=1; at=" + good, authz.ReasonDryRun, "keep=1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := a.Check(t.Context(), &authz.Request{Method: "GET", Path: tc.path, Host: "api.example.com",
				Headers: map[string]string{"cookie": tc.cookie}})
			if d.Reason != tc.reason || !d.Allow {
				t.Fatalf("reason %s (%s), want allowed %s", d.Reason, d.Description, tc.reason)
			}
			var set []string
			for _, h := range d.Headers {
				if h.Name == "cookie" {
					set = append(set, h.Value)
				}
				if strings.Contains(h.Value, good) {
					t.Errorf("header %s carries the token", h.Name)
				}
			}
			var wantSet []string
			if tc.setCookie != "" {
				wantSet = []string{tc.setCookie}
			}
			if diff := cmp.Diff(wantSet, set); diff != "" {
				t.Errorf("cookie set upstream (-want +got):\n%s", diff)
			}
			removed := false
			for _, h := range d.RemoveHeaders {
				removed = removed || h == "cookie"
			}
			if removed != tc.removeCookie {
				t.Errorf("cookie removed = %v, want %v (remove %v)", removed, tc.removeCookie, d.RemoveHeaders)
			}
			if len(d.RemoveQuery) != 0 {
				t.Errorf("query parameters removed for a cookie token: %v", d.RemoveQuery)
			}
		})
	}
	// Over drawn cookie headers: the token's cookie never survives, and
	// every other cookie does, in order.
	const seed = 20261202
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range 2000 {
		var parts, others []string
		at := rng.IntN(4)
		for j := range 4 {
			if j == at {
				parts = append(parts, "at="+good)
				continue
			}
			if rng.IntN(2) == 0 {
				c := fmt.Sprintf("c%d=v%d", i, j)
				parts = append(parts, c)
				others = append(others, c)
			}
		}
		sep := []string{";", "; ", " ;  "}[rng.IntN(3)]
		got, left := authz.CookieWithout(strings.Join(parts, sep), "at")
		if want := strings.Join(others, "; "); got != want || left != (len(others) > 0) {
			t.Fatalf("cookieWithout(%q) = %q, %v; want %q", strings.Join(parts, sep), got, left, want)
		}
	}
}

// brokenEscape reports whether s holds a "%" not followed by two hex
// digits.
func brokenEscape(s string) bool {
	hex := func(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !hex(s[i+1]) || !hex(s[i+2])) {
			return true
		}
	}
	return false
}
