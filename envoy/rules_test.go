package envoy_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current responses")

const rulesYAML = `
providers:
- name: auth0
  issuer: %[1]q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %[2]q}
  from:
  - header: {name: "authorization", prefix: "Bearer "}
  - query: "access_token"
  - cookie: "at"
  forward_token: false
  payload_header: "x-jwt-payload"
  claim_headers:
  - {claim: "sub", header: "x-jwt-sub"}
  - {claim: "scope", header: "x-jwt-scope"}
  - {claim: "permissions", header: "x-jwt-permissions"}
  - {claim: "https://example.com/tenant", header: "x-tenant"}
  - {claim: "org.id", header: "x-org-id", nested: true}
  - {claim: "org", header: "x-org"}
  - {claim: "level", header: "x-level"}
  - {claim: "beta", header: "x-beta"}
  - {claim: "note", header: "x-note"}
- name: other
  issuer: %[3]q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %[4]q}
rules:
- name: preflight
  match: {path_prefix: "/cors"}
  allow_cors_preflight: true
  require: {scopes: ["read:target"]}
- name: versioned
  match: {path_regex: "/v[0-9]+/items(/[^/]+)?", methods: ["get", "Post"]}
  require: {scopes: ["read:target"]}
- name: tenant-host
  match: {path_prefix: "/t", hosts: ["api.example.com", "*.tenants.example.com"]}
  require: {claims: [{name: "https://example.com/tenant", values: ["acme"]}]}
- name: exact
  match: {path_exact: "/exact"}
  require: {claims: [{name: "level", values: [3, 4]}, {name: "beta", values: [true]}]}
- name: nested
  match: {path_prefix: "/org"}
  require: {claims: [{name: "org.id", nested: true, values: ["o-1"]}, {name: "roles", values: ["editor"]}]}
- name: public
  match: {path_prefix: "/public"}
  allow_anonymous: true
- name: other-only
  match: {path_prefix: "/other"}
  require: {providers: ["other"]}
- name: admin
  match: {path_prefix: "/admin"}
  require: {scopes: ["admin:write"]}
- name: trial
  match: {path_prefix: "/trial"}
  require: {scopes: ["trial:use"]}
  dry_run: true
default_decision: deny
`

type rulesWorld struct {
	*stacktest.Stack
	a, b *jwkstest.Issuer
}

func newRulesWorld(t *testing.T, extra string) *rulesWorld {
	t.Helper()
	w := &rulesWorld{a: jwkstest.New(t, jwkstest.Options{}), b: jwkstest.New(t, jwkstest.Options{})}
	w.Stack = stacktest.Start(t, fmt.Sprintf(rulesYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.b.IssuerURL(), w.b.JWKSURL())+extra, stacktest.Options{})
	return w
}

// TestMatchersAndRequirements is a gRPC smoke test that each part of a
// CheckRequest the rules read (method, host, path and query, headers,
// cookies, context_extensions) reaches them. The exhaustive matcher and
// requirement table runs in authz on static keys
// (authz/decision_table_test.go, TestDecisionMatchersAndRequirements).
func TestMatchersAndRequirements(t *testing.T) {
	t.Parallel()
	w := newRulesWorld(t, "")
	a := w.a
	tok := func(changes map[string]any) string { return a.Sign(t, with(a, changes)) }
	good := tok(nil)
	rich := tok(map[string]any{"https://example.com/tenant": "acme", "level": 3, "beta": true,
		"org": map[string]any{"id": "o-1"}, "roles": []string{"viewer", "editor"}})
	tests := []struct {
		name string
		req  stacktest.Req
		want string // reason
	}{
		{"regex method mixed case", stacktest.Req{Method: "post", Path: "/v1/items", Token: good}, "ok"},
		{"no token and no rule", stacktest.Req{Method: "DELETE", Path: "/v1/items"}, "no_matching_rule"},
		{"host exact with port", stacktest.Req{Path: "/t/x", Host: "API.example.com:8443", Token: rich}, "ok"},
		{"anonymous", stacktest.Req{Path: "/public/x"}, "anonymous"},
		{"encoded slash into admin", stacktest.Req{Path: "/public%2F..%2Fadmin", Token: good}, "insufficient_scope"},
		{"cors preflight", stacktest.Req{Method: "OPTIONS", Path: "/cors", Headers: map[string]string{"origin": "https://app.example", "access-control-request-method": "GET"}}, "anonymous"},
		{"token in query", stacktest.Req{Path: "/v1/items?access_token=" + good}, "ok"},
		{"token in cookie", stacktest.Req{Path: "/v1/items", Headers: map[string]string{"cookie": "a=1; at=" + good + "; b=2"}}, "ok"},
		{"context narrows providers", stacktest.Req{Path: "/v1/items", Token: good, Context: map[string]string{"providers": "other"}}, "unknown_issuer"},
		{"context selects a rule", stacktest.Req{Path: "/anything", Token: good, Context: map[string]string{"rule": "admin"}}, "insufficient_scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := w.Check(t, tc.req)
			if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != tc.want {
				t.Errorf("reason = %q, want %q (status %d)", got, tc.want, resp.GetStatus().GetCode())
			}
		})
	}
}

func TestDryRunCounted(t *testing.T) {
	t.Parallel()
	w := newRulesWorld(t, "")
	good := w.a.Sign(t, w.a.Claims("s"))
	resp := w.Check(t, stacktest.Req{Path: "/trial", Token: good, Headers: map[string]string{"x-jwt-sub": "spoof"}})
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatal("dry run denied")
	}
	if got := headerMap(ok)["x-jwt-sub"]; got != "s" {
		t.Errorf("dry run with a valid token: x-jwt-sub = %q, want s", got)
	}
	if !contains(ok.GetHeadersToRemove(), "authorization") {
		t.Errorf("dry run that would deny forwarded the token despite forward_token: false: %v", ok.GetHeadersToRemove())
	}
	trial := w.a.Sign(t, with(w.a, map[string]any{"scope": "trial:use"}))
	resp = w.Check(t, stacktest.Req{Path: "/trial", Token: trial})
	if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != "dry_run" || headerMap(resp.GetOkResponse())["x-jwt-scope"] != "trial:use" {
		t.Errorf("dry run that would allow: reason %q, headers %v", got, headerMap(resp.GetOkResponse()))
	}
	if !contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
		t.Errorf("dry run lost forward_token's removal: %v", resp.GetOkResponse().GetHeadersToRemove())
	}
	resp = w.Check(t, stacktest.Req{Path: "/trial", Token: tamper(good)})
	if len(resp.GetOkResponse().GetHeaders()) != 0 || !contains(resp.GetOkResponse().GetHeadersToRemove(), "x-jwt-sub") {
		t.Errorf("dry run with an invalid token set headers: %v", resp.GetOkResponse())
	}
	if got := w.Count("allow", "dry_run", "auth0"); got != 3 {
		t.Errorf("checks_total{allow,dry_run,auth0} = %v, want 3", got)
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func headerMap(ok *authv3.OkHttpResponse) map[string]string {
	m := map[string]string{}
	for _, h := range ok.GetHeaders() {
		m[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return m
}

// TestGoldenMutations compares the header mutations of each allowed case
// with testdata/golden. Run with -update to rewrite them after a
// deliberate change.
func TestGoldenMutations(t *testing.T) {
	t.Parallel()
	w := newRulesWorld(t, "")
	a := w.a
	fixed := func(changes map[string]any) map[string]any {
		c := with(a, changes)
		c["iat"], c["exp"] = 1_900_000_000-60, 1_900_000_000+3600 // fixed, so the payload header is stable
		return c
	}
	_ = fixed
	long := strings.Repeat("x", 9<<10)
	base := map[string]any{"iss": a.IssuerURL(), "sub": "client-1@clients", "aud": "urn:apigee:target:api",
		"iat": 1_700_000_000, "exp": 4_100_000_000, "scope": "read:target", "gty": "client-credentials", "azp": "client-1"}
	claims := func(changes map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range base {
			c[k] = v
		}
		for k, v := range changes {
			c[k] = v
		}
		return c
	}
	cases := []struct {
		name   string
		req    stacktest.Req
		stored bool // a cached token's answer is encoded once and sent as stored bytes
	}{
		{"bearer", stacktest.Req{Path: "/v1/items", Token: a.Sign(t, claims(nil)),
			Headers: map[string]string{"x-jwt-sub": "spoof", "x-tenant": "spoof"}}, true},
		{"every-claim-kind", stacktest.Req{Path: "/v1/items", Token: a.Sign(t, claims(map[string]any{
			"permissions": []any{"read:target", "write:target"}, "https://example.com/tenant": "acme",
			"org": map[string]any{"id": "o-1", "name": "Acme"}, "level": 3.5, "beta": false}))}, true},
		{"unsafe-values-dropped", stacktest.Req{Path: "/v1/items", Token: a.Sign(t, claims(map[string]any{
			"note": "line1\r\nx-injected: 1", "https://example.com/tenant": long}))}, true},
		{"query-token-removed", stacktest.Req{Path: "/v1/items?a=1&access_token=" + a.Sign(t, claims(nil))}, true},
		{"cookie-token-removed", stacktest.Req{Path: "/v1/items", Headers: map[string]string{"cookie": "a=1; at=" + a.Sign(t, claims(nil)) + "; b=2"}}, false},
		{"only-cookie-removed", stacktest.Req{Path: "/v1/items", Headers: map[string]string{"cookie": "at=" + a.Sign(t, claims(nil))}}, false},
		{"anonymous", stacktest.Req{Path: "/public/x", Headers: map[string]string{"x-jwt-sub": "spoof"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := w.Check(t, tc.req)
			if resp.GetOkResponse() == nil {
				t.Fatalf("denied: %v", resp)
			}
			got := scrub(resp, a.IssuerURL())
			file := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				b, _ := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(got)
				os.MkdirAll(filepath.Dir(file), 0o755)
				os.WriteFile(file, append(b, '\n'), 0o644)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			want := &authv3.CheckResponse{}
			if err := protojson.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CheckResponse (-want +got):\n%s", diff)
			}
			assertStoredAnswer(t, w.Stack, tc.req, resp, tc.stored)
		})
	}
}

// scrub replaces the per-run issuer URL so goldens are stable.
func scrub(resp *authv3.CheckResponse, issuer string) *authv3.CheckResponse {
	r := proto.Clone(resp).(*authv3.CheckResponse)
	if f := r.GetDynamicMetadata().GetFields(); f["issuer"] != nil {
		f["issuer"] = structpb.NewStringValue("ISSUER")
	}
	for _, h := range r.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "x-jwt-payload" {
			b, _ := jsonFromB64(h.GetHeader().GetValue())
			h.Header.Value = strings.ReplaceAll(b, issuer, "ISSUER")
		}
	}
	return r
}

func jsonFromB64(s string) (string, error) {
	b, err := decodeB64(s)
	if err != nil {
		return "", err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	out, _ := json.Marshal(v)
	return "decoded:" + string(out), nil
}

func TestApigeeBodies(t *testing.T) {
	t.Parallel()
	w := &rulesWorld{a: jwkstest.New(t, jwkstest.Options{}), b: jwkstest.New(t, jwkstest.Options{})}
	w.Stack = stacktest.Start(t, fmt.Sprintf(rulesYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.b.IssuerURL(), w.b.JWKSURL())+"deny_body: apigee\n", stacktest.Options{})
	a := w.a
	cases := []struct {
		req       stacktest.Req
		status    int
		errorcode string
	}{
		{stacktest.Req{Path: "/admin"}, 401, "steps.jwt.FailedToDecode"},
		{stacktest.Req{Path: "/admin", Token: "a.b"}, 401, "steps.jwt.FailedToDecode"},
		{stacktest.Req{Path: "/admin", Token: a.Sign(t, with(a, map[string]any{"iss": "x"}))}, 401, "steps.jwt.JwtIssuerMismatch"},
		{stacktest.Req{Path: "/admin", Token: jwkstest.Unsigned("none", a.Claims("s"))}, 401, "steps.jwt.AlgorithmMismatch"},
		{stacktest.Req{Path: "/admin", Token: a.SignWith(t, a.KID(), map[string]any{"kid": "zz"}, a.Claims("s"))}, 401, "steps.jwt.NoMatchingPublicKey"},
		{stacktest.Req{Path: "/admin", Token: tamper(a.Sign(t, a.Claims("s")))}, 401, "steps.jwt.InvalidToken"},
		{stacktest.Req{Path: "/admin", Token: a.Sign(t, with(a, map[string]any{"exp": 1000}))}, 401, "steps.jwt.TokenExpired"},
		{stacktest.Req{Path: "/admin", Token: a.Sign(t, with(a, map[string]any{"nbf": 4_000_000_000}))}, 401, "steps.jwt.TokenNotYetValid"},
		{stacktest.Req{Path: "/admin", Token: a.Sign(t, with(a, map[string]any{"aud": "x"}))}, 401, "steps.jwt.JwtAudienceMismatch"},
		{stacktest.Req{Path: "/admin", Token: a.Sign(t, a.Claims("s"))}, 403, "steps.oauth.v2.InsufficientScope"},
		{stacktest.Req{Path: "/t", Token: a.Sign(t, a.Claims("s"))}, 403, "steps.jwt.InvalidClaim"},
		{stacktest.Req{Path: "/nothing", Token: a.Sign(t, a.Claims("s"))}, 403, "accesscontrol.IPDeniedAccess"},
	}
	for _, tc := range cases {
		resp := w.Check(t, tc.req)
		d := resp.GetDeniedResponse()
		var body struct {
			Fault struct {
				Faultstring string
				Detail      struct{ Errorcode string }
			}
		}
		if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
			t.Fatalf("%s: body %q: %v", tc.req.Path, d.GetBody(), err)
		}
		if int(d.GetStatus().GetCode()) != tc.status || body.Fault.Detail.Errorcode != tc.errorcode || body.Fault.Faultstring == "" {
			t.Errorf("%+v: status %d, body %s; want %d %s", tc.req.Path, d.GetStatus().GetCode(), d.GetBody(), tc.status, tc.errorcode)
		}
		if hdr := headerValue(d, "www-authenticate"); !strings.HasPrefix(hdr, `Bearer realm="jwt-authz"`) {
			t.Errorf("challenge changed by deny_body: %q", hdr)
		}
	}
}

func headerValue(d *authv3.DeniedHttpResponse, k string) string {
	for _, h := range d.GetHeaders() {
		if h.GetHeader().GetKey() == k {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// TestSameKidTwoProviders: a kid that appears in two providers' sets never
// lets one issuer's key verify the other's tokens.
func TestSameKidTwoProviders(t *testing.T) {
	t.Parallel()
	a := jwkstest.New(t, jwkstest.Options{})
	b := jwkstest.New(t, jwkstest.Options{})
	dir := t.TempDir()
	// Provider b publishes its own key under a's kid.
	bKey := b.Key(b.KID())
	jwk, err := jwkstest.PublicJWK(bKey.Public(), a.KID(), "RS256")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []any{jwk}})
	file := filepath.Join(dir, "b.json")
	os.WriteFile(file, doc, 0o644)
	s := stacktest.Start(t, fmt.Sprintf(`
providers:
- name: a
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
- name: b
  issuer: "https://b.example/"
  audiences: ["urn:apigee:target:api"]
  jwks: {file: %q}
`, a.IssuerURL(), a.JWKSURL(), file), stacktest.Options{})
	// Signed by b's key, claiming a's issuer and the shared kid.
	forged := jwkstest.SignToken(t, "RS256", bKey, map[string]any{"kid": a.KID()}, a.Claims("s"))
	if r := s.Check(t, stacktest.Req{Token: forged}).GetDynamicMetadata().GetFields()["reason"].GetStringValue(); r != "invalid_signature" {
		t.Errorf("b's key verified a's token: reason %q", r)
	}
	// And b's token, signed by b's key, verifies under b.
	c := a.Claims("s")
	c["iss"] = "https://b.example/"
	if r := s.Check(t, stacktest.Req{Token: jwkstest.SignToken(t, "RS256", bKey, map[string]any{"kid": a.KID()}, c)}).GetDynamicMetadata().GetFields()["reason"].GetStringValue(); r != "ok" {
		t.Errorf("b's own token: reason %q", r)
	}
}
