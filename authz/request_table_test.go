package authz_test

import (
	"context"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

// TestRequestShapes holds, on static keys and without gRPC, the reading of
// request shapes that must mean one thing: where each lands (reason and
// rule) and why it was refused (description).
func TestRequestShapes(t *testing.T) {
	t.Parallel()
	good := benchToken(t, "EdDSA", time.Now(), "svc@clients")
	a := fuzzAuthorizer(t)
	o := fuzzOptions(t)
	o.Paths = authz.PathOptions{Parameters: authz.PathParamsStrip}
	strip, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Paths = authz.PathOptions{Parameters: authz.PathParamsKeep, CaseInsensitive: true}
	keepFold, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	const (
		badPath   = "the request path does not start with /"
		params    = "the request path holds ; parameters"
		encSemi   = "the request path holds an encoded ;"
		encSep    = "the request path holds ; parameters and an encoded separator"
		trimmed   = "a request path segment ends in a dot or a space"
		control   = "the request path holds a control character"
		badHost   = "the request host cannot be read"
		malformed = "the token is malformed: "
	)
	for _, tc := range []struct {
		name       string
		a          *authz.Authorizer
		method     string
		path, host string
		headers    map[string]string
		reason     authz.Reason
		rule, desc string
	}{
		{name: "plain", path: "/v1", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "absolute form", path: "http://evil/admin", reason: authz.ReasonBadRequest, desc: badPath},
		{name: "relative", path: "admin", reason: authz.ReasonBadRequest, desc: badPath},
		{name: "empty", path: "", reason: authz.ReasonBadRequest, desc: badPath},
		{name: "query only", path: "?x=/admin", reason: authz.ReasonBadRequest, desc: badPath},
		{name: "asterisk GET", path: "*", reason: authz.ReasonBadRequest, desc: badPath},
		{name: "asterisk OPTIONS", method: "OPTIONS", path: "*", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "semicolon", path: "/admin;x", reason: authz.ReasonBadRequest, desc: params},
		{name: "dot-dot semicolon", path: "/healthz/..;/admin", reason: authz.ReasonBadRequest, desc: params},
		{name: "semicolon in query is fine", path: "/healthz?a=1;b=2", reason: authz.ReasonAnonymous, rule: "health"},
		{name: "encoded semicolon", path: "/admin%3bx", reason: authz.ReasonBadRequest, desc: encSemi},
		{name: "strip semicolon", a: strip, path: "/healthz/..;/admin", reason: authz.ReasonMissingToken, rule: "admin"},
		{name: "strip jsessionid", a: strip, path: "/healthz;jsessionid=1", reason: authz.ReasonAnonymous, rule: "health"},
		{name: "strip encoded semicolon", a: strip, path: "/healthz%3B", reason: authz.ReasonBadRequest, desc: encSemi},
		{name: "strip encoded slash", a: strip, path: "/healthz%2f..;%2fadmin", reason: authz.ReasonBadRequest, desc: encSep},
		{name: "strip backslash", a: strip, path: `/healthz\..;\admin`, reason: authz.ReasonBadRequest, desc: encSep},
		{name: "keep semicolon", a: keepFold, path: "/healthz;x", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "keep encoded semicolon", a: keepFold, path: "/healthz%3Bx", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "fold case", a: keepFold, path: "/HEALTHZ", reason: authz.ReasonAnonymous, rule: "health"},
		{name: "case-sensitive by default", path: "/HEALTHZ", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "fold case regex", a: keepFold, method: "OPTIONS", path: "/CORS/x",
			headers: map[string]string{"origin": "o", "access-control-request-method": "GET"}, reason: authz.ReasonAnonymous, rule: "cors"},
		{name: "trailing dot", path: "/healthz.", reason: authz.ReasonBadRequest, desc: trimmed},
		{name: "trailing encoded dot", path: "/healthz%2E", reason: authz.ReasonBadRequest, desc: trimmed},
		{name: "trailing space", path: "/healthz%20", reason: authz.ReasonBadRequest, desc: trimmed},
		{name: "trailing space mid-path", path: "/admin%20/x", reason: authz.ReasonBadRequest, desc: trimmed},
		{name: "three dots", path: "/.../admin", reason: authz.ReasonBadRequest, desc: trimmed},
		{name: "dots resolve", path: "/x/./../healthz/", reason: authz.ReasonAnonymous, rule: "health"},
		{name: "inner dot", path: "/v1.2/x", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "NUL", path: "/healthz%00", reason: authz.ReasonBadRequest, desc: control},
		{name: "raw tab", path: "/healthz\t", reason: authz.ReasonBadRequest, desc: control},
		{name: "host trailing dot", path: "/claims", host: "a.example.com.", reason: authz.ReasonMissingToken, rule: "claims"},
		{name: "host two dots", path: "/claims", host: "a.example.com..", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host two ports", path: "/v1", host: "a:80:80", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host userinfo", path: "/claims", host: "x@a.example.com", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host space", path: "/v1", host: "a b", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host percent", path: "/v1", host: "a%2eexample.com", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host bad port", path: "/v1", host: "a:x", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host long port", path: "/v1", host: "a:1234567", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host ipv6", path: "/v1", host: "[::1]:443", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "host ipv6 empty", path: "/v1", host: "[]", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host ipv6 zone", path: "/v1", host: "[fe80::1%25eth0]", reason: authz.ReasonBadRequest, desc: badHost},
		{name: "host upper case", path: "/claims", host: "A.EXAMPLE.COM:8443", reason: authz.ReasonMissingToken, rule: "claims"},
		{name: "HEAD meets GET", method: "HEAD", path: "/healthz", reason: authz.ReasonAnonymous, rule: "health"},
		{name: "POST misses GET", method: "POST", path: "/healthz", reason: authz.ReasonMissingToken, rule: "api"},
		{name: "preflight", method: "OPTIONS", path: "/cors/x", headers: map[string]string{"origin": "o", "access-control-request-method": "PATCH"},
			reason: authz.ReasonAnonymous, rule: "cors"},
		{name: "preflight without origin", method: "OPTIONS", path: "/cors/x", headers: map[string]string{"access-control-request-method": "PATCH"},
			reason: authz.ReasonMissingToken, rule: "cors"},
		{name: "preflight bad method", method: "OPTIONS", path: "/cors/x", headers: map[string]string{"origin": "o", "access-control-request-method": "GET\r\n"},
			reason: authz.ReasonMissingToken, rule: "cors"},
		{name: "bearer", path: "/v1", headers: map[string]string{"authorization": "Bearer " + good}, reason: authz.ReasonOK, rule: "api"},
		{name: "bearer tab", path: "/healthz", headers: map[string]string{"authorization": "Bearer\t" + good},
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "the scheme is not followed by one space and the token"},
		{name: "bearer comma", path: "/healthz", headers: map[string]string{"authorization": "Bearer," + good},
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "the scheme is not followed by one space and the token"},
		{name: "basic then bearer", path: "/healthz", headers: map[string]string{"authorization": "Basic eA==,Bearer " + good},
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "more than one credential in header"},
		{name: "bearer then basic", path: "/healthz", headers: map[string]string{"authorization": "Bearer " + good + ", Basic eA=="},
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "more than one credential in header"},
		{name: "digest", path: "/healthz", headers: map[string]string{"authorization": `Digest a="1", b="2"`}, reason: authz.ReasonAnonymous, rule: "health"},
		{name: "x-token with comma", path: "/healthz", headers: map[string]string{"x-token": good + "," + good},
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "more than one credential in header"},
		{name: "query raw name", path: "/v1?access_token=" + good, reason: authz.ReasonOK, rule: "api"},
		{name: "query encoded name", path: "/healthz?access%5Ftoken=" + good,
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "query parameter name access_token written another way"},
		{name: "query upper-case name", path: "/healthz?Access_Token=" + good,
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "query parameter name access_token written another way"},
		{name: "query behind semicolon", path: "/healthz?a=1;access_token=" + good,
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "query parameter name access_token written another way"},
		{name: "cookie encoded name", path: "/healthz", headers: map[string]string{"cookie": "x=1; a%74=" + good},
			reason: authz.ReasonMalformedToken, rule: "health", desc: malformed + "cookie name at written another way"},
		{name: "cookie raw name", path: "/v1", headers: map[string]string{"cookie": "x=1; at=" + good}, reason: authz.ReasonOK, rule: "api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			az := tc.a
			if az == nil {
				az = a
			}
			method, host := tc.method, tc.host
			if method == "" {
				method = "GET"
			}
			if host == "" {
				host = "api.example.com"
			}
			d := az.Check(context.Background(), &authz.Request{Method: method, Path: tc.path, Host: host, Headers: tc.headers})
			if d.Reason != tc.reason || d.Rule != tc.rule || tc.desc != "" && d.Description != tc.desc {
				t.Errorf("got %s rule %q %q, want %s rule %q %q", d.Reason, d.Rule, d.Description, tc.reason, tc.rule, tc.desc)
			}
			if d.Reason == authz.ReasonBadRequest && (d.Status != 400 || len(d.Challenges) != 0 || d.Allow) {
				t.Errorf("bad_request rendered as status %d, challenges %q, allow %v", d.Status, d.Challenges, d.Allow)
			}
		})
	}
}
