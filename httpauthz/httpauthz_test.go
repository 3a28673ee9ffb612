package httpauthz_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	iss              *jwkstest.Issuer
	current          *atomic.Pointer[authz.Authorizer]
	direct, trusting http.Handler
	good, admin      string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	iss := jwkstest.New(t, jwkstest.Options{})
	st := stacktest.Start(t, fmt.Sprintf(stackYAML, iss.IssuerURL(), iss.JWKSURL()), stacktest.Options{})
	admin := iss.Claims("client-1@clients")
	admin["scope"] = "read:target admin:write"
	return &fixture{
		iss:      iss,
		current:  st.Current,
		direct:   httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current}),
		trusting: httpauthz.NewHandler(httpauthz.Options{Authorizer: st.Current, PathPrefix: "/authz/", TrustForwarded: true}),
		good:     iss.Sign(t, iss.Claims("client-1@clients")),
		admin:    iss.Sign(t, admin),
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
	body, _ := io.ReadAll(resp.Body)
	res := result{
		Status:    resp.StatusCode,
		Reason:    resp.Header.Get("X-Jwt-Authz-Reason"),
		Challenge: resp.Header.Get("Www-Authenticate"),
		Sub:       resp.Header.Get("X-Jwt-Sub"),
		Remove:    resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"),
	}
	if len(body) > 0 && resp.Header.Get("Content-Type") == "application/json" {
		var b struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatalf("deny body %q: %v", body, err)
		}
		if b.Reason != res.Reason {
			t.Errorf("body reason %q, header reason %q", b.Reason, res.Reason)
		}
		res.BodyError = b.Error
	}
	return res, resp
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

const realm = `Bearer realm="jwt-authz"`

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
			want: result{Status: 401, Reason: "missing_token", Challenge: realm, BodyError: "unauthorized"},
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
			want: result{Status: 401, Reason: "missing_token", Challenge: realm, BodyError: "unauthorized"},
		},
		{
			name: "forwarded headers ignored unless trusted", target: "/authz/json",
			hdr:  http.Header{"X-Original-Uri": {"/healthz"}, "X-Forwarded-Uri": {"/healthz"}},
			want: result{Status: 401, Reason: "missing_token", Challenge: realm, BodyError: "unauthorized"},
		},
		{
			name: "outside the prefix", target: "/authzfoo",
			want: result{Status: 404},
		},
	}
	runCases(t, f.direct, tests)
}

// TestForwardedHeaders: nginx (X-Original-*), Traefik and Caddy
// (X-Forwarded-*), trusted.
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
	missing := result{Status: 401, Reason: "missing_token", Challenge: realm, BodyError: "unauthorized"}
	tests := []testCase{
		{
			name: "nginx: original URI", target: "/authz", hdr: h("X-Original-Uri", "/healthz?probe=1", "X-Original-Method", "GET"),
			want: result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"},
		},
		{
			name: "nginx: original method", target: "/authz", hdr: h("X-Original-Uri", "/healthz", "X-Original-Method", "DELETE"),
			want: missing,
		},
		{
			name: "traefik: forwarded method and URI", method: "GET", target: "/authz/",
			hdr: h("X-Forwarded-Method", "PUT", "X-Forwarded-Uri", "/admin/x", "X-Forwarded-Proto", "https",
				"X-Forwarded-Host", "api.example.com", "Authorization", "Bearer "+f.good),
			want: result{Status: 403, Reason: "insufficient_scope", BodyError: "insufficient_scope",
				Challenge: realm + `, error="insufficient_scope", scope="admin:write"`},
		},
		{
			name: "caddy: forwarded URI with a token", target: "/authz", hdr: h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/json", "Authorization", "Bearer "+f.good),
			want: result{Status: 200, Reason: "ok", Sub: "client-1@clients", Remove: "x-jwt-permissions"},
		},
		{
			name: "X-Original-* wins over X-Forwarded-*", target: "/authz", hdr: h("X-Original-Uri", "/healthz", "X-Forwarded-Uri", "/json"),
			want: result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"},
		},
		{
			name: "forwarded host selects a host rule", target: "/authz", hdr: h("X-Forwarded-Uri", "/internal/x", "X-Forwarded-Host", "internal.example.com:443, proxy.local"),
			want: result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"},
		},
		{
			name: "absolute URI carries the host", target: "/authz", hdr: h("X-Forwarded-Uri", "https://internal.example.com/internal/x"),
			want: result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"},
		},
		{
			name: "without the host the host rule does not match", target: "/authz", hdr: h("X-Forwarded-Uri", "/internal/x"),
			want: missing,
		},
		{
			name: "dot segments in the forwarded URI", target: "/authz", hdr: h("X-Original-Uri", "/healthz/../admin"),
			want: missing,
		},
		{
			name: "no forwarded headers: the subrequest's own path", target: "/authz/healthz",
			want: result{Status: 200, Reason: "anonymous", Remove: "x-jwt-sub,x-jwt-scope,x-jwt-permissions"},
		},
		{
			name: "repeated forwarded URI is refused", target: "/authz", hdr: h("X-Forwarded-Uri", "/healthz", "X-Forwarded-Uri", "/admin"),
			want: result{Status: 401, Reason: "malformed_token", BodyError: "invalid_token",
				Challenge: realm + `, error="invalid_token", error_description="repeated x-forwarded-uri header"`},
		},
	}
	runCases(t, f.trusting, tests)
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
