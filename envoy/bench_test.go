package envoy_test

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/envoy"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// BenchmarkServerCheckHot is the adapter's share of a cache hit: the
// CheckRequest translated, decided, and the CheckResponse marshalled as
// gRPC would, beside BenchmarkMarshalOnly (what the empty floor server
// pays to marshal its fixed answer is nothing; this shows ours).
func BenchmarkServerCheckHot(b *testing.B) {
	iss := jwkstest.New(b, jwkstest.Options{})
	a, err := authz.New(authz.Options{TokenCacheEntries: 100, Metrics: authz.NewMetrics(nil),
		Logger: slog.New(slog.DiscardHandler), DecisionLevel: slog.LevelDebug,
		Providers: []authz.Provider{{Name: "p", Issuer: iss.IssuerURL(), Keys: staticFrom(b, iss),
			ClaimHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-jwt-sub"}, {Claim: "scope", Header: "x-jwt-scope"},
				{Claim: "azp", Header: "x-jwt-client-id"}, {Claim: "permissions", Header: "x-jwt-permissions"}}}}})
	if err != nil {
		b.Fatal(err)
	}
	cur := authz.NewCurrent(authz.CurrentOptions{})
	cur.Store(a)
	s := envoy.NewServer(envoy.Options{Authorizer: cur})
	req := stacktest.Req{Path: "/v1/orders/1?x=1", Token: iss.Sign(b, iss.Claims("client-1@clients")), Headers: map[string]string{
		"user-agent": "example/1.0", "accept": "application/json", "x-request-id": "5f0c6c5e-1b7a-4d9e-9a43-3f1c2b7d8e90",
		"x-forwarded-for": "203.0.113.17", "x-forwarded-proto": "https", "accept-encoding": "gzip"}}.CheckRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := s.Check(ctx, req)
		if _, err := proto.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
}
