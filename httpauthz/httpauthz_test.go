package httpauthz_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/httpauthz"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

const stackYAML = `
realm: "jwt-authz"
providers:
- name: auth0
  issuer: %[1]q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %[2]q}
  claim_headers:
  - {claim: "sub", header: "x-jwt-sub"}
  - {claim: "scope", header: "x-jwt-scope"}
  - {claim: "permissions", header: "x-jwt-permissions"}
rules:
- name: health
  match: {path_prefix: "/healthz", methods: ["GET"]}
  allow_anonymous: true
- name: internal
  match: {path_prefix: "/internal", hosts: ["internal.example.com"]}
  allow_anonymous: true
- name: admin
  match: {path_prefix: "/admin"}
  require: {scopes: ["admin:write"]}
- name: api
  match: {path_prefix: "/"}
  require: {scopes: ["read:target"]}
`

// fixture is a running authorizer with one issuer and the handler in both
// trust modes.
type fixture struct {
	iss                 *jwkstest.Issuer
	current             *atomic.Pointer[authz.Authorizer]
	direct, xfwd, xorig http.Handler
	good, admin         string
	bound               string // DPoP-bound (cnf.jkt)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	iss := jwkstest.New(t, jwkstest.Options{})
	st := stacktest.Start(t, fmt.Sprintf(stackYAML, iss.IssuerURL(), iss.JWKSURL()), stacktest.Options{})
	admin := iss.Claims("client-1@clients")
	admin["scope"] = "read:target admin:write"
	bound := iss.Claims("client-1@clients")
	bound["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
	return &fixture{
		iss:     iss,
		current: st.Current,
		direct:  httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current}),
		xfwd:    httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current, PathPrefix: "/authz/", Forwarded: httpauthz.ForwardedXForwarded}),
		xorig:   httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current, PathPrefix: "/authz/", Forwarded: httpauthz.ForwardedXOriginal}),
		good:    iss.Sign(t, iss.Claims("client-1@clients")),
		admin:   iss.Sign(t, admin),
		bound:   iss.Sign(t, bound),
	}
}

// result is what a proxy sees of the answer.
type result struct {
	Status    int
	Reason    string
	Challenge string
	Sub       string
	Remove    string
	BodyError string
	Detail    string // error_description of a bad_request
}

func do(t *testing.T, h http.Handler, method, target string, hdr http.Header) (result, *http.Response) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = "api.example.com"
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	return readResult(t, resp), resp
}

// readResult reads an answer as a proxy sees it, and checks that the body's
// reason is the header's.
func readResult(t *testing.T, resp *http.Response) result {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	res := result{
		Status:    resp.StatusCode,
		Reason:    resp.Header.Get("X-Jwt-Authz-Reason"),
		Challenge: strings.Join(resp.Header.Values("Www-Authenticate"), "\n"), // one line per header
		Sub:       resp.Header.Get("X-Jwt-Sub"),
		Remove:    resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"),
	}
	if len(body) > 0 && resp.Header.Get("Content-Type") == "application/json" { // no body to HEAD
		var b struct {
			Error       string `json:"error"`
			Reason      string `json:"reason"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("deny body %q: %v", body, err)
		}
		if b.Reason != res.Reason {
			t.Errorf("body reason %q, header reason %q", b.Reason, res.Reason)
		}
		res.BodyError = b.Error
		if b.Reason == "bad_request" {
			res.Detail = b.Description
		}
	}
	return res
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

const realm = `Bearer realm="jwt-authz"`

// dpopNoToken is the second challenge of a request without a token while
// the provider accepts DPoP (the default).
const dpopNoToken = `DPoP algs="ES256 PS256 RS256 EdDSA Ed25519"`

type testCase struct {
	name   string
	method string // "" = GET
	target string
	hdr    http.Header
	want   result
}

func runCases(t *testing.T, h http.Handler, tests []testCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = "GET"
			}
			got, _ := do(t, h, method, tt.target, tt.hdr)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", method, tt.target, diff)
			}
		})
	}
}

// TestEnvoyHTTPService: the original request is the subrequest itself, its
// path after the prefix (Envoy's http_service path_prefix).
func TestEnvoyHTTPService(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []testCase{
		{
			name: "allowed: claim headers set, absent claims removed", target: "/authz/json?x=1", hdr: bearer(f.good),
			want: result{Status: 200, Reason: "ok", Sub: "client-1@clients", Remove: "x-jwt-permissions"},
		},
		{
			name: "no token", target: "/authz/json",
			want: result{Status: 401, Reason: "missing_token", Challenge: realm + "\n" + dpopNoToken, BodyError: "unauthorized"},
		},
		{
			name: "DPoP-bound token without its proof", target: "/authz/json", hdr: http.Header{"Authorization": {"DPoP " + f.bound}},
			want: result{Status: 401, Reason: "missing_proof", BodyError: "invalid_token",
				Challenge: `DPoP algs="ES256 PS256 RS256 EdDSA Ed25519", error="invalid_token", error_description="the DPoP token came without a DPoP proof"`},
		},
		{
			name: "bad token", target: "/authz/json", hdr: bearer("a.b.c"),
			want: result{Status: 401, Reason: "malformed_token", BodyError: "invalid_token",
				Challenge: realm + `, error="invalid_token", error_description="the token is malformed: header is not base64url"`},
		},
		{
			name: "scope missing", target: "/authz/admin/users", hdr: bearer(f.good),
			want: result{Status: 403, Reason: "insufficient_scope", BodyError: "insufficient_scope",
				Challenge: realm + `, error="insufficient_scope", scope="admin:write"`},
		},
		{
			name: "dot segments are decided, not redirected", target: "/authz/public/../admin", hdr: bearer(f.good),
			want: result{Status: 403, Reason: "insufficient_scope", BodyError: "insufficient_scope",
				Challenge: realm + `, error="insufficient_scope", scope="admin:write"`},
		},
		{
			name: "escaped path meets its rule", target: "/authz/%61dmin", hdr: bearer(f.admin),
			want: result{Status: 200, Reason: "ok", Sub: "client-1@clients", Remove: "x-jwt-permissions"},
		},
		{
			name: "prefix alone is the root", target: "/authz?q=1", hdr: bearer(f.good),
			want: result{Status: 200, Reason: "ok", Sub: "client-1@clients", Remove: "x-jwt-permissions"},
		},
		{
			name: "anonymous route removes every claim header", target: "/authz/healthz",
			want: result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"},
		},
		{
			name: "method is the subrequest's", method: "POST", target: "/authz/healthz",
			want: result{Status: 401, Reason: "missing_token", Challenge: realm + "\n" + dpopNoToken, BodyError: "unauthorized"},
		},
		{
			name: "forwarded headers ignored unless trusted", target: "/authz/json",
			hdr:  http.Header{"X-Original-Uri": {"/healthz"}, "X-Forwarded-Uri": {"/healthz"}},
			want: result{Status: 401, Reason: "missing_token", Challenge: realm + "\n" + dpopNoToken, BodyError: "unauthorized"},
		},
		{
			name: "outside the prefix", target: "/authzfoo",
			want: result{Status: 404},
		},
	}
	runCases(t, f.direct, tests)
}

// TestForwardedHeaders: nginx (x-original) and Traefik, Caddy
// (x-forwarded), each trusting its own family only.
func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	missing := result{Status: 401, Reason: "missing_token", Challenge: realm + "\n" + dpopNoToken, BodyError: "unauthorized"}
	anonymous := result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"}
	bad := func(desc string) result {
		return result{Status: 400, Reason: "bad_request", BodyError: "invalid_request", Detail: desc}
	}
	orig := func(method, uri, host string, kv ...string) http.Header {
		return h(append([]string{"X-Original-Method", method, "X-Original-Uri", uri, "X-Original-Host", host}, kv...)...)
	}
	fwd := func(method, uri, host string, kv ...string) http.Header {
		return h(append([]string{"X-Forwarded-Method", method, "X-Forwarded-Uri", uri, "X-Forwarded-Host", host, "X-Forwarded-Proto", "https"}, kv...)...)
	}
	xorig := []testCase{
		{name: "original URI", target: "/authz", hdr: orig("GET", "/healthz?probe=1", "api.example.com"), want: anonymous},
		{name: "original method", target: "/authz", hdr: orig("DELETE", "/healthz", "api.example.com"), want: missing},
		{name: "original host selects a host rule", target: "/authz", hdr: orig("GET", "/internal/x", "internal.example.com:443"), want: anonymous},
		{name: "dot segments in the URI", target: "/authz", hdr: orig("GET", "/healthz/../admin", "api.example.com"), want: missing},
		{name: "the other family is ignored when it agrees", target: "/authz",
			hdr: orig("GET", "/healthz", "api.example.com", "X-Forwarded-Uri", "/healthz", "X-Forwarded-Method", "get", "X-Forwarded-For", "203.0.113.7"), want: anonymous},
		{name: "a front balancer's x-forwarded-proto alone is ignored", target: "/authz",
			hdr: orig("GET", "/healthz", "api.example.com", "X-Forwarded-Proto", "https"), want: anonymous},
		{name: "the other family disagreeing is refused", target: "/authz",
			hdr: orig("GET", "/admin/delete", "api.example.com", "X-Forwarded-Uri", "/healthz"), want: bad("x-forwarded-uri header disagrees with x-original-uri")},
		{name: "the subrequest's own path is not used", target: "/authz/healthz", want: bad("missing x-original-method header")},
		{name: "missing host", target: "/authz", hdr: h("X-Original-Method", "GET", "X-Original-Uri", "/healthz"), want: bad("missing x-original-host header")},
		{name: "repeated URI", target: "/authz", hdr: orig("GET", "/healthz", "api.example.com", "X-Original-Uri", "/admin"), want: bad("repeated x-original-uri header")},
		{name: "repeated under another spelling", target: "/authz", hdr: orig("GET", "/healthz", "api.example.com", "X_Original_Uri", "/admin"), want: bad("repeated x-original-uri header")},
		{name: "host list", target: "/authz", hdr: orig("GET", "/internal/x", "internal.example.com, api.example.com"), want: bad("repeated x-original-host header")},
		{name: "proto that is not a scheme", target: "/authz", hdr: orig("GET", "/healthz", "api.example.com", "X-Original-Proto", "ht tp"), want: bad("x-original-proto header is not a scheme")},
		{name: "URI that is not a request target", target: "/authz", hdr: orig("GET", "healthz", "api.example.com"), want: bad("x-original-uri header is not a request target")},
	}
	xfwd := []testCase{
		{name: "forwarded method and URI", target: "/authz/",
			hdr: fwd("PUT", "/admin/x", "api.example.com", "Authorization", "Bearer "+f.good),
			want: result{Status: 403, Reason: "insufficient_scope", BodyError: "insufficient_scope",
				Challenge: realm + `, error="insufficient_scope", scope="admin:write"`}},
		{name: "forwarded URI with a token", target: "/authz", hdr: fwd("GET", "/json", "api.example.com", "Authorization", "Bearer "+f.good),
			want: result{Status: 200, Reason: "ok", Sub: "client-1@clients", Remove: "x-jwt-permissions"}},
		{name: "forwarded host selects a host rule", target: "/authz", hdr: fwd("GET", "/internal/x", "internal.example.com:443"), want: anonymous},
		{name: "absolute URI agreeing with the host", target: "/authz", hdr: fwd("GET", "https://internal.example.com/internal/x", "internal.example.com"), want: anonymous},
		{name: "absolute URI naming another host", target: "/authz", hdr: fwd("GET", "https://internal.example.com/internal/x", "api.example.com"), want: bad("x-forwarded-uri host disagrees with x-forwarded-host")},
		{name: "absolute URI naming another scheme", target: "/authz", hdr: fwd("GET", "http://internal.example.com/internal/x", "internal.example.com"), want: bad("x-forwarded-uri scheme disagrees with x-forwarded-proto")},
		{name: "client's X-Original-Uri beside the proxy's X-Forwarded-Uri", target: "/authz",
			hdr: fwd("GET", "/admin/delete", "api.example.com", "X-Original-Uri", "/healthz"), want: bad("x-original-uri header disagrees with x-forwarded-uri")},
		{name: "client's X-Original-Host beside the proxy's X-Forwarded-Host", target: "/authz",
			hdr: fwd("GET", "/internal/x", "api.example.com", "X-Original-Host", "internal.example.com"), want: bad("x-original-host header disagrees with x-forwarded-host")},
		{name: "client's X-Original-Method beside the proxy's", target: "/authz",
			hdr: fwd("POST", "/healthz", "api.example.com", "X-Original-Method", "GET"), want: bad("x-original-method header disagrees with x-forwarded-method")},
		{name: "client's X-Original-Proto beside the proxy's", target: "/authz",
			hdr: fwd("GET", "/healthz", "api.example.com", "X-Original-Proto", "http"), want: bad("x-original-proto header disagrees with x-forwarded-proto")},
		{name: "repeated forwarded URI is refused", target: "/authz", hdr: fwd("GET", "/healthz", "api.example.com", "X-Forwarded-Uri", "/admin"), want: bad("repeated x-forwarded-uri header")},
		{name: "method list is refused", target: "/authz", hdr: fwd("GET, POST", "/healthz", "api.example.com"), want: bad("repeated x-forwarded-method header")},
		{name: "empty URI is refused", target: "/authz", hdr: h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "", "X-Forwarded-Host", "api.example.com"), want: bad("x-forwarded-uri header is empty")},
		{name: "missing URI is refused", target: "/authz/healthz", hdr: h("X-Forwarded-Method", "GET", "X-Forwarded-Host", "api.example.com"), want: bad("missing x-forwarded-uri header")},
	}
	t.Run("x-original", func(t *testing.T) { runCases(t, f.xorig, xorig) })
	t.Run("x-forwarded", func(t *testing.T) { runCases(t, f.xfwd, xfwd) })
}

func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, resp := do(t, f.direct, "GET", "/authz/json", bearer(f.good))
	for k, want := range map[string]string{
		"X-Jwt-Scope":    "read:target",
		"Cache-Control":  "no-store",
		"Content-Length": "0",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("allowed: %s = %q, want %q", k, got, want)
		}
	}
	if v, ok := resp.Header["X-Jwt-Permissions"]; ok {
		t.Errorf("allowed: absent claim sent as header %q", v)
	}
	_, resp = do(t, f.direct, "GET", "/authz/json", nil)
	for k, want := range map[string]string{
		"Content-Type":  "application/json",
		"Cache-Control": "no-store",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("denied: %s = %q, want %q", k, got, want)
		}
	}
	if v := resp.Header.Get("X-Jwt-Sub"); v != "" {
		t.Errorf("denied: x-jwt-sub = %q", v)
	}
}

// TestRepeatedHeadersJoined: two Authorization headers are two tokens.
func TestRepeatedHeadersJoined(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	got, _ := do(t, f.direct, "GET", "/authz/json", http.Header{"Authorization": {"Bearer " + f.good, "Bearer " + f.good}})
	if got.Status != 401 || got.Reason != "malformed_token" {
		t.Errorf("two authorization headers: got %d %s, want 401 malformed_token", got.Status, got.Reason)
	}
}

func TestKeysUnavailable(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/jwks.json"
	dead.Close()
	st := stacktest.Start(t, fmt.Sprintf(`
providers:
- name: down
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q, fetch_timeout: "1s"}
`, iss.IssuerURL(), deadURL), stacktest.Options{NoWait: true})
	h := httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current})
	got, resp := do(t, h, "GET", "/authz/", bearer(iss.Sign(t, iss.Claims("x"))))
	if got.Status != 503 || got.Reason != "keys_unavailable" || got.BodyError != "temporarily_unavailable" {
		t.Errorf("got %+v, want 503 keys_unavailable", got)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Error("no Retry-After on 503")
	}
	if got.Challenge != "" {
		t.Errorf("503 with a challenge %q", got.Challenge)
	}
}

func TestNoAuthorizer(t *testing.T) {
	t.Parallel()
	h := httpauthz.NewHandler(httpauthz.Options{Authorizer: &atomic.Pointer[authz.Authorizer]{}})
	got, _ := do(t, h, "GET", "/authz/x", nil)
	if got.Status != 503 {
		t.Errorf("status %d, want 503", got.Status)
	}
}

// TestRoute: the prefix bypasses ServeMux's path cleaning; everything else
// reaches the mux.
func TestRoute(t *testing.T) {
	t.Parallel()
	authzH := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "authz") })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") })
	h := httpauthz.Route("/authz", authzH, mux)
	tests := []struct {
		target string
		want   string
	}{
		{"/authz", "authz"},
		{"/authz?x=1", "authz"},
		{"/authz/", "authz"},
		{"/authz/a/../b", "authz"},
		{"/authz//x", "authz"},
		{"/metrics", "metrics"},
		{"/authzfoo", "404 page not found\n"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tt.target, nil))
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.target, got, tt.want)
		}
	}
}
