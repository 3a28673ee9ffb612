package envoy_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/envoy"
	"github.com/jwtauthz/jwt-authz/internal/logbuf"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// panicKeys is a KeySource with a bug: it panics.
type panicKeys struct{}

func (panicKeys) Key(context.Context, string) (*authz.Key, error) { panic("key source bug") }
func (panicKeys) Keys(context.Context) ([]*authz.Key, error)      { panic("key source bug") }

// serveBufconn serves a over bufconn and returns a client.
func serveBufconn(t *testing.T, a *authz.Authorizer, log *slog.Logger) (authv3.AuthorizationClient, healthgrpc.HealthClient) {
	t.Helper()
	cur := authz.NewCurrent(authz.CurrentOptions{Logger: log})
	cur.Store(a)
	gs := grpc.NewServer()
	envoy.Register(gs, envoy.NewServer(envoy.Options{Authorizer: cur}))
	lis := bufconn.Listen(1 << 20)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn), healthgrpc.NewHealthClient(conn)
}

func TestPanicBecomesInternalError(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	reg := prometheus.NewRegistry()
	m := authz.NewMetrics(reg)
	a, err := authz.New(authz.Options{Metrics: m, Providers: []authz.Provider{{Name: "buggy", Issuer: iss.IssuerURL(), Keys: panicKeys{}}}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	client, health := serveBufconn(t, a, slog.New(slog.NewJSONHandler(logs, nil)))
	tok := iss.Sign(t, iss.Claims("s"))
	resp, err := client.Check(t.Context(), stacktest.Req{Token: tok}.CheckRequest())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	assertDecision(t, resp, want{reason: "internal_error", http: 500, grpc: 13})
	if got := testutil.ToFloat64(m.Checks("deny", "internal_error", "none")); got != 1 {
		t.Errorf("internal_error count = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "check panicked") || strings.Contains(logs.String(), tok) {
		t.Errorf("panic log: %s", logs.String())
	}
	// The server is still up.
	if _, err := client.Check(t.Context(), stacktest.Req{}.CheckRequest()); err != nil {
		t.Errorf("after the panic: %v", err)
	}
	h, err := health.Check(t.Context(), &healthgrpc.HealthCheckRequest{Service: envoy.AuthorizationService})
	if err != nil || h.GetStatus() != healthgrpc.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health before SetServing = %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
}

// TestLogsNeverHoldSecrets runs every kind of decision with the decision
// log at debug and fails if any token, authorization or cookie value
// reaches a log line.
func TestLogsNeverHoldSecrets(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	logs := &logbuf.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := authz.New(authz.Options{Logger: logger, DecisionLevel: slog.LevelDebug,
		Providers: []authz.Provider{{Name: "p", Issuer: iss.IssuerURL(), Keys: staticFrom(t, iss),
			Sources: []authz.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Cookie: "at"}, {Query: "access_token"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := serveBufconn(t, a, logger)
	good := iss.Sign(t, iss.Claims("s"))
	secrets := []string{good, tamper(good), "c2VjcmV0LXBhc3N3b3Jk", "cookie-secret-value"}
	reqs := []stacktest.Req{
		{Token: good}, {Token: tamper(good)}, {Token: good + ".x"},
		{Headers: map[string]string{"authorization": "Basic c2VjcmV0LXBhc3N3b3Jk", "cookie": "sid=cookie-secret-value"}},
		{Path: "/?access_token=" + good},
		{Headers: map[string]string{"cookie": "at=" + good + "; sid=cookie-secret-value"}},
	}
	for _, r := range reqs {
		if _, err := client.Check(t.Context(), r.CheckRequest()); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"check"`) {
		t.Fatal("no decision log lines: the test would prove nothing")
	}
	for _, s := range secrets {
		for _, part := range append([]string{s}, strings.Split(s, ".")...) {
			if len(part) > 8 && strings.Contains(out, part) {
				t.Errorf("a secret reached the log: %.20s…", part)
			}
		}
	}
}

// staticFrom takes the issuer's current public key as a fixed key set.
func staticFrom(t testing.TB, iss *jwkstest.Issuer) authz.KeySource {
	t.Helper()
	return authz.StaticKeys{{ID: iss.KID(), Algorithm: "RS256", Public: iss.Key(iss.KID()).Public()}}
}

// TestHeaderMapAndLimits: Envoy's encode_raw_headers sends header_map with
// raw values; a repeated token header there is malformed, and requests
// over the header limits are denied, not decided.
func TestHeaderMapAndLimits(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	a, err := authz.New(authz.Options{Providers: []authz.Provider{{Name: "p", Issuer: iss.IssuerURL(), Keys: staticFrom(t, iss)}}})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := serveBufconn(t, a, nil)
	tok := iss.Sign(t, iss.Claims("s"))
	raw := func(kv ...string) *authv3.CheckRequest {
		hm := &corev3.HeaderMap{}
		for i := 0; i < len(kv); i += 2 {
			hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
		}
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "h", HeaderMap: hm}}}}
	}
	many := []string{"Authorization", "Bearer " + tok}
	for i := range 250 {
		many = append(many, fmt.Sprintf("x-h-%d", i), "v")
	}
	for _, tc := range []struct {
		name string
		req  *authv3.CheckRequest
		want string
	}{
		{"raw value, mixed-case name", raw("Authorization", "Bearer "+tok, ":path", "/"), "ok"},
		{"repeated authorization", raw("authorization", "Bearer "+tok, "authorization", "Bearer "+tok), "malformed_token"},
		{"too many headers", raw(many...), "headers_too_large"},
		{"headers too large", raw("authorization", "Bearer "+tok, "x-big", strings.Repeat("a", 70<<10)), "headers_too_large"},
	} {
		resp, err := client.Check(t.Context(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != tc.want {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.want)
		}
		if tc.want != "headers_too_large" {
			continue
		}
		// Not a token problem: 431 without a challenge, the gRPC code
		// gRPC itself gives a message over its limit.
		denied := resp.GetDeniedResponse()
		if denied.GetStatus().GetCode() != 431 || resp.GetStatus().GetCode() != int32(codes.ResourceExhausted) {
			t.Errorf("%s: HTTP %d, gRPC %d; want 431, %d", tc.name, denied.GetStatus().GetCode(), resp.GetStatus().GetCode(), codes.ResourceExhausted)
		}
		for _, h := range denied.GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				t.Errorf("%s: challenge %q on a 431", tc.name, h.GetHeader().GetValue())
			}
		}
		if !strings.Contains(denied.GetBody(), `"error":"invalid_request"`) {
			t.Errorf("%s: body %s, want error invalid_request", tc.name, denied.GetBody())
		}
	}
}

func TestRecoverInterceptor(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	intercept := envoy.Recover(slog.New(slog.NewJSONHandler(logs, nil)))
	_, err := intercept(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: "/x.Y/Z"}, func(context.Context, any) (any, error) {
		panic("handler bug")
	})
	if status.Code(err) != codes.Internal {
		t.Errorf("err = %v, want Internal", err)
	}
	if !strings.Contains(logs.String(), "grpc handler panicked") || !strings.Contains(logs.String(), "/x.Y/Z") {
		t.Errorf("log: %s", logs.String())
	}
	resp, err := intercept(t.Context(), "req", &grpc.UnaryServerInfo{}, func(_ context.Context, r any) (any, error) { return r, nil })
	if resp != "req" || err != nil {
		t.Errorf("pass-through: %v %v", resp, err)
	}
}

// TestHeaderLimitsProperty: over drawn requests around both limits (header
// count and header bytes), in both forms Envoy sends and with names in any
// case, a request is headers_too_large (431, RESOURCE_EXHAUSTED, no
// challenge) exactly when it is over a limit, and never when it is not.
func TestHeaderLimitsProperty(t *testing.T) {
	t.Parallel()
	const seed = 20261202
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	iss := jwkstest.New(t, jwkstest.Options{})
	a, err := authz.New(authz.Options{Providers: []authz.Provider{{Name: "p", Issuer: iss.IssuerURL(), Keys: staticFrom(t, iss)}},
		Metrics: authz.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := serveBufconn(t, a, nil)
	const maxHeaders, maxBytes = 200, 64 << 10 // the defaults
	refused := 0
	for i := range 120 {
		n := 150 + r.IntN(101) // 150..250 headers
		// Value sizes that put the total a little under or over maxBytes.
		per := (maxBytes - 2048 + r.IntN(4096)) / n
		size := 0
		names := make([]string, n)
		values := make([]string, n)
		for j := range n {
			name := []byte(fmt.Sprintf("x-h-%d", j))
			for k := range name {
				if r.IntN(2) == 0 && name[k] >= 'a' && name[k] <= 'z' {
					name[k] -= 'a' - 'A'
				}
			}
			names[j], values[j] = string(name), strings.Repeat("v", per)
			size += len(name) + per
		}
		over := n > maxHeaders || size > maxBytes
		asMap := r.IntN(2) == 0
		http := &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "h"}
		if asMap {
			http.Headers = map[string]string{}
			for j := range n {
				http.Headers[names[j]] = values[j]
			}
		} else {
			http.HeaderMap = &corev3.HeaderMap{}
			for j := range n {
				http.HeaderMap.Headers = append(http.HeaderMap.Headers, &corev3.HeaderValue{Key: names[j], RawValue: []byte(values[j])})
			}
		}
		resp, err := client.Check(t.Context(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: http}}})
		if err != nil {
			t.Fatal(err)
		}
		reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
		if (reason == "headers_too_large") != over {
			t.Fatalf("draw %d: %d headers, %d bytes, map form %v: reason %q, over a limit %v", i, n, size, asMap, reason, over)
		}
		if !over {
			continue
		}
		refused++
		denied := resp.GetDeniedResponse()
		if denied.GetStatus().GetCode() != 431 || resp.GetStatus().GetCode() != int32(codes.ResourceExhausted) {
			t.Fatalf("draw %d: HTTP %d, gRPC %d", i, denied.GetStatus().GetCode(), resp.GetStatus().GetCode())
		}
		for _, h := range denied.GetHeaders() {
			if h.GetHeader().GetKey() == "www-authenticate" {
				t.Fatalf("draw %d: challenge on a 431", i)
			}
		}
	}
	if refused == 0 || refused == 120 {
		t.Fatalf("%d of 120 draws over a limit: the draws do not straddle the limits", refused)
	}
	// Every refusal was counted under its own reason.
	if got := testutil.ToFloat64(a.Metrics().Checks("deny", "headers_too_large", "none")); got != float64(refused) {
		t.Errorf("headers_too_large counted %v times, want %d", got, refused)
	}
}
