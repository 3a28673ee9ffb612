package authz_test

import (
	"context"
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

// fuzzAuthorizer has every kind of token source, a dry-run rule and a
// cache, so that FuzzCheck reaches every branch of the decision.
func fuzzAuthorizer(tb testing.TB) *authz.Authorizer {
	tb.Helper()
	a, err := authz.New(fuzzOptions(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// fuzzOptions are fuzzAuthorizer's options, for targets that vary them.
func fuzzOptions(tb testing.TB) authz.Options {
	tb.Helper()
	o := benchOptions(tb, 100, func() time.Time { return time.Now() })
	o.Providers[0].Sources = []authz.TokenSource{
		{Header: "authorization", Prefix: "Bearer "},
		{Header: "x-token"},
		{Query: "access_token"},
		{Cookie: "at"},
	}
	o.Providers[0].PayloadHeader = "x-jwt-payload"
	o.Providers[0].DropToken = true
	o.Rules = append([]authz.Rule{
		{Name: "dry", Match: authz.Match{PathPrefix: "/dry"}, DryRun: true, Require: authz.Requirement{Scopes: []string{"admin"}}},
		{Name: "cors", Match: authz.Match{PathRegex: `^/cors(/.*)?$`}, AllowCORSPreflight: true},
		{Name: "claims", Match: authz.Match{PathPrefix: "/claims", Hosts: []string{"*.example.com"}},
			Require: authz.Requirement{Claims: []authz.ClaimRequirement{{Name: "https://example.com/claims/org.tier", Nested: true, Values: []authz.ClaimValue{"enterprise"}}}}},
	}, o.Rules...)
	return o
}

// oddBenchTokens are tokens of the bench provider's RSA key that break one
// of the one-spelling rules, validly signed over their text: seeds that
// take the fuzzers to each parser rule.
func oddBenchTokens(tb testing.TB) []string {
	tb.Helper()
	enc := base64.RawURLEncoding
	cl := string(mustJSON(benchClaims(time.Now(), "svc@clients")))
	rsaKey := keys(tb).rsa
	sign := func(h, p string) string {
		return raw64(rsaKey, enc.EncodeToString([]byte(h)), enc.EncodeToString([]byte(p)))
	}
	good := benchToken(tb, "RS256", time.Now(), "svc@clients")
	i := strings.LastIndexByte(good, '.')
	return []string{
		sign(`{"ALG":"RS256","KID":"RS256"}`, cl),
		sign(`{"alg":"RS256","kid":"RS256","alg":"RS256"}`, cl),
		sign(`{"alg":"RS256","\u006bid":"ES256","kid":"RS256"}`, cl),
		sign(`{"alg":"RS256","kid":"RS256"}`, `{"iss":"https://evil.example/",`+cl[1:]),
		sign(`{"alg":"RS256","kid":"RS256"}`, cl[:len(cl)-1]+`,"x":{"a":1,"a":2}}`),
		sign(`{"alg":"RS256","kid":"RS256"}`, cl+`}junk`),
		sign(`{"alg":"RS256","kid":null}`, cl),
		sign(`{"alg":"RS256","kid":"RS256"}`, regexp.MustCompile(`"exp":[0-9]+`).ReplaceAllString(cl, `"exp":1e300`)),
		raw64(rsaKey, good[:strings.IndexByte(good, '.')], oddLength(cl)),
		good[:i+1] + setTrailingBit(good[i+1:]),
		enc.EncodeToString([]byte(`{"alg":"NONE"}`)) + "." + enc.EncodeToString([]byte(cl)) + ".",
	}
}

// FuzzCheck drives the whole Check with arbitrary method, path, host,
// headers, context extensions and token: it never panics, always answers
// with a reason from the closed set and a status that fits it, and never
// allows a request that carries a token it did not verify.
func FuzzCheck(f *testing.F) {
	good := benchToken(f, "RS256", time.Now(), "svc@clients")
	f.Add("GET", "/v1/orders?x=1", "api.example.com", "Bearer "+good, "", "", "", "", "")
	f.Add("GET", "/healthz", "api.example.com", "", "", "", "", "", "")
	f.Add("OPTIONS", "/cors/x", "a.example.com", "", "", "", "GET", "", "")
	f.Add("POST", "/dry/x", "a.example.com", "Bearer "+good, "", "", "", "", "")
	f.Add("GET", "/claims/x", "b.example.com:8443", "", good, "", "", "", "")
	f.Add("GET", "/v1?access_token="+good, "h", "", "", "", "", "", "")
	f.Add("GET", "/v1", "h", "", "", "a=b; at="+good+"; c=d", "", "", "")
	f.Add("GET", "/%2e%2e/admin/../x", "[::1]:80", "bearer  "+good+" ", "", "", "", "api", "read:target extra")
	f.Add("GET", "/admin", "h", "Bearer a.b.c", "a.b.c", "at=", "", "nope", "")
	f.Add("GET", "/", "h", "Basic dXNlcjpwYXNz", "", "", "", "", "")
	f.Add("get", "", "", "Bearer", "", "", "", "", "")
	f.Add("GET", "/dry/..;/admin", "h", "Basic eA==,Bearer "+good, "", "", "", "", "")
	f.Add("HEAD", "/healthz", "api.example.com..", "Bearer\t"+good, "", "", "", "", "admin")
	f.Add("OPTIONS", "*", "a:80:80", "", "", "", "G T", "", "")
	f.Add("GET", "/v1.?access%5Ftoken="+good, "user@h", "", "", "", "", "", "")
	for _, tok := range oddBenchTokens(f) {
		f.Add("GET", "/v1", "api.example.com", "Bearer "+tok, "", "", "", "", "")
		f.Add("GET", "/v1?access_token="+tok, "h", "", tok, "at="+tok, "", "", "")
	}
	a := fuzzAuthorizer(f)
	f.Fuzz(func(t *testing.T, method, path, host, authorization, xToken, cookie, acrm, rule, scopes string) {
		h := map[string]string{":method": method, ":path": path, ":authority": host}
		for name, v := range map[string]string{"authorization": authorization, "x-token": xToken,
			"cookie": cookie, "access-control-request-method": acrm} {
			if v != "" {
				h[name] = v
			}
		}
		ctxExt := map[string]string{}
		if rule != "" {
			ctxExt["rule"] = rule
		}
		if scopes != "" {
			ctxExt["scopes"] = scopes
		}
		r := &authz.Request{Method: method, Path: path, Host: host, Headers: h, Context: ctxExt}
		d := a.Check(context.Background(), r)
		if !slices.Contains(authz.Reasons, d.Reason) {
			t.Fatalf("reason %q not in the closed set", d.Reason)
		}
		if d.Allow != (d.Status == 200) || d.Status != d.Reason.Status() && d.Reason != authz.ReasonDryRun {
			t.Fatalf("allow %v, status %d, reason %q", d.Allow, d.Status, d.Reason)
		}
		if d.Allow && d.Reason == authz.ReasonOK {
			// Only the seeds' good token can be verified: the fuzzer
			// cannot sign.
			if !strings.Contains(authorization+xToken+cookie+path, good) {
				t.Fatalf("allowed without the good token: %+v", d)
			}
		}
		if !d.Allow && (len(d.Headers) > 0 || len(d.RemoveHeaders) > 0 || d.Body == nil) {
			t.Fatalf("denial with upstream headers or no body: %+v", d)
		}
	})
}

// FuzzBearerToken fuzzes token extraction from the Authorization header:
// the answer depends only on the header's shape. Surrounding spaces and
// tabs are not part of the value. A value whose first word is not Bearer,
// and no comma-joined part of it whose first word is, is missing_token;
// "Bearer" with nothing after it is malformed_token; the good token behind
// any case of the scheme and exactly one space is allowed; anything else
// behind the scheme (a tab, two spaces, a second credential) is denied as
// a token problem.
func FuzzBearerToken(f *testing.F) {
	good := benchToken(f, "RS256", time.Now(), "svc@clients")
	for _, s := range []string{
		"Bearer " + good, "bearer " + good, "BEARER " + good + "  ", "Bearer  " + good,
		"Bearer", "Bearer ", "Bearer\t" + good, "Basic Zm9vOmJhcg==", "", "Bearer a.b.c",
		"Bearer " + good + " " + good, "Bearer " + strings.Repeat("a", authz.MaxTokenBytes+1),
		"Token " + good, " Bearer " + good, "Basic eA==,Bearer " + good, "Bearer " + good + ",Basic eA==",
		"Bearer," + good, "Digest a=b, c=d", "Bearerx " + good,
	} {
		f.Add(s)
	}
	for _, tok := range oddBenchTokens(f) {
		f.Add("Bearer " + tok)
	}
	a := newBenchAuthorizer(f, 100)
	first := func(v string) string { // the first word: up to a space, tab or comma
		if i := strings.IndexAny(v, " \t,"); i >= 0 {
			return v[:i]
		}
		return v
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := map[string]string{}
		if v != "" {
			h["authorization"] = v
		}
		d := a.Check(context.Background(), &authz.Request{Method: "GET", Path: "/v1", Host: "api.example.com", Headers: h})
		tv := strings.Trim(v, " \t")
		ours := strings.EqualFold(first(tv), "bearer")
		anyOurs := ours
		for part := range strings.SplitSeq(tv, ",") {
			anyOurs = anyOurs || strings.EqualFold(first(strings.TrimLeft(part, " \t")), "bearer")
		}
		switch {
		case strings.EqualFold(tv, "bearer"):
			if d.Reason != authz.ReasonMalformedToken {
				t.Fatalf("%q: got %q, want malformed_token", v, d.Reason)
			}
		case !anyOurs:
			if d.Reason != authz.ReasonMissingToken {
				t.Fatalf("%q: got %q, want missing_token", v, d.Reason)
			}
		case ours && tv[len("bearer"):] == " "+good:
			if d.Reason != authz.ReasonOK {
				t.Fatalf("%q: got %q, want ok", v, d.Reason)
			}
		default:
			switch d.Reason {
			case authz.ReasonOK, authz.ReasonMissingToken, authz.ReasonAnonymous, authz.ReasonInsufficientScope:
				t.Fatalf("%q: got %q for a token that is not the good one", v, d.Reason)
			}
			if d.Allow || d.Status != 401 {
				t.Fatalf("%q: allow %v status %d, want a 401", v, d.Allow, d.Status)
			}
		}
	})
}
