package authz_test

// The decision tables of the core, on static keys: every reason with its
// status, challenge and body, and every matcher and requirement, decided by
// authz.Authorizer alone (no config, gRPC or JWKS server), in milliseconds.
// envoy/ keeps the golden renderings of these decisions and a gRPC smoke
// test of each reason.

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// tableIssuer is one provider's signing key, published to the authorizer
// as a StaticKeys of one key.
type tableIssuer struct {
	iss, kid, alg string
	key           crypto.Signer
}

var (
	tableKeysOnce sync.Once
	tableKeys     map[string]crypto.Signer
)

// tableIssuers are generated once per test binary: RSA generation is the
// slow part of these tests.
func tableIssuers(tb testing.TB) map[string]tableIssuer {
	tb.Helper()
	tableKeysOnce.Do(func() {
		tableKeys = map[string]crypto.Signer{}
		for _, name := range []string{"auth0", "other", "ecdsa", "pss", "eddsa"} {
			alg := map[string]string{"ecdsa": "ES256", "pss": "PS256", "eddsa": "EdDSA"}[name]
			if alg == "" {
				alg = "RS256"
			}
			k, err := jwkstest.GenerateKey(alg)
			if err != nil {
				panic(err)
			}
			tableKeys[name] = k
		}
	})
	out := map[string]tableIssuer{}
	for name, k := range tableKeys {
		alg := map[string]string{"ecdsa": "ES256", "pss": "PS256", "eddsa": "EdDSA"}[name]
		if alg == "" {
			alg = "RS256"
		}
		out[name] = tableIssuer{iss: "https://" + name + ".example/", kid: name + "-key-1", alg: alg, key: k}
	}
	return out
}

func (i tableIssuer) keys() authz.StaticKeys {
	return authz.StaticKeys{{ID: i.kid, Algorithm: i.alg, Public: i.key.Public()}}
}

// claims are an Auth0 client-credentials token's claims at now, with
// changes applied (a nil value deletes the claim).
func (i tableIssuer) claims(now time.Time, changes map[string]any) map[string]any {
	return jwkstest.With(map[string]any{
		"iss": i.iss, "sub": "client-1@clients", "aud": jwkstest.Audience,
		"iat": now.Unix(), "exp": now.Unix() + 3600,
		"scope": jwkstest.Scope, "gty": "client-credentials", "azp": jwkstest.ClientID,
	}, changes)
}

// sign signs claims with the issuer's key; header entries override or add
// to {alg, typ: JWT, kid} (nil deletes).
func (i tableIssuer) sign(tb testing.TB, header, claims map[string]any) string {
	tb.Helper()
	h := map[string]any{"kid": i.kid}
	maps.Copy(h, header)
	return jwkstest.SignToken(tb, i.alg, i.key, h, claims)
}

// reasonWorld is the authorizer of envoy's reason table (five issuers and
// the contract's example rules), on static keys and a fixed clock.
type reasonWorld struct {
	a   *authz.Authorizer
	is  map[string]tableIssuer
	now time.Time
}

func newReasonWorld(tb testing.TB) *reasonWorld {
	tb.Helper()
	w := &reasonWorld{is: tableIssuers(tb), now: time.Unix(1_800_000_000, 0)}
	aud := []string{jwkstest.Audience}
	skew := 30 * time.Second
	prov := func(name string, algs ...string) authz.Provider {
		i := w.is[name]
		return authz.Provider{Name: name, Issuer: i.iss, Audiences: aud, Algorithms: algs, Keys: i.keys(), ClockSkew: skew}
	}
	auth0 := prov("auth0")
	auth0.RequiredClaims = []string{"sub"}
	auth0.ClaimHeaders = []authz.ClaimHeader{
		{Claim: "sub", Header: "x-jwt-sub"}, {Claim: "scope", Header: "x-jwt-scope"},
		{Claim: "permissions", Header: "x-jwt-permissions"}, {Claim: "azp", Header: "x-jwt-client-id"},
	}
	other := prov("other")
	other.ClaimHeaders = []authz.ClaimHeader{{Claim: "sub", Header: "x-other-sub"}}
	eddsa := prov("eddsa", "EdDSA")
	eddsa.MaxLifetime, eddsa.TokenType = time.Hour, "at+jwt"
	a, err := authz.New(authz.Options{
		Realm:     "jwt-authz",
		Providers: []authz.Provider{auth0, other, prov("ecdsa", "ES256"), prov("pss", "PS256"), eddsa},
		Rules: []authz.Rule{
			{Name: "health", Match: authz.Match{PathPrefix: "/healthz", Methods: []string{"GET"}}, AllowAnonymous: true},
			{Name: "admin", Match: authz.Match{PathPrefix: "/admin"}, Require: authz.Requirement{Providers: []string{"auth0"}, Scopes: []string{"admin:write"}}},
			{Name: "beta", Match: authz.Match{PathPrefix: "/beta"}, Require: authz.Requirement{Scopes: []string{"beta:use"}}, DryRun: true},
			{Name: "api", Match: authz.Match{PathPrefix: "/"}, Require: authz.Requirement{
				AnyScopes: []string{"read:target", "admin:write"},
				Claims:    []authz.ClaimRequirement{{Name: "gty", Values: []authz.ClaimValue{"client-credentials"}}},
			}},
		},
		DenyBody: authz.BodyJSON,
		Now:      func() time.Time { return w.now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	w.a = a
	return w
}

// tableReq is a request in the tables: a GET of path with an optional
// bearer token, headers and context extensions.
type tableReq struct {
	Method, Path, Host, Token string
	Headers, Context          map[string]string
}

func (r tableReq) request() *authz.Request {
	h := map[string]string{}
	maps.Copy(h, r.Headers)
	if r.Token != "" {
		h["authorization"] = "Bearer " + r.Token
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	path := r.Path
	if path == "" {
		path = "/"
	}
	host := r.Host
	if host == "" {
		host = "api.example.com"
	}
	return &authz.Request{Method: method, Path: path, Host: host, Headers: h, Context: r.Context}
}

// outcome is what a reason table asserts of a decision.
type outcome struct {
	allow     bool
	reason    authz.Reason
	status    int
	challenge string // exact; "" = none
}

// assertOutcome checks a decision against the contract: allow, reason,
// status, challenge, and for a denial the JSON body's error and reason.
func assertOutcome(t *testing.T, d authz.Decision, want outcome) {
	t.Helper()
	if d.Allow != want.allow || d.Reason != want.reason || d.Status != want.status {
		t.Fatalf("decision = allow %v, %s, %d (%s); want allow %v, %s, %d",
			d.Allow, d.Reason, d.Status, d.Description, want.allow, want.reason, want.status)
	}
	if diff := cmp.Diff(want.challenge, challenge(d)); diff != "" {
		t.Errorf("challenge (-want +got):\n%s", diff)
	}
	if want.allow {
		if d.Body != nil || challenge(d) != "" {
			t.Errorf("an allow carries a body %q or challenge %q", d.Body, challenge(d))
		}
		return
	}
	if d.ContentType != "application/json" {
		t.Errorf("content type = %q, want application/json", d.ContentType)
	}
	var body struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Reason           string `json:"reason"`
	}
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatalf("body %q: %v", d.Body, err)
	}
	wantErr := map[int]string{400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope",
		500: "server_error", 503: "temporarily_unavailable"}[want.status]
	if want.reason == authz.ReasonMissingToken {
		wantErr = "unauthorized"
	}
	if body.Error != wantErr || body.Reason != string(want.reason) || body.ErrorDescription != d.Description {
		t.Errorf("body = %+v; want error %q, reason %q, error_description %q", body, wantErr, want.reason, d.Description)
	}
	if len(d.Headers)+len(d.RemoveHeaders)+len(d.RemoveQuery) != 0 {
		t.Errorf("a denial mutates the upstream request: %v %v %v", d.Headers, d.RemoveHeaders, d.RemoveQuery)
	}
}

// TestDecisionEveryReason is the reason table: each way a request is
// allowed or denied, with the status, challenge and body the contract
// gives it.
func TestDecisionEveryReason(t *testing.T) {
	t.Parallel()
	w := newReasonWorld(t)
	now := w.now.Unix()
	a0, b, es, ps, ed := w.is["auth0"], w.is["other"], w.is["ecdsa"], w.is["pss"], w.is["eddsa"]
	tok := func(i tableIssuer, changes map[string]any) string { return i.sign(t, nil, i.claims(w.now, changes)) }
	good := tok(a0, nil)
	admin := tok(a0, map[string]any{"scope": "read:target admin:write"})
	const realm = `Bearer realm="jwt-authz"`
	inv := func(desc string) string { return realm + `, error="invalid_token", error_description="` + desc + `"` }
	ok := outcome{allow: true, reason: authz.ReasonOK, status: 200}
	deny401 := func(r authz.Reason, desc string) outcome {
		return outcome{reason: r, status: 401, challenge: inv(desc)}
	}
	scope403 := func(r authz.Reason, scope string) outcome {
		c := realm + `, error="insufficient_scope"`
		if scope != "" {
			c += `, scope="` + scope + `"`
		}
		return outcome{reason: r, status: 403, challenge: c}
	}
	tests := []struct {
		name string
		req  tableReq
		want outcome
	}{
		{"valid token", tableReq{Path: "/echo", Token: good}, ok},
		{"anonymous health", tableReq{Path: "/healthz"}, outcome{allow: true, reason: authz.ReasonAnonymous, status: 200}},
		{"dry run lacks scope", tableReq{Path: "/beta/x", Token: good}, outcome{allow: true, reason: authz.ReasonDryRun, status: 200}},
		{"dry run without token", tableReq{Path: "/beta/x"}, outcome{allow: true, reason: authz.ReasonDryRun, status: 200}},
		{"no token", tableReq{Path: "/echo"}, outcome{reason: authz.ReasonMissingToken, status: 401, challenge: realm}},
		{"basic scheme is no token", tableReq{Path: "/echo", Headers: map[string]string{"authorization": "Basic dXNlcjpwdw=="}},
			outcome{reason: authz.ReasonMissingToken, status: 401, challenge: realm}},
		{"not three parts", tableReq{Path: "/echo", Token: "abc.def"},
			deny401(authz.ReasonMalformedToken, "the token is malformed: not a JWS compact serialization")},
		{"empty bearer", tableReq{Path: "/echo", Headers: map[string]string{"authorization": "Bearer "}},
			deny401(authz.ReasonMalformedToken, "the token is malformed: empty token")},
		{"lower-case bearer scheme works", tableReq{Path: "/echo", Headers: map[string]string{"authorization": "bearer " + good}}, ok},
		{"crit header", tableReq{Path: "/echo", Token: a0.sign(t, map[string]any{"crit": []string{"exp"}}, a0.claims(w.now, nil))},
			deny401(authz.ReasonMalformedToken, "the token is malformed: crit header not supported")},
		{"second authorization header joined by envoy", tableReq{Path: "/echo", Headers: map[string]string{"authorization": "Bearer " + good + ",Bearer " + good}},
			deny401(authz.ReasonMalformedToken, "the token is malformed: more than one credential in header")},
		{"token over 16 KiB", tableReq{Path: "/echo", Token: strings.Repeat("a", 8<<10) + "." + strings.Repeat("b", 9<<10) + ".c"},
			deny401(authz.ReasonMalformedToken, "the token is malformed: token too large")},
		{"unknown issuer", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"iss": "https://evil.example/"})},
			deny401(authz.ReasonUnknownIssuer, "the token's issuer is not accepted")},
		{"no iss", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"iss": nil})},
			deny401(authz.ReasonUnknownIssuer, "the token has no issuer")},
		{"issuer not allowed by rule", tableReq{Path: "/admin", Token: tok(b, map[string]any{"scope": "admin:write"})},
			deny401(authz.ReasonUnknownIssuer, "the token's issuer is not accepted on this route")},
		{"alg none", tableReq{Path: "/echo", Token: jwkstest.Unsigned("nOnE", a0.claims(w.now, nil))},
			deny401(authz.ReasonDisallowedAlgorithm, "unsigned tokens are not accepted")},
		{"HS256 with the RSA public key as secret", tableReq{Path: "/echo", Token: hmacWithPublicKey(t, a0.kid, a0.key.Public().(*rsa.PublicKey), a0.claims(w.now, nil))},
			deny401(authz.ReasonDisallowedAlgorithm, "the token's algorithm is not accepted")},
		{"unknown kid", tableReq{Path: "/echo", Token: a0.sign(t, map[string]any{"kid": "nope"}, a0.claims(w.now, nil))},
			deny401(authz.ReasonUnknownKey, "no usable key matches the token's key id")},
		{"iss A with B's kid", tableReq{Path: "/echo", Token: b.sign(t, nil, a0.claims(w.now, nil))},
			deny401(authz.ReasonUnknownKey, "no usable key matches the token's key id")},
		{"jku x5u jwk headers are not keys", tableReq{Path: "/echo", Token: b.sign(t,
			map[string]any{"kid": "attacker", "jku": "https://attacker.example/jwks", "x5u": "https://attacker.example/x5u"}, a0.claims(w.now, nil))},
			deny401(authz.ReasonUnknownKey, "no usable key matches the token's key id")},
		{"tampered payload", tableReq{Path: "/echo", Token: tamperScope(good)},
			deny401(authz.ReasonInvalidSignature, "the token's signature is invalid")},
		{"no kid signed by a foreign key", tableReq{Path: "/echo", Token: b.sign(t, map[string]any{"kid": nil}, a0.claims(w.now, nil))},
			deny401(authz.ReasonInvalidSignature, "the token's signature is invalid")},
		{"no kid signed by the provider", tableReq{Path: "/echo", Token: a0.sign(t, map[string]any{"kid": nil}, a0.claims(w.now, nil))}, ok},
		{"expired", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"exp": now - 60, "iat": now - 3600})},
			deny401(authz.ReasonExpired, "the token has expired")},
		{"expired within skew", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"exp": now - 10})}, ok},
		{"nbf in the future", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"nbf": now + 600})},
			deny401(authz.ReasonNotYetValid, "the token is not valid yet")},
		{"iat in the future", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"iat": now + 600})},
			deny401(authz.ReasonNotYetValid, "the token was issued in the future")},
		{"wrong audience", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"aud": "urn:other"})},
			deny401(authz.ReasonInvalidAudience, "the token's audience is not accepted")},
		{"audience array", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"aud": []string{"urn:x", jwkstest.Audience}})}, ok},
		{"empty audience array", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"aud": []string{}})},
			deny401(authz.ReasonInvalidAudience, "the token's audience is not accepted")},
		{"no audience", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"aud": nil})},
			deny401(authz.ReasonInvalidAudience, "the token's audience is not accepted")},
		{"lifetime over max", tableReq{Path: "/echo", Token: ed.sign(t, map[string]any{"typ": "at+jwt"}, ed.claims(w.now, map[string]any{"exp": now + 7200}))},
			deny401(authz.ReasonTokenTooOld, "the token's lifetime is longer than accepted")},
		{"typ JWT where at+jwt required", tableReq{Path: "/echo", Token: tok(ed, nil)},
			deny401(authz.ReasonInvalidType, "the token's type is not accepted")},
		{"typ application/AT+JWT accepted", tableReq{Path: "/echo", Token: ed.sign(t, map[string]any{"typ": "application/AT+JWT"}, ed.claims(w.now, nil))}, ok},
		{"missing required sub", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"sub": nil})},
			deny401(authz.ReasonMissingClaim, "the token lacks the claim 'sub'")},
		{"scope missing", tableReq{Path: "/admin/users", Token: good}, scope403(authz.ReasonInsufficientScope, "admin:write")},
		{"any_scopes none held", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"scope": "write:target"})},
			scope403(authz.ReasonInsufficientScope, "read:target admin:write")},
		{"dot segments reach admin", tableReq{Path: "/public/../admin", Token: good}, scope403(authz.ReasonInsufficientScope, "admin:write")},
		{"percent-encoded admin", tableReq{Path: "/%61dmin?x=1", Token: good}, scope403(authz.ReasonInsufficientScope, "admin:write")},
		{"admin scope allowed", tableReq{Path: "/admin", Token: admin}, ok},
		{"claim mismatch", tableReq{Path: "/echo", Token: tok(a0, map[string]any{"gty": "password"})}, scope403(authz.ReasonClaimMismatch, "")},
		{"unknown rule in context", tableReq{Path: "/echo", Token: good, Context: map[string]string{"rule": "nope"}}, scope403(authz.ReasonNoMatchingRule, "")},
		{"ES256 allowed", tableReq{Path: "/x", Token: tok(es, nil)}, ok},
		{"PS256 allowed", tableReq{Path: "/x", Token: tok(ps, nil)}, ok},
		{"EdDSA allowed", tableReq{Path: "/x", Token: ed.sign(t, map[string]any{"typ": "at+jwt"}, ed.claims(w.now, nil))}, ok},
		{"ES256 refused by an RS256 provider", tableReq{Path: "/x", Token: jwkstest.SignToken(t, "ES256", es.key, map[string]any{"kid": a0.kid}, a0.claims(w.now, nil))},
			deny401(authz.ReasonDisallowedAlgorithm, "the token's algorithm is not accepted")},
		{"RS256 refused by a PS256 provider", tableReq{Path: "/x", Token: jwkstest.SignToken(t, "RS256", ps.key, map[string]any{"kid": ps.kid}, ps.claims(w.now, nil))},
			deny401(authz.ReasonDisallowedAlgorithm, "the token's algorithm is not accepted")},
		{"EdDSA refused by an ES256 provider", tableReq{Path: "/x", Token: jwkstest.SignToken(t, "EdDSA", ed.key, map[string]any{"kid": es.kid}, es.claims(w.now, nil))},
			deny401(authz.ReasonDisallowedAlgorithm, "the token's algorithm is not accepted")},
		{"absolute-form path", tableReq{Path: "http://evil/admin", Token: good},
			outcome{reason: authz.ReasonBadRequest, status: 400}},
		{"unreadable host", tableReq{Path: "/echo", Host: "user@api.example.com", Token: good},
			outcome{reason: authz.ReasonBadRequest, status: 400}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertOutcome(t, w.a.Check(t.Context(), tc.req.request()), tc.want)
		})
	}
}

// TestDecisionKeysUnavailable: a provider that never had keys answers 503
// keys_unavailable with a retry-after, whatever the token.
func TestDecisionKeysUnavailable(t *testing.T) {
	t.Parallel()
	i := tableIssuers(t)["auth0"]
	a, err := authz.New(authz.Options{Providers: []authz.Provider{{
		Name: "cold", Issuer: i.iss, Audiences: []string{jwkstest.Audience}, Keys: authz.StaticKeys{},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{i.sign(t, nil, i.claims(time.Now(), nil)), i.sign(t, map[string]any{"kid": nil}, i.claims(time.Now(), nil))} {
		d := a.Check(t.Context(), tableReq{Token: tok}.request())
		assertOutcome(t, d, outcome{reason: authz.ReasonKeysUnavailable, status: 503, challenge: challenge(d)})
		if d.RetryAfter == "" {
			t.Error("no retry-after on 503 keys_unavailable")
		}
		if d.Provider != "cold" {
			t.Errorf("provider = %q, want cold (the issuer was known)", d.Provider)
		}
	}
}

// TestDecisionClaimHeaders: an allow sets the verified claims, overwriting
// what the client sent, and removes every other configured claim header;
// an anonymous allow removes them all.
func TestDecisionClaimHeaders(t *testing.T) {
	t.Parallel()
	w := newReasonWorld(t)
	a0 := w.is["auth0"]
	tok := a0.sign(t, nil, a0.claims(w.now, map[string]any{"permissions": []string{"read:target", "write:target"}}))
	d := w.a.Check(t.Context(), tableReq{Path: "/echo", Token: tok, Headers: map[string]string{
		"x-jwt-sub": "admin@evil", "x-other-sub": "spoofed", "x-jwt-scope": "admin:write",
	}}.request())
	assertOutcome(t, d, outcome{allow: true, reason: authz.ReasonOK, status: 200})
	want := []authz.Header{
		{Name: "x-jwt-sub", Value: "client-1@clients"},
		{Name: "x-jwt-scope", Value: jwkstest.Scope},
		{Name: "x-jwt-permissions", Value: "read:target,write:target"},
		{Name: "x-jwt-client-id", Value: jwkstest.ClientID},
	}
	if diff := cmp.Diff(want, d.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"x-other-sub"}, d.RemoveHeaders); diff != "" {
		t.Errorf("remove headers (-want +got):\n%s", diff)
	}
	wantMD := authz.Metadata{Issuer: a0.iss, Subject: "client-1@clients",
		ClientID: jwkstest.ClientID, Scope: jwkstest.Scope}
	if diff := cmp.Diff(wantMD, d.Metadata); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	anon := w.a.Check(t.Context(), tableReq{Path: "/healthz", Headers: map[string]string{"x-jwt-sub": "admin"}}.request())
	if diff := cmp.Diff([]string{"x-jwt-sub", "x-jwt-scope", "x-jwt-permissions", "x-jwt-client-id", "x-other-sub"}, anon.RemoveHeaders); diff != "" {
		t.Errorf("anonymous remove headers (-want +got):\n%s", diff)
	}
}

// rulesWorld is the authorizer of envoy's rules table: token sources
// (header, query, cookie) with forward_token: false, and a rule for each
// matcher and requirement, default deny.
func newRulesAuthorizer(tb testing.TB, now time.Time) (*authz.Authorizer, map[string]tableIssuer) {
	tb.Helper()
	is := tableIssuers(tb)
	a0, b := is["auth0"], is["other"]
	aud := []string{jwkstest.Audience}
	req := func(scopes ...string) authz.Requirement { return authz.Requirement{Scopes: scopes} }
	claim := func(name string, nested bool, values ...authz.ClaimValue) authz.ClaimRequirement {
		return authz.ClaimRequirement{Name: name, Nested: nested, Values: values}
	}
	a, err := authz.New(authz.Options{
		Providers: []authz.Provider{{
			Name: "auth0", Issuer: a0.iss, Audiences: aud, Keys: a0.keys(), ClockSkew: 30 * time.Second,
			Sources: []authz.TokenSource{
				{Header: "authorization", Prefix: "Bearer "}, {Query: "access_token"}, {Cookie: "at"},
			},
			DropToken:     true,
			PayloadHeader: "x-jwt-payload",
			ClaimHeaders: []authz.ClaimHeader{
				{Claim: "sub", Header: "x-jwt-sub"}, {Claim: "scope", Header: "x-jwt-scope"},
				{Claim: "https://example.com/tenant", Header: "x-tenant"},
				{Claim: "org.id", Header: "x-org-id", Nested: true},
			},
		}, {
			Name: "other", Issuer: b.iss, Audiences: aud, Keys: b.keys(), ClockSkew: 30 * time.Second,
		}},
		Rules: []authz.Rule{
			{Name: "preflight", Match: authz.Match{PathPrefix: "/cors"}, AllowCORSPreflight: true, Require: req("read:target")},
			{Name: "versioned", Match: authz.Match{PathRegex: "/v[0-9]+/items(/[^/]+)?", Methods: []string{"get", "Post"}}, Require: req("read:target")},
			{Name: "tenant-host", Match: authz.Match{PathPrefix: "/t", Hosts: []string{"api.example.com", "*.tenants.example.com"}},
				Require: authz.Requirement{Claims: []authz.ClaimRequirement{claim("https://example.com/tenant", false, "acme")}}},
			{Name: "exact", Match: authz.Match{PathExact: "/exact"},
				Require: authz.Requirement{Claims: []authz.ClaimRequirement{claim("level", false, 3.0, 4.0), claim("beta", false, true)}}},
			{Name: "nested", Match: authz.Match{PathPrefix: "/org"},
				Require: authz.Requirement{Claims: []authz.ClaimRequirement{claim("org.id", true, "o-1"), claim("roles", false, "editor")}}},
			{Name: "public", Match: authz.Match{PathPrefix: "/public"}, AllowAnonymous: true},
			{Name: "other-only", Match: authz.Match{PathPrefix: "/other"}, Require: authz.Requirement{Providers: []string{"other"}}},
			{Name: "admin", Match: authz.Match{PathPrefix: "/admin"}, Require: req("admin:write")},
			{Name: "trial", Match: authz.Match{PathPrefix: "/trial"}, Require: req("trial:use"), DryRun: true},
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a, is
}

// TestDecisionMatchersAndRequirements is the rules table: path, method and
// host matchers, claim requirements, token sources, CORS preflight, dry
// run, and context_extensions that select or tighten but never widen.
func TestDecisionMatchersAndRequirements(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a, is := newRulesAuthorizer(t, now)
	a0, b := is["auth0"], is["other"]
	tok := func(changes map[string]any) string { return a0.sign(t, nil, a0.claims(now, changes)) }
	good := tok(nil)
	rich := tok(map[string]any{"https://example.com/tenant": "acme", "level": 3, "beta": true,
		"org": map[string]any{"id": "o-1"}, "roles": []string{"viewer", "editor"}})
	tests := []struct {
		name string
		req  tableReq
		want authz.Reason
		rule string
	}{
		{"regex matches", tableReq{Path: "/v2/items/42", Token: good}, authz.ReasonOK, "versioned"},
		{"regex is anchored", tableReq{Path: "/v2/items/42/more", Token: good}, authz.ReasonNoMatchingRule, ""},
		{"regex method mixed case", tableReq{Method: "post", Path: "/v1/items", Token: good}, authz.ReasonOK, "versioned"},
		{"regex method not listed", tableReq{Method: "DELETE", Path: "/v1/items", Token: good}, authz.ReasonNoMatchingRule, ""},
		{"no token and no rule", tableReq{Method: "DELETE", Path: "/v1/items"}, authz.ReasonNoMatchingRule, ""},
		{"host exact with port", tableReq{Path: "/t/x", Host: "API.example.com:8443", Token: rich}, authz.ReasonOK, "tenant-host"},
		{"host wildcard", tableReq{Path: "/t/x", Host: "acme.tenants.example.com", Token: rich}, authz.ReasonOK, "tenant-host"},
		{"host wildcard needs a label", tableReq{Path: "/t/x", Host: "tenants.example.com", Token: rich}, authz.ReasonNoMatchingRule, ""},
		{"host other", tableReq{Path: "/t/x", Host: "evil.com", Token: rich}, authz.ReasonNoMatchingRule, ""},
		{"namespaced claim mismatch", tableReq{Path: "/t/x", Token: good}, authz.ReasonClaimMismatch, "tenant-host"},
		{"number and bool claims", tableReq{Path: "/exact", Token: rich}, authz.ReasonOK, "exact"},
		{"number claim other value", tableReq{Path: "/exact", Token: tok(map[string]any{"level": 5, "beta": true})}, authz.ReasonClaimMismatch, "exact"},
		{"bool as string does not match", tableReq{Path: "/exact", Token: tok(map[string]any{"level": 3, "beta": "true"})}, authz.ReasonClaimMismatch, "exact"},
		{"exact is exact", tableReq{Path: "/exact/", Token: rich}, authz.ReasonNoMatchingRule, ""},
		{"nested and array claims", tableReq{Path: "/org", Token: rich}, authz.ReasonOK, "nested"},
		{"array claim lacks value", tableReq{Path: "/org", Token: tok(map[string]any{"org": map[string]any{"id": "o-1"}, "roles": []string{"viewer"}})}, authz.ReasonClaimMismatch, "nested"},
		{"nested path absent", tableReq{Path: "/org", Token: tok(map[string]any{"roles": []string{"editor"}})}, authz.ReasonClaimMismatch, "nested"},
		{"prefix is whole segments", tableReq{Path: "/publicity"}, authz.ReasonNoMatchingRule, ""},
		{"anonymous", tableReq{Path: "/public/x"}, authz.ReasonAnonymous, "public"},
		{"anonymous with a bad token", tableReq{Path: "/public/x", Token: tamperScope(good)}, authz.ReasonInvalidSignature, "public"},
		{"encoded slash into admin", tableReq{Path: "/public%2F..%2Fadmin", Token: good}, authz.ReasonInsufficientScope, "admin"},
		{"backslash into admin", tableReq{Path: "/public\\..\\admin", Token: good}, authz.ReasonInsufficientScope, "admin"},
		{"double slash into admin", tableReq{Path: "//admin", Token: good}, authz.ReasonInsufficientScope, "admin"},
		{"encoded dots into admin", tableReq{Path: "/public/%2e%2e/admin", Token: good}, authz.ReasonInsufficientScope, "admin"},
		{"paths are case-sensitive", tableReq{Path: "/ADMIN", Token: good}, authz.ReasonNoMatchingRule, ""},
		{"provider not listed", tableReq{Path: "/other", Token: good}, authz.ReasonUnknownIssuer, "other-only"},
		{"provider listed", tableReq{Path: "/other", Token: b.sign(t, nil, b.claims(now, nil))}, authz.ReasonOK, "other-only"},
		{"cors preflight", tableReq{Method: "OPTIONS", Path: "/cors", Headers: map[string]string{"origin": "https://app.example", "access-control-request-method": "GET"}}, authz.ReasonAnonymous, "preflight"},
		{"cors preflight without origin", tableReq{Method: "OPTIONS", Path: "/cors", Headers: map[string]string{"access-control-request-method": "GET"}}, authz.ReasonMissingToken, "preflight"},
		{"cors preflight method not a token", tableReq{Method: "OPTIONS", Path: "/cors", Headers: map[string]string{"origin": "https://app.example", "access-control-request-method": "G T"}}, authz.ReasonMissingToken, "preflight"},
		{"options without preflight header", tableReq{Method: "OPTIONS", Path: "/cors"}, authz.ReasonMissingToken, "preflight"},
		{"preflight not allowed elsewhere", tableReq{Method: "OPTIONS", Path: "/admin", Headers: map[string]string{"origin": "https://app.example", "access-control-request-method": "GET"}}, authz.ReasonMissingToken, "admin"},
		{"token in query", tableReq{Path: "/v1/items?access_token=" + good}, authz.ReasonOK, "versioned"},
		{"token in cookie", tableReq{Path: "/v1/items", Headers: map[string]string{"cookie": "a=1; at=" + good + "; b=2"}}, authz.ReasonOK, "versioned"},
		{"token in header and query", tableReq{Path: "/v1/items?access_token=" + good, Token: good}, authz.ReasonMalformedToken, "versioned"},
		{"other's token in a cookie it does not accept", tableReq{Path: "/other", Headers: map[string]string{"cookie": "at=" + b.sign(t, nil, b.claims(now, nil))}}, authz.ReasonMalformedToken, "other-only"},
		{"dry run", tableReq{Path: "/trial", Token: good}, authz.ReasonDryRun, "trial"},
		// context_extensions select or tighten; they never widen.
		{"context adds scopes", tableReq{Path: "/v1/items", Token: good, Context: map[string]string{"scopes": "admin:write"}}, authz.ReasonInsufficientScope, "versioned"},
		{"context scopes need a token", tableReq{Path: "/public", Context: map[string]string{"scopes": "x"}}, authz.ReasonMissingToken, "public"},
		{"context cannot make anonymous", tableReq{Path: "/admin", Context: map[string]string{"allow_anonymous": "true"}}, authz.ReasonMissingToken, "admin"},
		{"context can take anonymity away", tableReq{Path: "/public", Context: map[string]string{"allow_anonymous": "false"}}, authz.ReasonMissingToken, "public"},
		{"context takes preflight away", tableReq{Method: "OPTIONS", Path: "/cors", Context: map[string]string{"allow_anonymous": "no"},
			Headers: map[string]string{"origin": "https://app.example", "access-control-request-method": "GET"}}, authz.ReasonMissingToken, "preflight"},
		{"context cannot add a provider", tableReq{Path: "/other", Token: good, Context: map[string]string{"providers": "auth0,other"}}, authz.ReasonUnknownIssuer, "other-only"},
		{"context narrows providers", tableReq{Path: "/v1/items", Token: good, Context: map[string]string{"providers": "other"}}, authz.ReasonUnknownIssuer, "versioned"},
		{"context narrows to nothing", tableReq{Path: "/v1/items", Token: good, Context: map[string]string{"providers": " , "}}, authz.ReasonUnknownIssuer, "versioned"},
		{"context selects a rule", tableReq{Path: "/anything", Token: good, Context: map[string]string{"rule": "admin"}}, authz.ReasonInsufficientScope, "admin"},
		{"context unknown rule", tableReq{Path: "/public", Context: map[string]string{"rule": "nope"}}, authz.ReasonNoMatchingRule, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := a.Check(t.Context(), tc.req.request())
			if d.Reason != tc.want || d.Rule != tc.rule {
				t.Errorf("reason, rule = %s, %q (%s); want %s, %q", d.Reason, d.Rule, d.Description, tc.want, tc.rule)
			}
			if want := tc.want.Status(); d.Status != want {
				t.Errorf("status = %d, want %d", d.Status, want)
			}
		})
	}
}

// hmacWithPublicKey signs HS256 with the PEM of an RSA public key as the
// secret: the classic algorithm-confusion attack.
func hmacWithPublicKey(tb testing.TB, kid string, pub *rsa.PublicKey, claims map[string]any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + enc.EncodeToString(m.Sum(nil))
}

// tamperScope grants the token admin:write in its payload and keeps its
// signature.
func tamperScope(tok string) string {
	return jwkstest.Tamper(tok, map[string]any{"scope": "read:target admin:write"})
}

// TestDecisionDryRun: under a dry-run rule every request is allowed with
// reason dry_run and the reason it would have had; a valid token's claims
// reach the upstream and forward_token: false still keeps the token from
// it; an invalid or missing token sets no claim header and removes them
// all.
func TestDecisionDryRun(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	a, is := newRulesAuthorizer(t, now)
	a0 := is["auth0"]
	good := a0.sign(t, nil, a0.claims(now, nil))
	trial := a0.sign(t, nil, a0.claims(now, map[string]any{"scope": "trial:use"}))
	allHeaders := []string{"x-jwt-sub", "x-jwt-scope", "x-tenant", "x-org-id", "x-jwt-payload"}
	for _, tc := range []struct {
		name        string
		req         tableReq
		would       authz.Reason
		setsSub     bool
		removeToken bool // authorization in the removed headers
		removeQuery []string
	}{
		{"would deny a valid token", tableReq{Path: "/trial", Token: good}, authz.ReasonInsufficientScope, true, true, nil},
		{"would allow", tableReq{Path: "/trial", Token: trial}, authz.ReasonOK, true, true, nil},
		{"query token", tableReq{Path: "/trial?access_token=" + good}, authz.ReasonInsufficientScope, true, false, []string{"access_token"}},
		{"invalid token", tableReq{Path: "/trial", Token: tamperScope(good)}, authz.ReasonInvalidSignature, false, false, nil},
		{"no token", tableReq{Path: "/trial"}, authz.ReasonMissingToken, false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.req.request()
			r.Headers["x-jwt-sub"] = "spoofed"
			d := a.Check(t.Context(), r)
			if !d.Allow || d.Reason != authz.ReasonDryRun || d.WouldReason != tc.would || d.Status != 200 || d.Rule != "trial" {
				t.Fatalf("decision = %v %s (would %s) %d rule %q; want allowed dry_run (would %s) under trial",
					d.Allow, d.Reason, d.WouldReason, d.Status, d.Rule, tc.would)
			}
			var sub string
			for _, h := range d.Headers {
				if h.Name == "x-jwt-sub" {
					sub = h.Value
				}
			}
			if tc.setsSub != (sub == "client-1@clients") || (!tc.setsSub && len(d.Headers) != 0) {
				t.Errorf("headers = %v; want the token's claims: %v", d.Headers, tc.setsSub)
			}
			removed := map[string]bool{}
			for _, h := range d.RemoveHeaders {
				removed[h] = true
			}
			if removed["authorization"] != tc.removeToken {
				t.Errorf("authorization removed = %v, want %v (%v)", removed["authorization"], tc.removeToken, d.RemoveHeaders)
			}
			if !tc.setsSub {
				for _, h := range allHeaders {
					if !removed[h] {
						t.Errorf("claim header %s not removed without a valid token (%v)", h, d.RemoveHeaders)
					}
				}
			}
			if diff := cmp.Diff(tc.removeQuery, d.RemoveQuery); diff != "" {
				t.Errorf("removed query (-want +got):\n%s", diff)
			}
			if d.Body != nil || challenge(d) != "" {
				t.Errorf("a dry-run allow carries a body or challenge: %q %q", d.Body, challenge(d))
			}
		})
	}
}

// challenge is the decision's WWW-Authenticate entries, one per line.
func challenge(d authz.Decision) string { return strings.Join(d.Challenges, "\n") }
