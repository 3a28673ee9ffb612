package envoy_test

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// world is a stack with two issuers (auth0 and other) and the contract's
// example rules.
type world struct {
	*stacktest.Stack
	a, b     *jwkstest.Issuer
	es, ps   *jwkstest.Issuer
	ed       *jwkstest.Issuer
	attacker *httptest.Server
	hits     *atomic.Int64
	// now is the authorizer's clock, fixed when the world starts, so that
	// tokens minted relative to it keep their meaning however slowly a
	// loaded machine runs the cases.
	now time.Time
}

const worldYAML = `
realm: "jwt-authz"
providers:
- name: auth0
  issuer: %[1]q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %[2]q, min_refresh_interval: "30s"}
  required_claims: ["sub"]
  claim_headers:
  - {claim: "sub", header: "x-jwt-sub"}
  - {claim: "scope", header: "x-jwt-scope"}
  - {claim: "permissions", header: "x-jwt-permissions"}
  - {claim: "azp", header: "x-jwt-client-id"}
- name: other
  issuer: %[3]q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %[4]q}
  claim_headers:
  - {claim: "sub", header: "x-other-sub"}
- name: ecdsa
  issuer: %[5]q
  audiences: ["urn:apigee:target:api"]
  algorithms: ["ES256"]
  jwks: {uri: %[6]q}
- name: pss
  issuer: %[7]q
  audiences: ["urn:apigee:target:api"]
  algorithms: ["PS256"]
  jwks: {uri: %[8]q}
- name: eddsa
  issuer: %[9]q
  audiences: ["urn:apigee:target:api"]
  algorithms: ["EdDSA"]
  max_lifetime: "3600s"
  token_type: "at+jwt"
  jwks: {uri: %[10]q}
rules:
- name: health
  match: {path_prefix: "/healthz", methods: ["GET"]}
  allow_anonymous: true
- name: admin
  match: {path_prefix: "/admin"}
  require: {providers: ["auth0"], scopes: ["admin:write"]}
- name: beta
  match: {path_prefix: "/beta"}
  require: {scopes: ["beta:use"]}
  dry_run: true
- name: api
  match: {path_prefix: "/"}
  require: {any_scopes: ["read:target", "admin:write"], claims: [{name: "gty", values: ["client-credentials"]}]}
`

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{
		a:    jwkstest.New(t, jwkstest.Options{}),
		b:    jwkstest.New(t, jwkstest.Options{}),
		es:   jwkstest.New(t, jwkstest.Options{Alg: "ES256"}),
		ps:   jwkstest.New(t, jwkstest.Options{Alg: "PS256"}),
		ed:   jwkstest.New(t, jwkstest.Options{Alg: "EdDSA"}),
		hits: &atomic.Int64{},
	}
	w.attacker = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		w.hits.Add(1)
		rw.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(w.attacker.Close)
	yaml := fmt.Sprintf(worldYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.b.IssuerURL(), w.b.JWKSURL(),
		w.es.IssuerURL(), w.es.JWKSURL(), w.ps.IssuerURL(), w.ps.JWKSURL(), w.ed.IssuerURL(), w.ed.JWKSURL())
	w.now = time.Now()
	w.Stack = stacktest.Start(t, yaml, stacktest.Options{Now: func() time.Time { return w.now }})
	return w
}

// with returns the issuer's claims for sub with changes applied (a nil
// value deletes the claim).
func with(i *jwkstest.Issuer, changes map[string]any) map[string]any {
	c := i.Claims("client-1@clients")
	for k, v := range changes {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

type want struct {
	allow     bool
	reason    string
	http      int
	grpc      int32
	challenge string // exact, one line per www-authenticate entry; "" = none
}

func TestEveryReason(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	now := w.now.Unix()
	good := w.a.Sign(t, w.a.Claims("client-1@clients"))
	admin := w.a.Sign(t, with(w.a, map[string]any{"scope": "read:target admin:write"}))
	rsaPub := w.a.Key(w.a.KID()).Public().(*rsa.PublicKey)
	const realm = `Bearer realm="jwt-authz"`
	inv := func(desc string) string {
		return realm + `, error="invalid_token", error_description="` + desc + `"`
	}
	tests := []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{name: "valid token", req: stacktest.Req{Path: "/echo", Token: good},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "anonymous health", req: stacktest.Req{Path: "/healthz"},
			want: want{allow: true, reason: "anonymous", http: 200}},
		{name: "dry run lacks scope", req: stacktest.Req{Path: "/beta/x", Token: good},
			want: want{allow: true, reason: "dry_run", http: 200}},
		{name: "dry run without token", req: stacktest.Req{Path: "/beta/x"},
			want: want{allow: true, reason: "dry_run", http: 200}},
		{name: "no token", req: stacktest.Req{Path: "/echo"},
			want: want{reason: "missing_token", http: 401, grpc: 16, challenge: realm + "\n" + dpopNoToken}},
		{name: "basic scheme is no token", req: stacktest.Req{Path: "/echo", Headers: map[string]string{"authorization": "Basic dXNlcjpwdw=="}},
			want: want{reason: "missing_token", http: 401, grpc: 16, challenge: realm + "\n" + dpopNoToken}},
		{name: "not three parts", req: stacktest.Req{Path: "/echo", Token: "abc.def"},
			want: want{reason: "malformed_token", http: 401, grpc: 16, challenge: inv("the token is malformed: not a JWS compact serialization")}},
		{name: "empty bearer", req: stacktest.Req{Path: "/echo", Headers: map[string]string{"authorization": "Bearer "}},
			want: want{reason: "malformed_token", http: 401, grpc: 16, challenge: inv("the token is malformed: empty token")}},
		{name: "lower-case bearer scheme works", req: stacktest.Req{Path: "/echo", Headers: map[string]string{"authorization": "bearer " + good}},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "crit header", req: stacktest.Req{Path: "/echo", Token: w.a.SignWith(t, w.a.KID(), map[string]any{"crit": []string{"exp"}}, w.a.Claims("s"))},
			want: want{reason: "malformed_token", http: 401, grpc: 16, challenge: inv("the token is malformed: crit header not supported")}},
		{name: "second authorization header joined by envoy", req: stacktest.Req{Path: "/echo", Headers: map[string]string{"authorization": "Bearer " + good + ",Bearer " + good}},
			want: want{reason: "malformed_token", http: 401, grpc: 16, challenge: inv("the token is malformed: more than one credential in header")}},
		{name: "token over 16 KiB", req: stacktest.Req{Path: "/echo", Token: strings.Repeat("a", 8<<10) + "." + strings.Repeat("b", 9<<10) + ".c"},
			want: want{reason: "malformed_token", http: 401, grpc: 16, challenge: inv("the token is malformed: token too large")}},
		{name: "unknown issuer", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"iss": "https://evil.example/"}))},
			want: want{reason: "unknown_issuer", http: 401, grpc: 16, challenge: inv("the token's issuer is not accepted")}},
		{name: "no iss", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"iss": nil}))},
			want: want{reason: "unknown_issuer", http: 401, grpc: 16, challenge: inv("the token has no issuer")}},
		{name: "issuer not allowed by rule", req: stacktest.Req{Path: "/admin", Token: w.b.Sign(t, with(w.b, map[string]any{"scope": "admin:write"}))},
			want: want{reason: "unknown_issuer", http: 401, grpc: 16, challenge: inv("the token's issuer is not accepted on this route")}},
		{name: "alg none", req: stacktest.Req{Path: "/echo", Token: unsigned(t, "nOnE", w.a.Claims("s"))},
			want: want{reason: "disallowed_algorithm", http: 401, grpc: 16, challenge: inv("unsigned tokens are not accepted")}},
		{name: "HS256 with the RSA public key as secret", req: stacktest.Req{Path: "/echo", Token: hmacWithKey(t, w.a.KID(), rsaPub, w.a.Claims("s"))},
			want: want{reason: "disallowed_algorithm", http: 401, grpc: 16, challenge: inv("the token's algorithm is not accepted")}},
		{name: "unknown kid", req: stacktest.Req{Path: "/echo", Token: w.a.SignWith(t, w.a.KID(), map[string]any{"kid": "nope"}, w.a.Claims("s"))},
			want: want{reason: "unknown_key", http: 401, grpc: 16, challenge: inv("no usable key matches the token's key id")}},
		{name: "iss A with B's kid", req: stacktest.Req{Path: "/echo", Token: w.b.SignWith(t, w.b.KID(), nil, w.a.Claims("s"))},
			want: want{reason: "unknown_key", http: 401, grpc: 16, challenge: inv("no usable key matches the token's key id")}},
		{name: "jku x5u jwk headers never fetched", req: stacktest.Req{Path: "/echo", Token: jwkstest.SignToken(t, "RS256", w.b.Key(w.b.KID()),
			map[string]any{"kid": "attacker", "jku": w.attacker.URL + "/jwks", "x5u": w.attacker.URL + "/x5u"}, w.a.Claims("s"))},
			want: want{reason: "unknown_key", http: 401, grpc: 16, challenge: inv("no usable key matches the token's key id")}},
		{name: "tampered payload", req: stacktest.Req{Path: "/echo", Token: tamper(good)},
			want: want{reason: "invalid_signature", http: 401, grpc: 16, challenge: inv("the token's signature is invalid")}},
		{name: "no kid signed by a foreign key", req: stacktest.Req{Path: "/echo", Token: w.b.SignWith(t, w.b.KID(), map[string]any{"kid": nil}, w.a.Claims("s"))},
			want: want{reason: "invalid_signature", http: 401, grpc: 16, challenge: inv("the token's signature is invalid")}},
		{name: "no kid signed by the provider", req: stacktest.Req{Path: "/echo", Token: w.a.SignWith(t, w.a.KID(), map[string]any{"kid": nil}, w.a.Claims("s"))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "expired", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"exp": now - 60, "iat": now - 3600}))},
			want: want{reason: "expired", http: 401, grpc: 16, challenge: inv("the token has expired")}},
		{name: "expired within skew", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"exp": now - 10}))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "nbf in the future", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"nbf": now + 600}))},
			want: want{reason: "not_yet_valid", http: 401, grpc: 16, challenge: inv("the token is not valid yet")}},
		{name: "iat in the future", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"iat": now + 600}))},
			want: want{reason: "not_yet_valid", http: 401, grpc: 16, challenge: inv("the token was issued in the future")}},
		{name: "wrong audience", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"aud": "urn:other"}))},
			want: want{reason: "invalid_audience", http: 401, grpc: 16, challenge: inv("the token's audience is not accepted")}},
		{name: "audience array", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"aud": []string{"urn:x", "urn:apigee:target:api"}}))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "empty audience array", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"aud": []string{}}))},
			want: want{reason: "invalid_audience", http: 401, grpc: 16, challenge: inv("the token's audience is not accepted")}},
		{name: "no audience", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"aud": nil}))},
			want: want{reason: "invalid_audience", http: 401, grpc: 16, challenge: inv("the token's audience is not accepted")}},
		{name: "lifetime over max", req: stacktest.Req{Path: "/echo", Token: w.ed.SignWith(t, w.ed.KID(), map[string]any{"typ": "at+jwt"}, with(w.ed, map[string]any{"exp": now + 7200}))},
			want: want{reason: "token_too_old", http: 401, grpc: 16, challenge: inv("the token's lifetime is longer than accepted")}},
		{name: "typ JWT where at+jwt required", req: stacktest.Req{Path: "/echo", Token: w.ed.Sign(t, w.ed.Claims("s"))},
			want: want{reason: "invalid_type", http: 401, grpc: 16, challenge: inv("the token's type is not accepted")}},
		{name: "typ application/AT+JWT accepted", req: stacktest.Req{Path: "/echo", Token: w.ed.SignWith(t, w.ed.KID(), map[string]any{"typ": "application/AT+JWT"}, w.ed.Claims("s"))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "missing required sub", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"sub": nil}))},
			want: want{reason: "missing_claim", http: 401, grpc: 16, challenge: inv("the token lacks the claim 'sub'")}},
		{name: "scope missing", req: stacktest.Req{Path: "/admin/users", Token: good},
			want: want{reason: "insufficient_scope", http: 403, grpc: 7, challenge: realm + `, error="insufficient_scope", scope="admin:write"`}},
		{name: "any_scopes none held", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"scope": "write:target"}))},
			want: want{reason: "insufficient_scope", http: 403, grpc: 7, challenge: realm + `, error="insufficient_scope", scope="read:target admin:write"`}},
		{name: "dot segments reach admin", req: stacktest.Req{Path: "/public/../admin", Token: good},
			want: want{reason: "insufficient_scope", http: 403, grpc: 7, challenge: realm + `, error="insufficient_scope", scope="admin:write"`}},
		{name: "percent-encoded admin", req: stacktest.Req{Path: "/%61dmin?x=1", Token: good},
			want: want{reason: "insufficient_scope", http: 403, grpc: 7, challenge: realm + `, error="insufficient_scope", scope="admin:write"`}},
		{name: "admin scope allowed", req: stacktest.Req{Path: "/admin", Token: admin},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "claim mismatch", req: stacktest.Req{Path: "/echo", Token: w.a.Sign(t, with(w.a, map[string]any{"gty": "password"}))},
			want: want{reason: "claim_mismatch", http: 403, grpc: 7, challenge: realm + `, error="insufficient_scope"`}},
		{name: "unknown rule in context", req: stacktest.Req{Path: "/echo", Token: good, Context: map[string]string{"rule": "nope"}},
			want: want{reason: "no_matching_rule", http: 403, grpc: 7, challenge: realm + `, error="insufficient_scope"`}},
		{name: "ES256 allowed", req: stacktest.Req{Path: "/x", Token: w.es.Sign(t, w.es.Claims("s"))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "PS256 allowed", req: stacktest.Req{Path: "/x", Token: w.ps.Sign(t, w.ps.Claims("s"))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "EdDSA allowed", req: stacktest.Req{Path: "/x", Token: w.ed.SignWith(t, w.ed.KID(), map[string]any{"typ": "at+jwt"}, w.ed.Claims("s"))},
			want: want{allow: true, reason: "ok", http: 200}},
		{name: "ES256 refused by an RS256 provider", req: stacktest.Req{Path: "/x", Token: jwkstest.SignToken(t, "ES256", w.es.Key(w.es.KID()), map[string]any{"kid": w.a.KID()}, w.a.Claims("s"))},
			want: want{reason: "disallowed_algorithm", http: 401, grpc: 16, challenge: inv("the token's algorithm is not accepted")}},
		{name: "RS256 refused by a PS256 provider", req: stacktest.Req{Path: "/x", Token: jwkstest.SignToken(t, "RS256", w.ps.Key(w.ps.KID()), map[string]any{"kid": w.ps.KID()}, w.ps.Claims("s"))},
			want: want{reason: "disallowed_algorithm", http: 401, grpc: 16, challenge: inv("the token's algorithm is not accepted")}},
		{name: "EdDSA refused by an ES256 provider", req: stacktest.Req{Path: "/x", Token: jwkstest.SignToken(t, "EdDSA", w.ed.Key(w.ed.KID()), map[string]any{"kid": w.es.KID()}, w.es.Claims("s"))},
			want: want{reason: "disallowed_algorithm", http: 401, grpc: 16, challenge: inv("the token's algorithm is not accepted")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := w.Check(t, tc.req)
			assertDecision(t, resp, tc.want)
		})
	}
	t.Cleanup(func() {
		if n := w.hits.Load(); n != 0 {
			t.Errorf("the jku/x5u server was asked %d times; want 0", n)
		}
	})
}

// assertDecision compares a CheckResponse with what the contract says.
func assertDecision(t *testing.T, resp *authv3.CheckResponse, w want) {
	t.Helper()
	if got := resp.GetStatus().GetCode(); got != w.grpc {
		t.Errorf("status.code = %d, want %d", got, w.grpc)
	}
	reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
	if reason != w.reason {
		t.Errorf("reason = %q, want %q", reason, w.reason)
	}
	if w.allow {
		if resp.GetOkResponse() == nil {
			t.Fatalf("want ok_response, got %v", resp)
		}
		return
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("want denied_response, got %v", resp)
	}
	if got := int(d.GetStatus().GetCode()); got != w.http {
		t.Errorf("http status = %d, want %d", got, w.http)
	}
	hdr := map[string]string{}
	var challenges []string // every www-authenticate entry, in order
	for _, h := range d.GetHeaders() {
		hdr[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		if h.GetHeader().GetKey() == "www-authenticate" {
			challenges = append(challenges, h.GetHeader().GetValue())
		}
	}
	if diff := cmp.Diff(w.challenge, strings.Join(challenges, "\n")); diff != "" {
		t.Errorf("www-authenticate (-want +got):\n%s", diff)
	}
	if hdr["content-type"] != "application/json" {
		t.Errorf("content-type = %q", hdr["content-type"])
	}
	var body struct {
		Error, ErrorDescription, Reason string
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &struct {
		Error            *string `json:"error"`
		ErrorDescription *string `json:"error_description"`
		Reason           *string `json:"reason"`
	}{&body.Error, &body.ErrorDescription, &body.Reason}); err != nil {
		t.Fatalf("body %q: %v", d.GetBody(), err)
	}
	if body.Reason != w.reason {
		t.Errorf("body reason = %q, want %q", body.Reason, w.reason)
	}
	wantErr := map[int]string{401: "invalid_token", 403: "insufficient_scope", 500: "server_error", 503: "temporarily_unavailable"}[w.http]
	switch w.reason {
	case "missing_token":
		wantErr = "unauthorized"
	case "invalid_proof": // RFC 9449 §7.1
		wantErr = "invalid_dpop_proof"
	}
	if body.Error != wantErr {
		t.Errorf("body error = %q, want %q", body.Error, wantErr)
	}
}

// unsigned makes an alg-none token with an empty signature part replaced
// by junk (so it has three non-empty parts).
func unsigned(t *testing.T, alg string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + ".AA"
}

// hmacWithKey signs HS256 using the PEM of an RSA public key as the secret:
// the classic algorithm-confusion attack.
func hmacWithKey(t *testing.T, kid string, pub *rsa.PublicKey, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
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

// tamper changes the payload of a token and keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(p, &c)
	c["scope"] = "read:target admin:write"
	nb, _ := json.Marshal(c)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(nb) + "." + parts[2]
}

func TestKeysUnavailable(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	iss := jwkstest.New(t, jwkstest.Options{})
	s := stacktest.Start(t, fmt.Sprintf(`
providers:
- name: cold
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q, fetch_timeout: "1s"}
`, iss.IssuerURL(), dead.URL+"/jwks.json"), stacktest.Options{NoWait: true})
	resp := s.Check(t, stacktest.Req{Token: iss.Sign(t, iss.Claims("s"))})
	assertDecision(t, resp, want{reason: "keys_unavailable", http: 503, grpc: 14})
	var retry string
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "retry-after" {
			retry = h.GetHeader().GetValue()
		}
	}
	if retry == "" {
		t.Error("no retry-after header on 503")
	}
}

func TestClaimHeadersAndSpoofing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tok := w.a.Sign(t, with(w.a, map[string]any{"permissions": []string{"read:target", "write:target"}}))
	resp := w.Check(t, stacktest.Req{Path: "/echo", Token: tok, Headers: map[string]string{
		"x-jwt-sub": "admin@evil", "x-other-sub": "spoofed", "x-jwt-scope": "admin:write",
	}})
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("not allowed: %v", resp)
	}
	got := map[string]string{}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction().String() != "OVERWRITE_IF_EXISTS_OR_ADD" {
			t.Errorf("header %s append_action = %v", h.GetHeader().GetKey(), h.GetAppendAction())
		}
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	wantHeaders := map[string]string{
		"x-jwt-sub":         "client-1@clients",
		"x-jwt-scope":       "read:target",
		"x-jwt-permissions": "read:target,write:target",
		"x-jwt-client-id":   "client-1",
	}
	if diff := cmp.Diff(wantHeaders, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"x-other-sub"}, ok.GetHeadersToRemove()); diff != "" {
		t.Errorf("headers_to_remove (-want +got):\n%s", diff)
	}
	md := resp.GetDynamicMetadata().GetFields()
	for k, v := range map[string]string{"provider": "auth0", "rule": "api", "issuer": w.a.IssuerURL(),
		"subject": "client-1@clients", "client_id": "client-1", "scope": "read:target"} {
		if got := md[k].GetStringValue(); got != v {
			t.Errorf("dynamic_metadata.%s = %q, want %q", k, got, v)
		}
	}

	anon := w.Check(t, stacktest.Req{Path: "/healthz", Headers: map[string]string{"x-jwt-sub": "admin"}}).GetOkResponse()
	if diff := cmp.Diff([]string{"x-jwt-sub", "x-jwt-scope", "x-jwt-permissions", "x-jwt-client-id", "x-other-sub"}, anon.GetHeadersToRemove()); diff != "" {
		t.Errorf("anonymous headers_to_remove (-want +got):\n%s", diff)
	}
}

func TestMetricsAfterMixedRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	good := w.a.Sign(t, w.a.Claims("client-1@clients"))
	for range 3 {
		w.Check(t, stacktest.Req{Path: "/echo", Token: good})
	}
	for range 2 {
		w.Check(t, stacktest.Req{Path: "/echo"})
	}
	w.Check(t, stacktest.Req{Path: "/admin", Token: good})
	w.Check(t, stacktest.Req{Path: "/echo", Token: "x.y.z"})
	for _, c := range []struct {
		decision, reason, provider string
		want                       float64
	}{
		{"allow", "ok", "auth0", 3},
		{"deny", "missing_token", "none", 2},
		{"deny", "insufficient_scope", "auth0", 1},
		{"deny", "malformed_token", "none", 1},
	} {
		if got := w.Count(c.decision, c.reason, c.provider); got != c.want {
			t.Errorf("checks_total{%s,%s,%s} = %v, want %v", c.decision, c.reason, c.provider, got, c.want)
		}
	}
	n, err := testutil.GatherAndCount(w.Registry, "jwt_authz_check_duration_seconds")
	if err != nil || n != 2 {
		t.Errorf("duration series = %d (%v), want 2 (allow, deny)", n, err)
	}
}

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
