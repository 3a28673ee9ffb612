package authz_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

// asciiLower lower-cases ASCII letters only, leaving every other byte as
// it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzRequestShape fuzzes the request shapes that must be read one way
// only: a path that does not start with "/" (but OPTIONS *) or holds ";"
// is bad_request under the default policy and never under strip; a token
// taken from the query was under its raw name (Envoy removes by that
// name); with paths.case_insensitive the letter case of the path changes
// nothing.
func FuzzRequestShape(f *testing.F) {
	good := benchToken(f, "RS256", time.Now(), "svc@clients")
	for _, s := range [][3]string{
		{"GET", "/public/..;/admin/users", "api.example.com"},
		{"GET", "/admin;x", "api.example.com"},
		{"GET", "/admin%3Bx/y", "api.example.com"},
		{"GET", "http://evil/admin", "api.example.com"},
		{"OPTIONS", "*", "api.example.com"},
		{"GET", "*", "api.example.com"},
		{"GET", "/admin.", "api.example.com"},
		{"GET", "/admin%20", "api.example.com"},
		{"GET", "/ADMIN/x", "api.example.com"},
		{"GET", "/v1?access%5Ftoken=" + good, "api.example.com"},
		{"GET", "/v1?Access_Token=" + good, "api.example.com"},
		{"GET", "/v1?access_token=" + good + "&x=%zz", "api.example.com"},
		{"HEAD", "/healthz", "api.example.com"},
		{"GET", "/v1", "api.example.com.."},
		{"GET", "/v1", "a:80:80"},
		{"GET", "/v1", "user@host"},
		{"GET", "/v1", "[::1]:8080"},
		{"GET", "/claims/x;y", "b.example.com:8443"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	a := fuzzAuthorizer(f)
	o := fuzzOptions(f)
	o.Paths = authz.PathOptions{Parameters: authz.PathParamsStrip, CaseInsensitive: true}
	ci, err := authz.New(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, host string) {
		check := func(a *authz.Authorizer, path string) authz.Decision {
			return a.Check(context.Background(), &authz.Request{Method: method, Path: path, Host: host,
				Headers: map[string]string{":path": path, ":authority": host}})
		}
		d := check(a, path)
		raw, query, _ := strings.Cut(path, "?")
		if i := strings.IndexByte(raw, '#'); i >= 0 {
			raw = raw[:i]
		}
		asterisk := strings.EqualFold(method, "OPTIONS") && path == "*"
		if !asterisk && !strings.HasPrefix(raw, "/") && d.Reason != authz.ReasonBadRequest {
			t.Fatalf("%s %q: %s, want bad_request", method, path, d.Reason)
		}
		if strings.Contains(raw, ";") && d.Reason != authz.ReasonBadRequest {
			t.Fatalf("%s %q: %s, want bad_request for ; parameters", method, path, d.Reason)
		}
		if len(d.RemoveQuery) > 0 {
			for kv := range strings.SplitSeq(query, "&") {
				k, _, _ := strings.Cut(kv, "=")
				if dk, err := url.QueryUnescape(k); err == nil && strings.EqualFold(dk, "access_token") && k != "access_token" {
					t.Fatalf("%q: token taken while %q would stay upstream", path, k)
				}
			}
		}
		dc := check(ci, path)
		if dc.Reason == authz.ReasonBadRequest && dc.Description == "the request path holds ; parameters" {
			t.Fatalf("%q: strip refused ; parameters", path)
		}
		lower := asciiLower(raw) + path[len(raw):]
		if dl := check(ci, lower); dl.Reason != dc.Reason || dl.Rule != dc.Rule {
			t.Fatalf("case-insensitive: %q -> %s %q, %q -> %s %q", path, dc.Reason, dc.Rule, lower, dl.Reason, dl.Rule)
		}
	})
}
