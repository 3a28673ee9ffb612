package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is a SHA-1 thumbprint
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const testAudience = DemoAudience

// keyPool holds RSA keys generated once for the whole test binary: 2048-bit
// generation is slow under -race, and kids only need to be distinct within
// one Issuer.
var keyPool = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 6)
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

// poolKeys returns a GenerateKey that hands out the pool's keys in order.
func poolKeys(t *testing.T) func() (*rsa.PrivateKey, error) {
	t.Helper()
	var mu sync.Mutex
	next := 0
	return func() (*rsa.PrivateKey, error) {
		mu.Lock()
		defer mu.Unlock()
		pool := keyPool()
		if next == len(pool) {
			t.Errorf("key pool exhausted")
			return nil, io.ErrUnexpectedEOF
		}
		next++
		return pool[next-1], nil
	}
}

// testServer starts an Issuer on 127.0.0.1 whose issuer URL is its own address.
type testServer struct {
	*Issuer
	URL string
}

func newTestServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.ServeHTTP(w, r)
	}))
	srv.Start()
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	if opts.Issuer == "" {
		opts.Issuer = srv.URL + "/"
	}
	if opts.GenerateKey == nil {
		opts.GenerateKey = poolKeys(t)
	}
	iss, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.Issuer = iss
	return ts
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func get(t *testing.T, url string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func post(t *testing.T, url, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

// params is a token request; encoding picks form or JSON.
type params map[string]string

func (p params) form() string {
	v := url.Values{}
	for k, s := range p {
		v.Set(k, s)
	}
	return v.Encode()
}

func (p params) json(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var encodings = []struct {
	name        string
	contentType string
	encode      func(*testing.T, params) string
}{
	{name: "form", contentType: "application/x-www-form-urlencoded", encode: func(_ *testing.T, p params) string { return p.form() }},
	{name: "json", contentType: "application/json; charset=utf-8", encode: func(t *testing.T, p params) string { return p.json(t) }},
}

func demoParams(clientID, secret string) params {
	return params{"grant_type": "client_credentials", "client_id": clientID, "client_secret": secret, "audience": testAudience}
}

func with(p params, k, v string) params {
	q := params{}
	for a, b := range p {
		q[a] = b
	}
	if v == "" {
		delete(q, k)
	} else {
		q[k] = v
	}
	return q
}

func (ts *testServer) token(t *testing.T, p params) tokenResponse {
	t.Helper()
	resp := post(t, ts.URL+"/oauth/token", "application/x-www-form-urlencoded", p.form())
	if resp.status != http.StatusOK {
		t.Fatalf("token: status %d, body %s", resp.status, resp.body)
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.body, &tr); err != nil {
		t.Fatalf("token: %v", err)
	}
	return tr
}

func (ts *testServer) jwks(t *testing.T) jwk.Set {
	t.Helper()
	resp := get(t, ts.URL+"/.well-known/jwks.json")
	if resp.status != http.StatusOK {
		t.Fatalf("jwks: status %d", resp.status)
	}
	set, err := jwk.Parse(resp.body)
	if err != nil {
		t.Fatalf("jwk.Parse: %v", err)
	}
	return set
}

func kids(set jwk.Set) []string {
	var out []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	return out
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	good := demoParams("demo-m2m", "demo-m2m-secret")
	tests := []struct {
		name   string
		params params
		status int
		want   oauthError
	}{
		{name: "missing grant_type", params: with(good, "grant_type", ""), status: 400,
			want: oauthError{"invalid_request", "Missing required parameter: grant_type"}},
		{name: "password grant", params: with(good, "grant_type", "password"), status: 400,
			want: oauthError{"unsupported_grant_type", "Unsupported grant type: password"}},
		{name: "missing client_id", params: with(good, "client_id", ""), status: 400,
			want: oauthError{"invalid_request", "Missing required parameter: client_id"}},
		{name: "missing client_secret", params: with(good, "client_secret", ""), status: 400,
			want: oauthError{"invalid_request", "Missing required parameter: client_secret"}},
		{name: "missing audience", params: with(good, "audience", ""), status: 400,
			want: oauthError{"invalid_request", "Missing required parameter: audience"}},
		{name: "wrong secret", params: with(good, "client_secret", "nope"), status: 401,
			want: oauthError{"access_denied", "Unauthorized"}},
		{name: "unknown client", params: with(good, "client_id", "ghost"), status: 401,
			want: oauthError{"access_denied", "Unauthorized"}},
		{name: "secret of another client", params: with(good, "client_secret", "demo-admin-secret"), status: 401,
			want: oauthError{"access_denied", "Unauthorized"}},
		{name: "audience not granted", params: with(good, "audience", "https://other.example/api"), status: 403,
			want: oauthError{"access_denied", `Client is not authorized to access "https://other.example/api". You need to create a "client-grant" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants`}},
		{name: "scope not granted", params: with(good, "scope", "read:target admin:write"), status: 403,
			want: oauthError{"access_denied", "Client has not been granted scopes: admin:write"}},
	}
	for _, enc := range encodings {
		for _, tt := range tests {
			t.Run(enc.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				resp := post(t, ts.URL+"/oauth/token", enc.contentType, enc.encode(t, tt.params))
				checkTokenError(t, resp, tt.status, tt.want)
			})
		}
	}
}

func TestTokenBadBodies(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	tests := []struct {
		name        string
		contentType string
		body        string
		want        oauthError
	}{
		{name: "broken json", contentType: "application/json", body: `{"grant_type":`,
			want: oauthError{"invalid_request", "Invalid JSON body"}},
		{name: "json number", contentType: "application/json", body: `{"grant_type":"client_credentials","client_id":7}`,
			want: oauthError{"invalid_request", "Invalid parameter: client_id must be a string"}},
		{name: "no content type", contentType: "", body: good(),
			want: oauthError{"invalid_request", "Missing required parameter: grant_type"}},
		{name: "too large", contentType: "application/x-www-form-urlencoded", body: "x=" + strings.Repeat("a", maxTokenRequestBytes),
			want: oauthError{"invalid_request", "Invalid form body"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := post(t, ts.URL+"/oauth/token", tt.contentType, tt.body)
			checkTokenError(t, resp, http.StatusBadRequest, tt.want)
		})
	}
}

// checkTokenError checks an error answer of /oauth/token: status, headers and
// the RFC 6749 §5.2 body.
func checkTokenError(t *testing.T, resp response, status int, want oauthError) {
	t.Helper()
	if resp.status != status {
		t.Errorf("status = %d, want %d (body %s)", resp.status, status, resp.body)
	}
	checkJSONHeaders(t, resp, "no-store")
	var got oauthError
	if err := json.Unmarshal(resp.body, &got); err != nil {
		t.Fatalf("body %s: %v", resp.body, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func good() string { return demoParams("demo-m2m", "demo-m2m-secret").form() }

func TestTokenMethodNotAllowed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+"/oauth/token", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp := do(t, req)
			if resp.status != http.StatusMethodNotAllowed {
				t.Errorf("status = %d, want 405", resp.status)
			}
			if got := resp.header.Get("Allow"); got != "POST" {
				t.Errorf("Allow = %q, want POST", got)
			}
		})
	}
}

func checkJSONHeaders(t *testing.T, resp response, cacheControl string) {
	t.Helper()
	if got := resp.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
	if got := resp.header.Get("Cache-Control"); got != cacheControl {
		t.Errorf("Cache-Control = %q, want %q", got, cacheControl)
	}
}

func TestTokenSuccess(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{TokenTTL: time.Hour})
	tests := []struct {
		name   string
		params params
		basic  [2]string // client_secret_basic user and password, as sent
		want   tokenResponse
	}{
		{name: "all granted scopes", params: demoParams("demo-m2m", "demo-m2m-secret"),
			want: tokenResponse{TokenType: "Bearer", ExpiresIn: 3600, Scope: "read:target write:target"}},
		{name: "narrowed scope", params: with(demoParams("demo-m2m", "demo-m2m-secret"), "scope", "write:target"),
			want: tokenResponse{TokenType: "Bearer", ExpiresIn: 3600, Scope: "write:target"}},
		{name: "client_secret_basic", params: with(with(demoParams("demo-readonly", ""), "client_id", ""), "client_secret", ""),
			basic: [2]string{"demo-readonly", "demo-readonly-secret"},
			want:  tokenResponse{TokenType: "Bearer", ExpiresIn: 3600, Scope: "read:target"}},
		// RFC 6749 §2.3.1: the client form-urlencodes both before Basic
		// encoding (oauth4webapi sends "-" as %2D), the server decodes.
		{name: "client_secret_basic form-urlencoded", params: with(with(demoParams("demo-readonly", ""), "client_id", ""), "client_secret", ""),
			basic: [2]string{"demo%2Dreadonly", "demo%2Dreadonly%2Dsecret"},
			want:  tokenResponse{TokenType: "Bearer", ExpiresIn: 3600, Scope: "read:target"}},
	}
	for _, enc := range encodings {
		for _, tt := range tests {
			t.Run(enc.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/oauth/token",
					strings.NewReader(enc.encode(t, tt.params)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", enc.contentType)
				if tt.basic[0] != "" {
					req.SetBasicAuth(tt.basic[0], tt.basic[1])
				}
				resp := do(t, req)
				if resp.status != http.StatusOK {
					t.Fatalf("status = %d, body %s", resp.status, resp.body)
				}
				checkJSONHeaders(t, resp, "no-store")
				var got tokenResponse
				if err := json.Unmarshal(resp.body, &got); err != nil {
					t.Fatal(err)
				}
				if got.AccessToken == "" {
					t.Error("access_token is empty")
				}
				if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(tokenResponse{}, "AccessToken")); diff != "" {
					t.Errorf("response (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestTokenClaims(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	tests := []struct {
		name       string
		profile    Profile
		params     params
		wantHeader map[string]any
		wantClaims map[string]any
	}{
		{
			name: "auth0 profile", profile: ProfileAuth0, params: demoParams("demo-m2m", "demo-m2m-secret"),
			wantHeader: map[string]any{"alg": "RS256", "typ": "JWT"},
			wantClaims: map[string]any{
				"sub": "demo-m2m@clients", "aud": testAudience, "azp": "demo-m2m",
				"scope": "read:target write:target", "gty": "client-credentials",
			},
		},
		{
			name: "auth0 profile with permissions", profile: ProfileAuth0, params: demoParams("demo-admin", "demo-admin-secret"),
			wantHeader: map[string]any{"alg": "RS256", "typ": "JWT"},
			wantClaims: map[string]any{
				"sub": "demo-admin@clients", "aud": testAudience, "azp": "demo-admin",
				"scope": "read:target admin:write", "gty": "client-credentials",
				"permissions": []any{"read:target", "admin:write"},
			},
		},
		{
			name: "auth0 profile narrowed permissions", profile: ProfileAuth0,
			params:     with(demoParams("demo-admin", "demo-admin-secret"), "scope", "admin:write"),
			wantHeader: map[string]any{"alg": "RS256", "typ": "JWT"},
			wantClaims: map[string]any{
				"sub": "demo-admin@clients", "aud": testAudience, "azp": "demo-admin",
				"scope": "admin:write", "gty": "client-credentials", "permissions": []any{"admin:write"},
			},
		},
		{
			name: "rfc9068 profile", profile: ProfileRFC9068, params: demoParams("demo-readonly", "demo-readonly-secret"),
			wantHeader: map[string]any{"alg": "RS256", "typ": "at+jwt"},
			wantClaims: map[string]any{
				"sub": "demo-readonly@clients", "aud": testAudience, "client_id": "demo-readonly",
				"scope": "read:target", "gty": "client-credentials",
			},
		},
		{
			name: "rfc9068 profile with permissions", profile: ProfileRFC9068, params: demoParams("demo-admin", "demo-admin-secret"),
			wantHeader: map[string]any{"alg": "RS256", "typ": "at+jwt"},
			wantClaims: map[string]any{
				"sub": "demo-admin@clients", "aud": testAudience, "client_id": "demo-admin",
				"scope": "read:target admin:write", "gty": "client-credentials",
				"permissions": []any{"read:target", "admin:write"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, Options{Profile: tt.profile, TokenTTL: 2 * time.Hour, Now: func() time.Time { return now }})
			raw := ts.token(t, tt.params).AccessToken

			// The signature must verify with the JWKS the server publishes.
			set := ts.jwks(t)
			tok, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithValidate(true),
				jwt.WithIssuer(ts.URL+"/"), jwt.WithAudience(testAudience))
			if err != nil {
				t.Fatalf("jwt.Parse: %v", err)
			}
			if got, want := tok.Expiration().Sub(tok.IssuedAt()), 2*time.Hour; got != want {
				t.Errorf("exp - iat = %v, want %v", got, want)
			}

			msg, err := jws.Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			hdrJSON, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
			if err != nil {
				t.Fatal(err)
			}
			var hdr map[string]any
			if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
				t.Fatal(err)
			}
			if hdr["kid"] != ts.Keys().Current {
				t.Errorf("kid = %v, want the current key %q", hdr["kid"], ts.Keys().Current)
			}
			delete(hdr, "kid")
			if diff := cmp.Diff(tt.wantHeader, hdr); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}

			var claims map[string]any
			if err := json.Unmarshal(msg.Payload(), &claims); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"iss": ts.URL + "/",
				"iat": float64(now.Unix()),
				"exp": float64(now.Add(2 * time.Hour).Unix()),
			}
			for k, v := range tt.wantClaims {
				want[k] = v
			}
			if tt.profile == ProfileRFC9068 {
				if jti, _ := claims["jti"].(string); len(jti) < 16 {
					t.Errorf("jti = %v, want a random string", claims["jti"])
				}
				delete(claims, "jti")
			}
			if diff := cmp.Diff(want, claims); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJTIUnique(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{Profile: ProfileRFC9068})
	seen := map[string]bool{}
	for range 5 {
		raw := ts.token(t, demoParams("demo-m2m", "demo-m2m-secret")).AccessToken
		tok, err := jwt.ParseInsecure([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok.JwtID()] {
			t.Fatalf("jti %q issued twice", tok.JwtID())
		}
		seen[tok.JwtID()] = true
	}
}

func verify(t *testing.T, ts *testServer, raw string) error {
	t.Helper()
	_, err := jwt.Parse([]byte(raw), jwt.WithKeySet(ts.jwks(t)), jwt.WithValidate(true))
	return err
}

func tokenKid(t *testing.T, raw string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}

func adminPost(t *testing.T, ts *testServer, path string) (response, KeyState) {
	t.Helper()
	resp := post(t, ts.URL+path, "", "")
	var state KeyState
	if resp.status == http.StatusOK {
		if err := json.Unmarshal(resp.body, &state); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return resp, state
}

func TestRotation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	p := demoParams("demo-m2m", "demo-m2m-secret")
	before := ts.Keys()
	if got, want := kids(ts.jwks(t)), []string{before.Current, before.Next}; !cmp.Equal(got, want) {
		t.Fatalf("JWKS kids = %v, want current and next %v", got, want)
	}
	oldToken := ts.token(t, p).AccessToken
	if got := tokenKid(t, oldToken); got != before.Current {
		t.Fatalf("kid = %q, want %q", got, before.Current)
	}

	resp, after := adminPost(t, ts, "/admin/rotate")
	if resp.status != http.StatusOK {
		t.Fatalf("rotate: status %d, body %s", resp.status, resp.body)
	}
	if after.Current != before.Next || after.Next == before.Current || after.Next == before.Next {
		t.Fatalf("after rotation %+v, before %+v: want the next key to sign and a fresh next key", after, before)
	}
	wantPublished := []string{after.Current, after.Next, before.Current}
	if diff := cmp.Diff(wantPublished, after.Published); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantPublished, kids(ts.jwks(t))); diff != "" {
		t.Errorf("JWKS kids (-want +got):\n%s", diff)
	}
	newToken := ts.token(t, p).AccessToken
	if got := tokenKid(t, newToken); got != after.Current {
		t.Errorf("new token kid = %q, want %q", got, after.Current)
	}
	for name, raw := range map[string]string{"old": oldToken, "new": newToken} {
		if err := verify(t, ts, raw); err != nil {
			t.Errorf("%s token does not verify after rotation: %v", name, err)
		}
	}

	tests := []struct {
		name   string
		kid    string
		status int
		errStr string
	}{
		{name: "current key", kid: after.Current, status: http.StatusConflict, errStr: "conflict"},
		{name: "next key", kid: after.Next, status: http.StatusConflict, errStr: "conflict"},
		{name: "unknown kid", kid: "no-such-kid", status: http.StatusNotFound, errStr: "not_found"},
		{name: "missing kid", kid: "", status: http.StatusBadRequest, errStr: "invalid_request"},
	}
	for _, tt := range tests {
		resp, _ := adminPost(t, ts, "/admin/revoke?kid="+url.QueryEscape(tt.kid))
		if resp.status != tt.status {
			t.Errorf("revoke %s: status %d, want %d", tt.name, resp.status, tt.status)
		}
		var e oauthError
		if err := json.Unmarshal(resp.body, &e); err != nil || e.Error != tt.errStr || e.ErrorDescription == "" {
			t.Errorf("revoke %s: body %s, want error %q with a description", tt.name, resp.body, tt.errStr)
		}
	}

	resp, revoked := adminPost(t, ts, "/admin/revoke?kid="+url.QueryEscape(before.Current))
	if resp.status != http.StatusOK {
		t.Fatalf("revoke old key: status %d, body %s", resp.status, resp.body)
	}
	if diff := cmp.Diff(KeyState{Current: after.Current, Next: after.Next, Published: []string{after.Current, after.Next}}, revoked); diff != "" {
		t.Errorf("state after revoke (-want +got):\n%s", diff)
	}
	if got := kids(ts.jwks(t)); !cmp.Equal(got, []string{after.Current, after.Next}) {
		t.Errorf("JWKS kids after revoke = %v", got)
	}
	if err := verify(t, ts, oldToken); err == nil {
		t.Error("a token of the revoked key still verifies")
	}
	if err := verify(t, ts, newToken); err != nil {
		t.Errorf("new token: %v", err)
	}
	if resp, _ := adminPost(t, ts, "/admin/revoke?kid="+url.QueryEscape(before.Current)); resp.status != http.StatusNotFound {
		t.Errorf("revoking twice: status %d, want 404", resp.status)
	}

	keysResp := get(t, ts.URL+"/admin/keys")
	var state KeyState
	if err := json.Unmarshal(keysResp.body, &state); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(revoked, state); diff != "" {
		t.Errorf("GET /admin/keys (-want +got):\n%s", diff)
	}
}

func TestAdminLoopbackOnly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	tests := []struct {
		name       string
		remoteAddr string
		method     string
		target     string
		header     map[string]string
		want       int
	}{
		{name: "rotate from a LAN address", remoteAddr: "192.0.2.10:40000", method: "POST", target: "/admin/rotate", want: 403},
		{name: "revoke from a LAN address", remoteAddr: "192.0.2.10:40000", method: "POST", target: "/admin/revoke?kid=x", want: 403},
		{name: "keys from a LAN address", remoteAddr: "192.0.2.10:40000", method: "GET", target: "/admin/keys", want: 403},
		{name: "IPv6 non-loopback", remoteAddr: "[2001:db8::1]:40000", method: "GET", target: "/admin/keys", want: 403},
		{name: "spoofed forwarding header", remoteAddr: "192.0.2.10:40000", method: "GET", target: "/admin/keys",
			header: map[string]string{"X-Forwarded-For": "127.0.0.1"}, want: 403},
		{name: "garbage address", remoteAddr: "not-an-address", method: "GET", target: "/admin/keys", want: 403},
		{name: "127.0.0.1", remoteAddr: "127.0.0.1:40000", method: "GET", target: "/admin/keys", want: 200},
		{name: "127.8.9.10", remoteAddr: "127.8.9.10:40000", method: "GET", target: "/admin/keys", want: 200},
		{name: "::1", remoteAddr: "[::1]:40000", method: "GET", target: "/admin/keys", want: 200},
		{name: "IPv4-mapped loopback", remoteAddr: "[::ffff:127.0.0.1]:40000", method: "GET", target: "/admin/keys", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, tt.target, nil)
			req.RemoteAddr = tt.remoteAddr
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			ts.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.want, rec.Body)
			}
			if tt.want == http.StatusForbidden {
				var e oauthError
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != "access_denied" {
					t.Errorf("body = %s, want access_denied", rec.Body)
				}
			}
		})
	}
	if got := ts.Keys(); len(got.Published) != 2 {
		t.Errorf("refused rotations changed the keys: %+v", got)
	}
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		maxAge time.Duration
		want   string
	}{
		{name: "default", want: "public, max-age=300"},
		{name: "flag", maxAge: 42 * time.Second, want: "public, max-age=42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, Options{JWKSMaxAge: tt.maxAge})
			for _, path := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
				resp := get(t, ts.URL+path)
				if resp.status != http.StatusOK {
					t.Fatalf("%s: status %d", path, resp.status)
				}
				checkJSONHeaders(t, resp, tt.want)
			}
		})
	}

	t.Run("key parameters", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, Options{})
		resp := get(t, ts.URL+"/.well-known/jwks.json")
		var doc struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(resp.body, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Keys) != 2 {
			t.Fatalf("%d keys, want current and next", len(doc.Keys))
		}
		for _, k := range doc.Keys {
			var names []string
			for name := range k {
				names = append(names, name)
			}
			if diff := cmp.Diff([]string{"alg", "e", "kid", "kty", "n", "use", "x5c", "x5t"}, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("key members (-want +got):\n%s", diff)
			}
			if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" {
				t.Errorf("key %v: want kty RSA, use sig, alg RS256", k["kid"])
			}
			chain, _ := k["x5c"].([]any)
			if len(chain) != 1 {
				t.Fatalf("x5c = %v, want one certificate", k["x5c"])
			}
			der, err := base64.StdEncoding.DecodeString(chain[0].(string))
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			pub, ok := c.PublicKey.(*rsa.PublicKey)
			if !ok || base64.RawURLEncoding.EncodeToString(pub.N.Bytes()) != k["n"] {
				t.Errorf("x5c certificate does not hold the key's modulus")
			}
			if pub.N.BitLen() != 2048 {
				t.Errorf("modulus has %d bits, want 2048", pub.N.BitLen())
			}
			thumb := sha1.Sum(der) //nolint:gosec // x5t
			if want := base64.RawURLEncoding.EncodeToString(thumb[:]); k["x5t"] != want {
				t.Errorf("x5t = %v, want %s", k["x5t"], want)
			}
			if _, private := k["d"]; private {
				t.Error("JWKS holds a private key")
			}
		}
	})
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{})
	resp := get(t, ts.URL+"/.well-known/openid-configuration")
	var got map[string]any
	if err := json.Unmarshal(resp.body, &got); err != nil {
		t.Fatal(err)
	}
	base := ts.URL + "/"
	want := map[string]any{
		"issuer":                                base,
		"token_endpoint":                        base + "oauth/token",
		"jwks_uri":                              base + ".well-known/jwks.json",
		"grant_types_supported":                 []any{"client_credentials"},
		"response_types_supported":              []any{"token"},
		"subject_types_supported":               []any{"public"},
		"id_token_signing_alg_values_supported": []any{"RS256"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_post", "client_secret_basic"},
		"scopes_supported":                      []any{"admin:write", "read:target", "write:target"},
		"claims_supported":                      []any{"iss", "sub", "aud", "iat", "exp", "scope", "gty", "permissions", "cnf", "azp"},
		"dpop_signing_alg_values_supported":     []any{"ES256", "PS256", "RS256", "EdDSA", "Ed25519"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("discovery (-want +got):\n%s", diff)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.json")
	gen := poolKeys(t)
	opts := Options{Issuer: "http://127.0.0.1:8081/", KeyFile: path, GenerateKey: gen}

	first, err := New(opts)
	if err != nil {
		t.Fatalf("New creating the key file: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key file not created: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	restarted, err := New(opts)
	if err != nil {
		t.Fatalf("New reading the key file: %v", err)
	}
	if diff := cmp.Diff(first.Keys(), restarted.Keys()); diff != "" {
		t.Errorf("kids after restart (-want +got):\n%s", diff)
	}
	rotated, err := restarted.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	again, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rotated, again.Keys()); diff != "" {
		t.Errorf("kids after rotation and restart (-want +got):\n%s", diff)
	}

	// A restarted issuer publishes the same JWKS, certificates included.
	a, b := httptest.NewRecorder(), httptest.NewRecorder()
	restarted.ServeHTTP(a, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	again.ServeHTTP(b, httptest.NewRequest("GET", "/.well-known/jwks.json", nil))
	if a.Body.String() != b.Body.String() {
		t.Error("JWKS differs after restart")
	}

	for name, content := range map[string]string{
		"not json":    "{",
		"no next key": `{"keys":[]}`,
		"bad pem":     `{"keys":[{"role":"current","private_key":"nope"},{"role":"next","private_key":"nope"}]}`,
	} {
		bad := filepath.Join(t.TempDir(), "keys.json")
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{Issuer: "http://127.0.0.1:8081/", KeyFile: bad, GenerateKey: gen}); err == nil {
			t.Errorf("%s: New accepted a corrupt key file", name)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no issuer", opts: Options{}, want: "absolute http(s) URL"},
		{name: "relative issuer", opts: Options{Issuer: "/tenant/"}, want: "absolute http(s) URL"},
		{name: "no trailing slash", opts: Options{Issuer: "http://127.0.0.1:8081"}, want: `must end in "/"`},
		{name: "bad profile", opts: Options{Issuer: "http://127.0.0.1:8081/", Profile: "okta"}, want: `profile "okta"`},
		{name: "negative ttl", opts: Options{Issuer: "http://127.0.0.1:8081/", TokenTTL: -time.Second}, want: "negative"},
		{name: "empty clients", opts: Options{Issuer: "http://127.0.0.1:8081/", Clients: []Client{}}, want: "at least one client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.GenerateKey = poolKeys(t)
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
