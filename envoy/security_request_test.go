package envoy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// secYAML is the world of the request-shape tests: a public route, an
// admin route, a GET-only route, a CORS route and an API route; %[3]s adds
// rules after them and top-level settings (a catch-all anonymous rule,
// default_decision, paths).
const secYAML = `
providers:
- name: auth0
  issuer: %[1]q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %[2]q}
  from:
  - header: {name: "authorization", prefix: "Bearer "}
  - query: "access_token"
  forward_token: false
  claim_headers:
  - {claim: "sub", header: "x-jwt-sub"}
  - {claim: "scope", header: "x-jwt-scope"}
  - {claim: "azp", header: "x-jwt-client-id"}
rules:
- name: public
  match: {path_prefix: "/public"}
  allow_anonymous: true
- name: admin
  match: {path_prefix: "/admin"}
  require: {scopes: ["admin:write"]}
- name: reports
  match: {path_prefix: "/reports", methods: ["GET"]}
  require: {scopes: ["reports:read"]}
- name: cors
  match: {path_prefix: "/cors"}
  allow_cors_preflight: true
  require: {scopes: ["read:target"]}
- name: api
  match: {path_prefix: "/api"}
  require: {scopes: ["read:target"]}
%[3]s`

// catchAll ends the rule list with an anonymous rule for every other path,
// the set-up under which a request that misses its rule is let through.
const catchAll = `- name: rest
  match: {path_prefix: "/"}
  allow_anonymous: true
`

type secWorld struct {
	*stacktest.Stack
	iss  *jwkstest.Issuer
	good string // read:target, valid
}

// secWorlds are the stacks of the request-shape tests, all on one issuer:
// the RSA keys and stacks are the expensive part, so they are built once.
type secWorlds struct {
	deny  *secWorld // the rules, default deny
	allow *secWorld // the rules, default allow
	rest  *secWorld // the rules and an anonymous catch-all; ";" rejected
	strip *secWorld // rest with paths.parameters: strip
	keep  *secWorld // rest with paths.parameters: keep
	fold  *secWorld // rest with paths.case_insensitive
}

func newSecWorld(t *testing.T, iss *jwkstest.Issuer, tail string) *secWorld {
	t.Helper()
	w := &secWorld{iss: iss, good: iss.Sign(t, iss.Claims("client-1@clients"))}
	w.Stack = stacktest.Start(t, fmt.Sprintf(secYAML, iss.IssuerURL(), iss.JWKSURL(), tail), stacktest.Options{})
	return w
}

// TestRequestSecurity runs one test per way a request could be read two
// ways, each over real gRPC against the stacks above.
func TestRequestSecurity(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	ws := &secWorlds{
		deny:  newSecWorld(t, iss, ""),
		allow: newSecWorld(t, iss, "default_decision: allow\n"),
		rest:  newSecWorld(t, iss, catchAll),
		strip: newSecWorld(t, iss, catchAll+"paths: {parameters: strip}\n"),
		keep:  newSecWorld(t, iss, catchAll+"paths: {parameters: keep}\n"),
		fold:  newSecWorld(t, iss, catchAll+"paths: {case_insensitive: true}\n"),
	}
	for _, tc := range []struct {
		name string
		test func(*testing.T, *secWorlds)
	}{
		{"ContextNeedsToken", testContextNeedsToken},
		{"QueryNameWrittenAnotherWay", testQueryNameWrittenAnotherWay},
		{"MetadataSanitised", testMetadataSanitised},
		{"BearerSchemeShape", testBearerSchemeShape},
		{"PathParameters", testPathParameters},
		{"TwoCredentialsInOneHeader", testTwoCredentialsInOneHeader},
		{"HeadAndPreflight", testHeadAndPreflight},
		{"RequestShapeLimits", testRequestShapeLimits},
		{"CaseInsensitivePaths", testCaseInsensitivePaths},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, ws)
		})
	}
}

const secRealm = `Bearer realm="jwt-authz"`

func malformed(desc string) want {
	return want{reason: "malformed_token", http: 401, grpc: 16,
		challenge: secRealm + `, error="invalid_token", error_description="the token is malformed: ` + desc + `"`}
}

// dpopNoToken is the second challenge of a request without a token while
// a provider accepts DPoP (the default), RFC 9449 §7.1.
const dpopNoToken = `DPoP algs="ES256 PS256 RS256 EdDSA Ed25519"`

var missing = want{reason: "missing_token", http: 401, grpc: 16, challenge: secRealm + "\n" + dpopNoToken}

// assertBadRequest holds a response to the bad_request answer: 400,
// INVALID_ARGUMENT, no challenge, body error invalid_request.
func assertBadRequest(t *testing.T, resp *authv3.CheckResponse, desc string) {
	t.Helper()
	if got := resp.GetStatus().GetCode(); got != 3 {
		t.Errorf("status.code = %d, want 3 (INVALID_ARGUMENT)", got)
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("want denied_response, got %v", resp)
	}
	if got := d.GetStatus().GetCode(); got != 400 {
		t.Errorf("http status = %d, want 400", got)
	}
	for _, h := range d.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			t.Errorf("bad_request carries a challenge: %q", h.GetHeader().GetValue())
		}
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Reason      string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
		t.Fatalf("body %q: %v", d.GetBody(), err)
	}
	if body.Error != "invalid_request" || body.Reason != "bad_request" || body.Description != desc {
		t.Errorf("body = %+v, want invalid_request, bad_request, %q", body, desc)
	}
}

// assertAnonymous checks that an anonymous allowed response removes every claim
// header and sets none: nothing reaches the upstream that the client
// could have written.
func assertAnonymous(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	assertDecision(t, resp, want{allow: true, reason: "anonymous", http: 200})
	ok := resp.GetOkResponse()
	if len(ok.GetHeaders()) != 0 {
		t.Errorf("anonymous response sets headers %v", ok.GetHeaders())
	}
	for _, h := range []string{"x-jwt-sub", "x-jwt-scope", "x-jwt-client-id"} {
		if !contains(ok.GetHeadersToRemove(), h) {
			t.Errorf("headers_to_remove %v lacks %s", ok.GetHeadersToRemove(), h)
		}
	}
}

// testContextNeedsToken: a context requirement (scopes, providers,
// allow_anonymous other than true) needs a token under an anonymous rule
// and under default_decision: allow; sending nothing must not do better
// than sending a token that lacks the scope.
func testContextNeedsToken(t *testing.T, ws *secWorlds) {
	deny, allow := ws.deny, ws.allow
	forbidden := want{reason: "insufficient_scope", http: 403, grpc: 7,
		challenge: secRealm + `, error="insufficient_scope", scope="admin:write"`}
	for _, tc := range []struct {
		name string
		w    *secWorld
		req  stacktest.Req
		want want
	}{
		{"anonymous rule, context scopes, no token", deny, stacktest.Req{Path: "/public/x", Context: map[string]string{"scopes": "admin:write"}}, missing},
		{"anonymous rule, context scopes, token without scope", deny, stacktest.Req{Path: "/public/x", Token: deny.good, Context: map[string]string{"scopes": "admin:write"}}, forbidden},
		{"anonymous rule, context allow_anonymous false", deny, stacktest.Req{Path: "/public/x", Context: map[string]string{"allow_anonymous": "false"}}, missing},
		{"anonymous rule, context providers", deny, stacktest.Req{Path: "/public/x", Context: map[string]string{"providers": "auth0"}}, missing},
		{"default allow, context allow_anonymous false", allow, stacktest.Req{Path: "/elsewhere", Context: map[string]string{"allow_anonymous": "false"}}, missing},
		{"default allow, context allow_anonymous no", allow, stacktest.Req{Path: "/elsewhere", Context: map[string]string{"allow_anonymous": "no"}}, missing},
		{"default allow, context scopes", allow, stacktest.Req{Path: "/elsewhere", Context: map[string]string{"scopes": "admin:write"}}, missing},
		{"default allow, context providers", allow, stacktest.Req{Path: "/elsewhere", Context: map[string]string{"providers": "auth0"}}, missing},
		{"default allow, context scopes, token without scope", allow, stacktest.Req{Path: "/elsewhere", Token: allow.good, Context: map[string]string{"scopes": "admin:write"}}, forbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, tc.w.Check(t, tc.req), tc.want)
		})
	}
	// Without context the same requests stay anonymous: the context, not
	// the route, asked for the token.
	assertAnonymous(t, deny.Check(t, stacktest.Req{Path: "/public/x"}))
	assertAnonymous(t, allow.Check(t, stacktest.Req{Path: "/elsewhere", Context: map[string]string{"allow_anonymous": "true", "scopes": " "}}))
}

// testQueryNameWrittenAnotherWay: Envoy removes query parameters by their
// raw name, so a token under "access%5Ftoken" would reach the upstream
// despite forward_token: false; it is malformed, never taken.
func testQueryNameWrittenAnotherWay(t *testing.T, ws *secWorlds) {
	w := ws.deny
	bad := malformed("query parameter name access_token written another way")
	for _, path := range []string{
		"/public?access%5Ftoken=" + w.good,
		"/public?%61ccess_token=" + w.good,
		"/api?x=1&access%5ftoken=" + w.good,
		"/api?ACCESS_TOKEN=" + w.good,
		"/public?x=1;access_token=" + w.good,
	} {
		t.Run(path[:20], func(t *testing.T) {
			t.Parallel()
			assertDecision(t, w.Check(t, stacktest.Req{Path: path}), bad)
		})
	}
	// The raw name is still the token, and removed upstream by that name.
	resp := w.Check(t, stacktest.Req{Path: "/api?access_token=" + w.good})
	assertDecision(t, resp, want{allow: true, reason: "ok", http: 200})
	if got := resp.GetOkResponse().GetQueryParametersToRemove(); len(got) != 1 || got[0] != "access_token" {
		t.Errorf("query_parameters_to_remove = %v, want [access_token]", got)
	}
}

// testMetadataSanitised: subject, client_id and scope from a token go to
// Envoy's dynamic metadata (and text access logs) only when they carry no
// control character and fit in 8 KiB, as claim headers do.
func testMetadataSanitised(t *testing.T, ws *secWorlds) {
	w := ws.deny
	for _, tc := range []struct {
		name   string
		claims map[string]any
		left   []string // metadata keys left out
		kept   map[string]string
	}{
		{"CR LF in sub and scope", with(w.iss, map[string]any{"sub": "svc\r\nx-evil: 1", "scope": "read:target\r\nx-evil: 1"}),
			[]string{"subject", "scope"}, map[string]string{"client_id": jwkstest.ClientID}},
		{"NUL in sub", with(w.iss, map[string]any{"sub": "a\x00b"}),
			[]string{"subject"}, map[string]string{"client_id": jwkstest.ClientID, "scope": jwkstest.Scope}},
		{"9000-byte client id", with(w.iss, map[string]any{"azp": strings.Repeat("c", 9000)}),
			[]string{"client_id"}, map[string]string{"subject": "client-1@clients"}},
		{"tab and C1 control in sub", with(w.iss, map[string]any{"sub": "a\tb", "azp": "x\u0085y"}),
			[]string{"subject", "client_id"}, map[string]string{"scope": jwkstest.Scope}},
		{"unicode kept", with(w.iss, map[string]any{"sub": "zoë@clients"}),
			nil, map[string]string{"subject": "zoë@clients"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := w.Check(t, stacktest.Req{Path: "/api/x", Token: w.iss.Sign(t, tc.claims)})
			assertDecision(t, resp, want{allow: true, reason: "ok", http: 200})
			meta := resp.GetDynamicMetadata().GetFields()
			for _, k := range tc.left {
				if v, ok := meta[k]; ok {
					t.Errorf("metadata %s = %.40q..., want it left out", k, v.GetStringValue())
				}
			}
			for k, v := range tc.kept {
				if got := meta[k].GetStringValue(); got != v {
					t.Errorf("metadata %s = %.40q, want %q", k, got, v)
				}
			}
			if got := meta["provider"].GetStringValue(); got != "auth0" {
				t.Errorf("metadata provider = %q", got)
			}
			for _, f := range meta {
				if s := f.GetStringValue(); len(s) > 8<<10 || strings.ContainsAny(s, "\r\n\x00\t") {
					t.Errorf("unsafe metadata value %.40q", s)
				}
			}
			for _, h := range resp.GetOkResponse().GetHeaders() {
				if v := h.GetHeader().GetValue(); len(v) > 8<<10 || strings.ContainsAny(v, "\r\n\x00") {
					t.Errorf("unsafe header %s: %.40q", h.GetHeader().GetKey(), v)
				}
			}
		})
	}
}

// testBearerSchemeShape: "Bearer" must be followed by exactly one space
// and the token; anything else is malformed, so an anonymous route does
// not forward an unverified credential.
func testBearerSchemeShape(t *testing.T, ws *secWorlds) {
	w := ws.deny
	notOne := malformed("the scheme is not followed by one space and the token")
	for _, tc := range []struct {
		name, value string
		want        want
	}{
		{"tab", "Bearer\t" + w.good, notOne},
		{"two spaces", "Bearer  " + w.good, notOne},
		{"space then tab", "Bearer \t" + w.good, notOne},
		{"token then junk", "Bearer " + w.good + " x", malformed("whitespace in token")},
		{"bearer alone", "Bearer", malformed("empty token")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, w.Check(t, stacktest.Req{Path: "/public", Headers: map[string]string{"authorization": tc.value}}), tc.want)
		})
	}
	resp := w.Check(t, stacktest.Req{Path: "/public", Headers: map[string]string{"authorization": "bEARER " + w.good}})
	assertDecision(t, resp, want{allow: true, reason: "ok", http: 200})
	if got := headerMap(resp.GetOkResponse())["x-jwt-sub"]; got != "client-1@clients" {
		t.Errorf("x-jwt-sub = %q", got)
	}
	if !contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
		t.Errorf("forward_token: false, but authorization is not removed: %v", resp.GetOkResponse().GetHeadersToRemove())
	}
	// Another scheme is still no token.
	assertAnonymous(t, w.Check(t, stacktest.Req{Path: "/public", Headers: map[string]string{"authorization": "Basic eA=="}}))
	assertAnonymous(t, w.Check(t, stacktest.Req{Path: "/public", Headers: map[string]string{"authorization": "Bearerish " + w.good}}))
}

// testPathParameters: ";" parameters are refused by default (Spring's
// firewall), stripped before matching with paths.parameters: strip
// (Tomcat, Jetty), or matched literally with keep.
func testPathParameters(t *testing.T, ws *secWorlds) {
	reject, strip, keep := ws.rest, ws.strip, ws.keep
	scope := want{reason: "insufficient_scope", http: 403, grpc: 7,
		challenge: secRealm + `, error="insufficient_scope", scope="admin:write"`}
	for _, path := range []string{"/public/..;/admin/users", "/admin;x", "/admin;jsessionid=1/users", "/public/%3B/x"} {
		t.Run("reject "+path, func(t *testing.T) {
			t.Parallel()
			want := "the request path holds ; parameters"
			if strings.Contains(path, "%3B") {
				want = "the request path holds an encoded ;"
			}
			assertBadRequest(t, reject.Check(t, stacktest.Req{Path: path, Token: reject.good}), want)
		})
	}
	for _, tc := range []struct {
		path string
		want want
	}{
		{"/public/..;/admin/users", missing},
		{"/admin;x", missing},
		{"/admin;x/users;y=1", missing},
		{"/public;x/y", want{allow: true, reason: "anonymous", http: 200}},
	} {
		t.Run("strip "+tc.path, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, strip.Check(t, stacktest.Req{Path: tc.path}), tc.want)
		})
	}
	assertDecision(t, strip.Check(t, stacktest.Req{Path: "/admin;x", Token: strip.good}), scope)
	assertBadRequest(t, strip.Check(t, stacktest.Req{Path: "/admin%3bx"}), "the request path holds an encoded ;")
	// Decoding before or after cutting parameters would give different
	// paths here: refused rather than guessed.
	for _, p := range []string{"/public%2F..;%2Fadmin", "/public\\..;\\admin", "/public%5c..;/admin"} {
		assertBadRequest(t, strip.Check(t, stacktest.Req{Path: p}), "the request path holds ; parameters and an encoded separator")
	}
	// keep: ";" is an ordinary character; "/admin;x" is not under /admin.
	assertAnonymous(t, keep.Check(t, stacktest.Req{Path: "/admin;x"}))
	assertDecision(t, keep.Check(t, stacktest.Req{Path: "/admin/;x"}), missing)
}

// testTwoCredentialsInOneHeader: Envoy's headers map and HTTP mode join
// repeats with ","; a comma cannot occur in a bearer token, so two
// credentials are malformed, never "another scheme".
func testTwoCredentialsInOneHeader(t *testing.T, ws *secWorlds) {
	w := ws.deny
	expired := w.iss.Sign(t, with(w.iss, map[string]any{"exp": time.Now().Unix() - 3600, "iat": time.Now().Unix() - 7200}))
	two := malformed("more than one credential in header")
	for _, v := range []string{
		"Basic eA==,Bearer " + expired,
		"Basic eA==, bearer " + expired,
		"Bearer " + w.good + ",Basic eA==",
		"Digest a=b, Bearer " + w.good,
	} {
		t.Run(v[:12], func(t *testing.T) {
			t.Parallel()
			assertDecision(t, w.Check(t, stacktest.Req{Path: "/public", Headers: map[string]string{"authorization": v}}), two)
		})
	}
	// The same two credentials as separate header_map entries, names in
	// any case.
	hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Authorization", RawValue: []byte("Basic eA==")},
		{Key: "authorization", RawValue: []byte("Bearer " + expired)},
	}}
	resp, err := w.Client.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/public", Host: "api.example.com", HeaderMap: hm}}}})
	if err != nil {
		t.Fatal(err)
	}
	assertDecision(t, resp, malformed("header authorization repeated"))
	// A Digest header alone (commas and all) is still another scheme.
	assertAnonymous(t, w.Check(t, stacktest.Req{Path: "/public", Headers: map[string]string{"authorization": `Digest username="u", realm="r"`}}))
}

// testHeadAndPreflight: HEAD meets a GET rule; a CORS preflight needs an
// Origin and a real method token, and context allow_anonymous false turns
// the pass-through off.
func testHeadAndPreflight(t *testing.T, ws *secWorlds) {
	w := ws.rest
	reports := want{reason: "insufficient_scope", http: 403, grpc: 7,
		challenge: secRealm + `, error="insufficient_scope", scope="reports:read"`}
	pre := func(h ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(h); i += 2 {
			m[h[i]] = h[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{"HEAD under a GET rule, no token", stacktest.Req{Method: "HEAD", Path: "/reports/q1"}, missing},
		{"head in lower case", stacktest.Req{Method: "head", Path: "/reports"}, missing},
		{"HEAD under a GET rule, token without scope", stacktest.Req{Method: "HEAD", Path: "/reports", Token: w.good}, reports},
		{"POST is not GET", stacktest.Req{Method: "POST", Path: "/reports"}, want{allow: true, reason: "anonymous", http: 200}},
		{"preflight", stacktest.Req{Method: "OPTIONS", Path: "/cors/x", Headers: pre("origin", "https://app.example", "access-control-request-method", "PUT")}, want{allow: true, reason: "anonymous", http: 200}},
		{"preflight without origin", stacktest.Req{Method: "OPTIONS", Path: "/cors/x", Headers: pre("access-control-request-method", "PUT")}, missing},
		{"preflight with a method that is not a token", stacktest.Req{Method: "OPTIONS", Path: "/cors/x", Headers: pre("origin", "https://app.example", "access-control-request-method", "GET /admin")}, missing},
		{"preflight with a method list", stacktest.Req{Method: "OPTIONS", Path: "/cors/x", Headers: pre("origin", "https://app.example", "access-control-request-method", "GET,POST")}, missing},
		{"preflight turned off by context", stacktest.Req{Method: "OPTIONS", Path: "/cors/x", Headers: pre("origin", "https://app.example", "access-control-request-method", "GET"),
			Context: map[string]string{"allow_anonymous": "false"}}, missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, w.Check(t, tc.req), tc.want)
		})
	}
}

// testRequestShapeLimits: header limits count every header whatever the
// case of its name; a path not starting with "/" (but OPTIONS *) and a
// host that cannot be normalised are refused with 400, not passed to a
// looser rule.
func testRequestShapeLimits(t *testing.T, ws *secWorlds) {
	w := ws.rest
	// Go randomises map order: the old count stopped at the first
	// upper-case key it met, so a 100 KB header passed some of the time.
	for i := range 30 {
		req := stacktest.Req{Path: "/public"}.CheckRequest()
		h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
		h["X-Upper"], h["x-big"], h["x-a"], h["x-b"] = "v", strings.Repeat("a", 100<<10), "1", "2"
		resp, err := w.Client.Check(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != "malformed_token" || resp.GetOkResponse() != nil {
			t.Fatalf("try %d: 100 KB of headers: reason %q, allowed %v", i, got, resp.GetOkResponse() != nil)
		}
		if body := resp.GetDeniedResponse().GetBody(); !strings.Contains(body, "request headers too large") {
			t.Fatalf("try %d: body %s", i, body)
		}
	}
	hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "X-Upper", RawValue: []byte("v")}, {Key: "X-Big", RawValue: []byte(strings.Repeat("a", 100<<10))},
	}}
	resp, err := w.Client.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/public", Host: "api.example.com", HeaderMap: hm}}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() != nil || !strings.Contains(resp.GetDeniedResponse().GetBody(), "request headers too large") {
		t.Fatalf("header_map with 100 KB of headers: %v", resp)
	}
	for _, path := range []string{"http://evil/admin", "evil/admin", "", "*"} {
		t.Run("path "+path, func(t *testing.T) {
			t.Parallel()
			req := stacktest.Req{Path: "/"}.CheckRequest()
			req.GetAttributes().GetRequest().GetHttp().Path = path
			resp, err := w.Client.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			assertBadRequest(t, resp, "the request path does not start with /")
		})
	}
	assertAnonymous(t, w.Check(t, stacktest.Req{Method: "OPTIONS", Path: "*"}))
	for _, tc := range []struct{ path, why string }{
		{"/admin.", "a request path segment ends in a dot or a space"},
		{"/admin%2e", "a request path segment ends in a dot or a space"},
		{"/admin%20", "a request path segment ends in a dot or a space"},
		{"/admin.../users", "a request path segment ends in a dot or a space"},
		{"/admin%00", "the request path holds a control character"},
		{"/admin%0d%0ax", "the request path holds a control character"},
	} {
		t.Run("path "+tc.path, func(t *testing.T) {
			t.Parallel()
			assertBadRequest(t, w.Check(t, stacktest.Req{Path: tc.path}), tc.why)
		})
	}
	// Dot segments and inner dots still read one way.
	assertDecision(t, w.Check(t, stacktest.Req{Path: "/public/./../admin/v1.2/x"}), missing)
	for _, host := range []string{"api.example.com..", "a:80:80", "user@api.example.com", "api example.com", "api.example.com:8o", "[::1", "[::1]x", ".example.com", "a..b"} {
		t.Run("host "+host, func(t *testing.T) {
			t.Parallel()
			assertBadRequest(t, w.Check(t, stacktest.Req{Path: "/public", Host: host}), "the request host cannot be read")
		})
	}
	for _, host := range []string{"API.Example.com.:8443", "[::1]:9001", "10.0.0.1", "my_host:"} {
		assertAnonymous(t, w.Check(t, stacktest.Req{Path: "/public", Host: host}))
	}
}

// testCaseInsensitivePaths: with paths.case_insensitive /ADMIN meets the
// /admin rule; by default paths are case-sensitive.
func testCaseInsensitivePaths(t *testing.T, ws *secWorlds) {
	fold, plain := ws.fold, ws.rest
	for _, p := range []string{"/ADMIN", "/Admin/Users", "/%41dmin"} {
		assertDecision(t, fold.Check(t, stacktest.Req{Path: p}), missing)
		assertAnonymous(t, plain.Check(t, stacktest.Req{Path: p}))
	}
}
