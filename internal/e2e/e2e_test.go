// Package e2e tests the demo's story end to end, in process: dev-issuer and
// mock-target on httptest servers at 127.0.0.1:0, jwt-authz's Check path
// (config.Parse, a stack.Stack, the envoy adapter on a real gRPC server) from
// examples/local.yaml pointed at that dev-issuer, and a small stand-in for
// Envoy that applies a CheckResponse's header mutations before forwarding
// the request to mock-target's /echo.
//
// TestRunLocal runs scripts/run-local.sh (what `make run` calls) when
// E2E_RUN_LOCAL=1; it needs ports 8080, 8081, 9001 and 9090 free.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/jwtauthz/jwt-authz/internal/devissuer"
	"github.com/jwtauthz/jwt-authz/internal/mocktarget"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// exampleIssuer is the issuer of examples/local.yaml; the tests replace it
// with their own dev-issuer's URL.
const exampleIssuer = "http://127.0.0.1:8081/"

// keyPool holds RSA keys generated once for the test binary: 2048-bit
// generation is slow under -race, and kids need to be distinct only within
// one issuer.
var keyPool = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 5)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	return keys
})

// issuer is a dev-issuer on an httptest server whose issuer URL is its own.
type issuer struct {
	*devissuer.Issuer
	URL string // with the trailing "/"
}

func startIssuer(t *testing.T) *issuer {
	t.Helper()
	iss := &issuer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	next := 0
	d, err := devissuer.New(devissuer.Options{
		Issuer: srv.URL + "/",
		GenerateKey: func() (*rsa.PrivateKey, error) {
			mu.Lock()
			defer mu.Unlock()
			if next == len(keyPool()) {
				return nil, errors.New("e2e: key pool exhausted")
			}
			next++
			return keyPool()[next-1], nil
		},
	})
	if err != nil {
		t.Fatalf("devissuer.New: %v", err)
	}
	iss.Issuer, iss.URL = d, srv.URL+"/"
	return iss
}

func startTarget(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(mocktarget.New(mocktarget.Options{}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// localConfig returns examples/local.yaml pointed at iss, with
// min_refresh_interval set to minRefresh.
func localConfig(t *testing.T, iss *issuer, minRefresh string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "local.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := string(raw)
	for old, repl := range map[string]string{
		`"` + exampleIssuer + `"`:    `"` + iss.URL + `"`,
		`min_refresh_interval: "5s"`: `min_refresh_interval: "` + minRefresh + `"`,
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("examples/local.yaml no longer contains %s", old)
		}
		y = strings.ReplaceAll(y, old, repl)
	}
	return y
}

// tokenReply is dev-issuer's answer: a token, or an OAuth error.
type tokenReply struct {
	status int
	body   string
}

func (r tokenReply) accessToken(t *testing.T) string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("token endpoint: status %d, body %s", r.status, r.body)
	}
	var v struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.AccessToken == "" || v.TokenType != "Bearer" {
		t.Fatalf("token endpoint: body %s (%v)", r.body, err)
	}
	return v.AccessToken
}

// requestToken asks issuerURL's /oauth/token for a token with the
// client-credentials grant, in Auth0's JSON or form syntax.
func requestToken(t *testing.T, issuerURL, encoding string, p map[string]string) tokenReply {
	t.Helper()
	var body, contentType string
	switch encoding {
	case "json":
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		body, contentType = string(b), "application/json"
	case "form":
		v := url.Values{}
		for k, s := range p {
			v.Set(k, s)
		}
		body, contentType = v.Encode(), "application/x-www-form-urlencoded"
	default:
		t.Fatalf("encoding %q", encoding)
	}
	resp, err := http.Post(issuerURL+"oauth/token", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return tokenReply{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
}

func grant(clientID, secret string) map[string]string {
	return map[string]string{
		"client_id":     clientID,
		"client_secret": secret,
		"audience":      devissuer.DemoAudience,
		"grant_type":    "client_credentials",
	}
}

// applyMutations changes the upstream request's headers and query the way
// Envoy's ext_authz filter does with an OK CheckResponse: ok_response.headers
// first (by append_action, or by the deprecated append flag when it is set,
// whose unset value in this message means overwrite), then headers_to_remove,
// then the query parameter changes. Envoy never lets ext_authz remove
// pseudo-headers or host.
func applyMutations(h http.Header, query url.Values, ok *authv3.OkHttpResponse) {
	for _, o := range ok.GetHeaders() {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		if v == "" && len(o.GetHeader().GetRawValue()) > 0 {
			v = string(o.GetHeader().GetRawValue())
		}
		if v == "" && !o.GetKeepEmptyValue() {
			continue
		}
		action := o.GetAppendAction()
		//lint:ignore SA1019 the deprecated append still decides what Envoy does when it is set
		if o.GetAppend() != nil {
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			//lint:ignore SA1019 as above
			if o.GetAppend().GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		_, exists := h[http.CanonicalHeaderKey(k)]
		switch action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h.Add(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h.Set(k, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(k, v)
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h.Set(k, v)
			}
		}
	}
	for _, k := range ok.GetHeadersToRemove() {
		if strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			continue
		}
		h.Del(k)
	}
	for _, q := range ok.GetQueryParametersToSet() {
		query.Set(q.GetKey(), q.GetValue())
	}
	for _, k := range ok.GetQueryParametersToRemove() {
		query.Del(k)
	}
}

// gateway plays Envoy: it asks Check about a request and, when allowed,
// forwards it with the mutations applied to the target's /echo (a route with
// a path rewrite: the query stays), so every allowed request shows what
// reached the target.
type gateway struct {
	stack  *stacktest.Stack
	target string
}

// call returns the CheckResponse and, when allowed, /echo's view of the
// forwarded request.
func (g gateway) call(t *testing.T, r stacktest.Req) (*authv3.CheckResponse, *mocktarget.Echo) {
	t.Helper()
	resp := g.stack.Check(t, r)
	if resp.GetStatus().GetCode() != int32(codes.OK) {
		return resp, nil
	}
	orig, err := url.Parse(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(g.target + "/echo?" + orig.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	// The upstream request starts as the client's request.
	h := http.Header{}
	for k, v := range r.Headers {
		h.Set(k, v)
	}
	if r.Token != "" {
		h.Set("Authorization", "Bearer "+r.Token)
	}
	query := u.Query()
	applyMutations(h, query, resp.GetOkResponse())
	u.RawQuery = query.Encode()
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	got, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	if got.StatusCode != http.StatusOK {
		t.Fatalf("target %s: status %d", u, got.StatusCode)
	}
	var echo mocktarget.Echo
	if err := json.NewDecoder(got.Body).Decode(&echo); err != nil {
		t.Fatalf("target %s: %v", u, err)
	}
	return resp, &echo
}

// httpStatus is the HTTP status Envoy would answer for a CheckResponse.
func httpStatus(resp *authv3.CheckResponse) int {
	if resp.GetStatus().GetCode() == int32(codes.OK) {
		return http.StatusOK
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

func denyReason(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body); err != nil {
		t.Fatalf("denied body %q: %v", resp.GetDeniedResponse().GetBody(), err)
	}
	return body.Reason
}

func flatten(v url.Values) map[string]string {
	out := map[string]string{}
	for k, vs := range v {
		out[k] = strings.Join(vs, ",")
	}
	return out
}

// claimHeaders picks the x-jwt-* headers, and authorization, out of an echo.
func claimHeaders(e *mocktarget.Echo) map[string]string {
	out := map[string]string{}
	for k, v := range e.Headers {
		if strings.HasPrefix(k, "x-jwt-") || k == "authorization" {
			out[k] = v
		}
	}
	return out
}

func TestClaimHeadersReachTheTarget(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	gw := gateway{stack: stacktest.Start(t, localConfig(t, iss, "1s"), stacktest.Options{}), target: startTarget(t)}

	// A client that tries to pass its own identity and permissions upstream.
	spoofed := map[string]string{
		"x-jwt-sub":         "admin@clients",
		"x-jwt-permissions": "admin:write",
		"x-jwt-client-id":   "someone-else",
		"x-request-id":      "req-1",
	}
	tests := []struct {
		name     string
		encoding string
		client   [2]string
		path     string
		want     map[string]string
	}{
		{
			name: "m2m client, JSON grant", encoding: "json", client: [2]string{"demo-m2m", "demo-m2m-secret"}, path: "/echo?a=1",
			want: map[string]string{
				"x-jwt-sub":       "demo-m2m@clients",
				"x-jwt-scope":     "read:target write:target",
				"x-jwt-client-id": "demo-m2m",
				// no permissions claim: the spoofed header is removed
			},
		},
		{
			name: "admin client with RBAC permissions, form grant", encoding: "form", client: [2]string{"demo-admin", "demo-admin-secret"}, path: "/echo",
			want: map[string]string{
				"x-jwt-sub":         "demo-admin@clients",
				"x-jwt-scope":       "read:target admin:write",
				"x-jwt-client-id":   "demo-admin",
				"x-jwt-permissions": "read:target,admin:write",
			},
		},
		{
			name: "admin client on /admin", encoding: "json", client: [2]string{"demo-admin", "demo-admin-secret"}, path: "/admin/keys?x=y",
			want: map[string]string{
				"x-jwt-sub":         "demo-admin@clients",
				"x-jwt-scope":       "read:target admin:write",
				"x-jwt-client-id":   "demo-admin",
				"x-jwt-permissions": "read:target,admin:write",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := requestToken(t, iss.URL, tt.encoding, grant(tt.client[0], tt.client[1])).accessToken(t)
			resp, echo := gw.call(t, stacktest.Req{Method: "GET", Path: tt.path, Token: tok, Headers: spoofed})
			if echo == nil {
				t.Fatalf("denied: HTTP %d, body %s", httpStatus(resp), resp.GetDeniedResponse().GetBody())
			}
			want := map[string]string{"authorization": "Bearer " + tok} // forward_token defaults to true
			for k, v := range tt.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, claimHeaders(echo)); diff != "" {
				t.Errorf("claim headers at /echo (-want +got):\n%s", diff)
			}
			if got := echo.Headers["x-request-id"]; got != "req-1" {
				t.Errorf("x-request-id at /echo = %q, want the client's header untouched", got)
			}
			orig, _ := url.Parse(tt.path)
			if diff := cmp.Diff(flatten(orig.Query()), echo.Args); diff != "" {
				t.Errorf("query at /echo (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("denied requests never reach the target", func(t *testing.T) {
		t.Parallel()
		m2m := requestToken(t, iss.URL, "json", grant("demo-m2m", "demo-m2m-secret")).accessToken(t)
		for _, c := range []struct {
			name   string
			req    stacktest.Req
			status int
			reason string
		}{
			{name: "no token", req: stacktest.Req{Path: "/echo", Headers: spoofed}, status: 401, reason: "missing_token"},
			{name: "m2m on /admin", req: stacktest.Req{Path: "/admin", Token: m2m}, status: 403, reason: "insufficient_scope"},
			{name: "tampered token", req: stacktest.Req{Path: "/echo", Token: m2m[:len(m2m)-4] + "AAAA"}, status: 401, reason: "invalid_signature"},
		} {
			resp, echo := gw.call(t, c.req)
			if echo != nil {
				t.Errorf("%s: allowed and forwarded, want HTTP %d", c.name, c.status)
				continue
			}
			if got := httpStatus(resp); got != c.status {
				t.Errorf("%s: HTTP %d, want %d", c.name, got, c.status)
			}
			if got := denyReason(t, resp); got != c.reason {
				t.Errorf("%s: reason %q, want %q", c.name, got, c.reason)
			}
		}
	})

	t.Run("anonymous route strips spoofed claim headers", func(t *testing.T) {
		t.Parallel()
		resp := gw.stack.Check(t, stacktest.Req{Method: "GET", Path: "/healthz", Headers: spoofed})
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("GET /healthz without a token: HTTP %d, want allowed", httpStatus(resp))
		}
		h := http.Header{}
		for k, v := range spoofed {
			h.Set(k, v)
		}
		applyMutations(h, url.Values{}, resp.GetOkResponse())
		for _, k := range []string{"x-jwt-sub", "x-jwt-permissions", "x-jwt-client-id", "x-jwt-scope"} {
			if v := h.Get(k); v != "" {
				t.Errorf("%s = %q reaches upstream on an anonymous route", k, v)
			}
		}
	})
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	with := func(k, v string) map[string]string {
		p := grant("demo-m2m", "demo-m2m-secret")
		p[k] = v
		return p
	}
	tests := []struct {
		name   string
		params map[string]string
		status int
		body   string
	}{
		{
			name: "bad client secret", params: with("client_secret", "wrong"), status: http.StatusUnauthorized,
			body: `{"error":"access_denied","error_description":"Unauthorized"}`,
		},
		{
			name: "unknown client", params: with("client_id", "nobody"), status: http.StatusUnauthorized,
			body: `{"error":"access_denied","error_description":"Unauthorized"}`,
		},
		{
			name: "wrong audience", params: with("audience", "urn:other:api"), status: http.StatusForbidden,
			body: `{"error":"access_denied","error_description":"Client is not authorized to access \"urn:other:api\". ` +
				`You need to create a \"client-grant\" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"}`,
		},
		{
			name: "wrong grant type", params: with("grant_type", "password"), status: http.StatusBadRequest,
			body: `{"error":"unsupported_grant_type","error_description":"Unsupported grant type: password"}`,
		},
	}
	for _, tt := range tests {
		for _, enc := range []string{"json", "form"} {
			t.Run(tt.name+"/"+enc, func(t *testing.T) {
				t.Parallel()
				got := requestToken(t, iss.URL, enc, tt.params)
				if got.status != tt.status || got.body != tt.body {
					t.Errorf("status %d body %s\nwant   %d body %s", got.status, got.body, tt.status, tt.body)
				}
			})
		}
	}
}

func rotate(t *testing.T, iss *issuer) devissuer.KeyState {
	t.Helper()
	// The httptest server's caller is loopback, as the admin endpoints require.
	resp, err := http.Post(iss.URL+"admin/rotate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st devissuer.KeyState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("rotate: status %d, %v", resp.StatusCode, err)
	}
	return st
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	head, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

func refetches(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() == "jwt_authz_jwks_unknown_kid_refetches_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func expectAllowed(t *testing.T, stack *stacktest.Stack, what, tok string) {
	t.Helper()
	resp := stack.Check(t, stacktest.Req{Path: "/echo", Token: tok})
	if resp.GetStatus().GetCode() != int32(codes.OK) {
		t.Errorf("%s (kid %s): HTTP %d, body %s; want allowed", what, kidOf(t, tok), httpStatus(resp), resp.GetDeniedResponse().GetBody())
	}
}

// TestRotation is the story on the real clock: a rotation at
// dev-issuer followed at once by a token with the new kid is allowed. The
// new kid is usually known already (dev-issuer publishes the next key in
// advance); when it is not, the unknown-kid refetch finds it, unless the
// last fetch is younger than min_refresh_interval. Either way it must pass.
func TestRotation(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	stack := stacktest.Start(t, localConfig(t, iss, "1s"), stacktest.Options{})
	p := grant("demo-m2m", "demo-m2m-secret")
	oldTok := requestToken(t, iss.URL, "json", p).accessToken(t)
	expectAllowed(t, stack, "token before rotation", oldTok)

	st := rotate(t, iss)
	newTok := requestToken(t, iss.URL, "form", p).accessToken(t)
	if got := kidOf(t, newTok); got != st.Current || got == kidOf(t, oldTok) {
		t.Fatalf("token after rotation has kid %q, want the new current %q", got, st.Current)
	}
	expectAllowed(t, stack, "token right after rotation", newTok)
	expectAllowed(t, stack, "token from before the rotation", oldTok)
}

// TestRotationUnknownKid rotates twice, so that the signing kid was never
// published while jwt-authz fetched: only the unknown-kid refetch can find
// it. Key refresh runs on a fake clock, so min_refresh_interval is decided
// by the test, not by how fast the machine is.
func TestRotationUnknownKid(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t)
	clock := jwkstest.NewClock(time.Time{})
	stack := stacktest.Start(t, localConfig(t, iss, "1s"), stacktest.Options{Clock: clock})
	p := grant("demo-m2m", "demo-m2m-secret")
	first := requestToken(t, iss.URL, "json", p).accessToken(t)
	expectAllowed(t, stack, "first token", first)

	rotate(t, iss)
	second := requestToken(t, iss.URL, "json", p).accessToken(t)
	expectAllowed(t, stack, "token of the key published in advance", second)
	if n := refetches(t, stack.Registry); n != 0 {
		t.Errorf("unknown-kid refetches = %v after the first rotation, want 0: the next key was published in advance", n)
	}

	st := rotate(t, iss)
	third := requestToken(t, iss.URL, "json", p).accessToken(t)
	if kidOf(t, third) != st.Current {
		t.Fatalf("third token kid %q, want %q", kidOf(t, third), st.Current)
	}
	// The last fetch started "now" on the fake clock: within
	// min_refresh_interval a new kid is not fetched for.
	resp := stack.Check(t, stacktest.Req{Path: "/echo", Token: third})
	if got := denyReason(t, resp); httpStatus(resp) != 401 || got != "unknown_key" {
		t.Errorf("unseen kid within min_refresh_interval: HTTP %d reason %q, want 401 unknown_key", httpStatus(resp), got)
	}
	clock.Advance(2 * time.Second)
	expectAllowed(t, stack, "unseen kid after min_refresh_interval", third)
	if n := refetches(t, stack.Registry); n != 1 {
		t.Errorf("unknown-kid refetches = %v, want 1", n)
	}
	expectAllowed(t, stack, "first token after two rotations", first)
	expectAllowed(t, stack, "second token after two rotations", second)
}

// TestRunLocal runs scripts/run-local.sh, what `make run` calls, with the
// real binaries and ports. Set E2E_RUN_LOCAL=1 to run it; ports 8080, 8081,
// 9001 and 9090 must be free.
func TestRunLocal(t *testing.T) {
	if os.Getenv("E2E_RUN_LOCAL") != "1" {
		t.Skip("set E2E_RUN_LOCAL=1 to run scripts/run-local.sh (needs ports 8080, 8081, 9001, 9090)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ports := []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:9001", "127.0.0.1:9090"}
	nginx := nginxPath()
	if nginx != "" {
		ports = append(ports, "127.0.0.1:8082") // nginx in front of mock-target
	}
	portsFree := func(t *testing.T) {
		t.Helper()
		for _, a := range ports {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections", a)
			}
		}
	}
	// Something else on the machine holding a demo port is not a defect
	// of the script: say so and skip rather than fail.
	for _, a := range ports {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Skipf("%s is in use by another program; make run needs it", a)
		}
	}

	t.Run("exit when ready, without nginx", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "run-local.sh"))
		cmd.Env = append(os.Environ(), "RUN_LOCAL_EXIT_WHEN_READY=1", "RUN_LOCAL_NO_NGINX=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("run-local.sh: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		for _, want := range []string{
			`TOKEN=$(curl -s --request POST --url http://127.0.0.1:8081/oauth/token`,
			`bin/jwt-authz check -addr 127.0.0.1:9001 -token "$TOKEN" -path /echo`,
			`bin/jwt-authz check -addr 127.0.0.1:9001 -token "$TOKEN" -path /admin`,
			`bin/jwt-authz check -addr 127.0.0.1:9001 -path /echo`,
			`curl -X POST http://127.0.0.1:8081/admin/rotate`,
			`DPOP_TOKEN=$(curl -s --request POST --url http://127.0.0.1:8081/oauth/token --header "DPoP: $(bin/jwt-authz dpop-proof -key .run/dpop.key -url http://127.0.0.1:8081/oauth/token)"`,
			`bin/jwt-authz check -addr 127.0.0.1:9001 -token "$DPOP_TOKEN" -dpop-key .run/dpop.key -path /echo`,
			`bin/jwt-authz check -addr 127.0.0.1:9001 -token "$DPOP_TOKEN" -path /echo`,
			`bin/jwt-authz check -addr 127.0.0.1:9001 -token "$DPOP_TOKEN" -dpop-key .run/thief.key -path /echo`,
			"sudo apt-get install nginx-light",
		} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, stdout.String())
			}
		}
		// Progress while building, and only the three programs it runs.
		for _, want := range []string{
			"run-local: building bin/jwt-authz (1/3)...\n", "run-local: building bin/dev-issuer (2/3)...\n",
			"run-local: building bin/mock-target (3/3)...\n",
		} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
		}
		if strings.Contains(stderr.String(), "started nginx") || strings.Contains(stderr.String(), "(4/") {
			t.Errorf("RUN_LOCAL_NO_NGINX=1 but:\n%s", stderr.String())
		}
		portsFree(t)
	})

	t.Run("printed commands work, SIGINT stops everything", func(t *testing.T) {
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "run-local.sh"))
		cmd.Env = append(os.Environ(), "RUN_LOCAL_EXIT_WHEN_READY=")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			exited <- cmd.Wait()
		}()
		stopped := false
		t.Cleanup(func() {
			if stopped {
				return
			}
			// The script's trap stops the three programs on SIGTERM.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
			}
		})

		var commands, dpop, viaNginx []string
		deadline := time.After(5 * time.Minute)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("run-local.sh ended before it was ready:\n%s", stderr.String())
				}
				switch {
				case strings.Contains(l, "DPOP_TOKEN"):
					dpop = append(dpop, l)
				case strings.HasPrefix(l, "TOKEN=") || strings.HasPrefix(l, "bin/jwt-authz check"):
					commands = append(commands, l)
				}
				if strings.HasPrefix(l, "curl -s") && strings.Contains(l, "127.0.0.1:8082") {
					viaNginx = append(viaNginx, l)
				}
				if strings.HasPrefix(l, "Press Ctrl-C") {
					break read
				}
			case <-deadline:
				t.Fatalf("run-local.sh not ready in time:\n%s", stderr.String())
			}
		}
		if _, err := exec.LookPath("curl"); err != nil {
			t.Log("curl missing: not running the printed commands")
		} else if len(commands) != 4 {
			t.Errorf("printed commands = %q, want the token line and three checks", commands)
		} else {
			for i, want := range []int{0, 1, 1} {
				code, outb := runPrinted(t, root, commands[0], commands[i+1])
				if code != want {
					t.Errorf("%s: exit %d, want %d\n%s", commands[i+1], code, want, outb)
				}
			}
			if nginx != "" {
				checkViaNginx(t, root, commands[0], viaNginx)
			}
			t.Run("a stolen DPoP token is refused without its key", func(t *testing.T) {
				checkDPoPWalkthrough(t, root, dpop)
			})
		}

		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Errorf("run-local.sh after SIGINT: %v, want exit 0\n%s", err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("run-local.sh still running 60s after SIGINT:\n%s", stderr.String())
		}
		portsFree(t)
	})
}

// checkDPoPWalkthrough runs the walkthrough's DPoP steps: a DPoP-bound token
// from dev-issuer (token request with a proof from jwt-authz dpop-proof),
// allowed with a fresh proof from its key; stolen, refused 401 without a
// proof (missing_proof) and with another key (sender_mismatch).
func checkDPoPWalkthrough(t *testing.T, root string, printed []string) {
	t.Helper()
	if len(printed) != 4 || !strings.HasPrefix(printed[0], "DPOP_TOKEN=") {
		t.Fatalf("printed DPoP commands = %q, want the token line and three checks", printed)
	}
	// dev-issuer checked the token request's proof and bound the token.
	c := exec.Command("bash", "-c", "set -e; "+printed[0]+"\nprintf %s \"$DPOP_TOKEN\"")
	c.Dir = root
	tok, err := c.Output()
	if err != nil || strings.Count(string(tok), ".") != 2 {
		t.Fatalf("%s: %v\n%s", printed[0], err, tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(string(tok), ".")[1])
	if err != nil || !strings.Contains(string(payload), `"cnf":{"jkt":"`) {
		t.Fatalf("the walkthrough's token is not DPoP-bound: %s (%v)", payload, err)
	}
	for i, want := range []struct {
		code   int
		reason string
	}{{0, "reason: "}, {1, "reason: missing_proof\nstatus: 401\n"}, {1, "reason: sender_mismatch\nstatus: 401\n"}} {
		code, out := runPrinted(t, root, printed[0], printed[i+1])
		if code != want.code || !strings.Contains(string(out), want.reason) {
			t.Errorf("%s: exit %d, want %d and %q\n%s", printed[i+1], code, want.code, want.reason, out)
		}
		if i == 0 && !strings.Contains(string(out), "cnf_method: dpop\n") {
			t.Errorf("%s: allowed without cnf_method: dpop\n%s", printed[i+1], out)
		}
	}
}

// runPrinted runs a printed command after the printed line that sets its
// token, in root, and returns its exit code and output.
func runPrinted(t *testing.T, root, tokenLine, command string) (int, []byte) {
	t.Helper()
	c := exec.Command("bash", "-c", "set -e; "+tokenLine+"\n"+command)
	c.Dir = root
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out
	case err != nil:
		t.Fatal(err)
	}
	return 0, out
}

// nginxPath is where run-local.sh finds nginx, or "".
func nginxPath() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return ""
}

// checkViaNginx runs the walkthrough's request through nginx: it reaches
// mock-target, whose /echo shows the claim headers jwt-authz gave nginx
// (the client's own x-jwt-sub replaced); without a token nginx answers
// 401 with the challenge and the reason.
func checkViaNginx(t *testing.T, root, tokenLine string, printed []string) {
	t.Helper()
	if len(printed) != 2 {
		t.Fatalf("printed nginx commands = %q, want two curls through 127.0.0.1:8082", printed)
	}
	c := exec.Command("bash", "-c", "set -e; "+tokenLine+"\n"+printed[0])
	c.Dir = root
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", printed[0], err, out)
	}
	var echo struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(out, &echo); err != nil {
		t.Fatalf("through nginx: %v\n%s", err, out)
	}
	for k, want := range map[string]string{
		"x-jwt-sub":       "demo-m2m@clients",
		"x-jwt-client-id": "demo-m2m",
		"x-jwt-scope":     "read:target write:target",
	} {
		if got := echo.Headers[k]; got != want {
			t.Errorf("mock-target behind nginx saw %s = %q, want %q (headers %v)", k, got, want, echo.Headers)
		}
	}
	out, err = exec.Command("bash", "-c", printed[1]).Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", printed[1], err, out)
	}
	head := strings.ToLower(strings.ReplaceAll(string(out), "\r\n", "\n"))
	for _, want := range []string{"http/1.1 401 ", "\nwww-authenticate: bearer realm=\"jwt-authz-local\"\n", "\nx-jwt-authz-reason: missing_token\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("%s lacks %q:\n%s", printed[1], want, head)
		}
	}
}
