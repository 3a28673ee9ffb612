package envoy

import (
	"context"
	"log/slog"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// BenchmarkCodecCheckHot is the hot path as the server runs it: the
// codec reads the CheckRequest's wire bytes, Check decides on a cached
// token, and the codec hands out the stored answer. BenchmarkFullCheckHot
// is the same request through the full decode and a fresh encoding;
// BenchmarkFloorCodec what the empty floor's codec does.
func BenchmarkCodecCheckHot(b *testing.B) { benchHot(b, true) }

func BenchmarkFullCheckHot(b *testing.B) { benchHot(b, false) }

// BenchmarkFloorCodec is what the empty floor server's codec does per
// Check: decode the whole CheckRequest and encode an empty answer.
func BenchmarkFloorCodec(b *testing.B) {
	wire := hotRequest(b, "Bearer x.y.z")
	empty := &authv3.CheckResponse{Status: &rpcstatus.Status{}}
	b.ReportAllocs()
	for b.Loop() {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(wire, &req); err != nil {
			b.Fatal(err)
		}
		if _, err := proto.Marshal(empty); err != nil {
			b.Fatal(err)
		}
	}
}

// hotRequest is loadgen's request in wire form.
func hotRequest(b testing.TB, authorization string) []byte {
	h := map[string]string{":authority": "api.example.com", ":method": "GET", ":path": "/v1/orders/12345?expand=items",
		":scheme": "https", "user-agent": "example-client/2.3.1 (linux; amd64)", "accept": "application/json",
		"accept-encoding": "gzip, deflate, br", "x-request-id": "5f0c6c5e-1b7a-4d9e-9a43-3f1c2b7d8e90",
		"x-forwarded-for": "203.0.113.17", "x-forwarded-proto": "https", "x-envoy-expected-rq-timeout-ms": "15000",
		"authorization": authorization}
	wire, err := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: "GET", Path: h[":path"], Host: h[":authority"],
			Scheme: "https", Protocol: "HTTP/1.1", Headers: h}}}})
	if err != nil {
		b.Fatal(err)
	}
	return wire
}

func benchHot(b *testing.B, fast bool) {
	iss := jwkstest.New(b, jwkstest.Options{})
	keys := authz.StaticKeys{{ID: iss.KID(), Algorithm: "RS256", Public: iss.Key(iss.KID()).Public()}}
	a, err := authz.New(authz.Options{TokenCacheEntries: 100, Metrics: authz.NewMetrics(nil),
		Logger: slog.New(slog.DiscardHandler), DecisionLevel: slog.LevelDebug,
		Providers: []authz.Provider{{Name: "p", Issuer: iss.IssuerURL(), Keys: keys,
			ClaimHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-jwt-sub"}, {Claim: "scope", Header: "x-jwt-scope"},
				{Claim: "azp", Header: "x-jwt-client-id"}, {Claim: "permissions", Header: "x-jwt-permissions"}}}}})
	if err != nil {
		b.Fatal(err)
	}
	cur := authz.NewCurrent(authz.CurrentOptions{})
	cur.Store(a)
	s := NewServer(Options{Authorizer: cur})
	wire := hotRequest(b, "Bearer "+iss.Sign(b, iss.Claims("client-1@clients")))
	c := Codec()
	ctx := context.Background()
	once := func() {
		in := &checkMsg{srv: s}
		var resp any
		var err error
		if fast {
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, in); err != nil {
				b.Fatal(err)
			}
			resp, err = s.checkMsg(ctx, in)
		} else {
			if err := proto.Unmarshal(wire, &in.CheckRequest); err != nil {
				b.Fatal(err)
			}
			resp, err = s.Check(ctx, &in.CheckRequest)
		}
		if err != nil {
			b.Fatal(err)
		}
		out, err := c.Marshal(resp)
		if err != nil || out.Len() == 0 {
			b.Fatal(err)
		}
	}
	once()
	once()
	b.ReportAllocs()
	for b.Loop() {
		once()
	}
}
