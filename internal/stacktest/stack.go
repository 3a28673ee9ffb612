// Package stacktest starts jwt-authz's Check path from a YAML config, the
// way the binary does (config.Parse, a stack.Stack, the envoy adapter on a
// real gRPC server on 127.0.0.1), for tests of the whole decision.
package stacktest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/envoy"
	"github.com/jwtauthz/jwt-authz/jwks"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/stack"
)

// Provider is the providers entry most tests configure for a jwkstest
// issuer, as a block-style list item to follow a "providers:" line: name,
// the issuer's URL and JWKS URI, and the demo audience (jwkstest.Audience).
// jwks adds fields inside the jwks mapping (`fetch_timeout: "1s"`); each of
// fields is one more line of the entry (`claim_headers: [...]`).
func Provider(name string, iss *jwkstest.Issuer, jwks string, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- name: %s\n  issuer: %q\n  audiences: [%q]\n  jwks: {uri: %q", name, iss.IssuerURL(), jwkstest.Audience, iss.JWKSURL())
	if jwks != "" {
		b.WriteString(", " + jwks)
	}
	b.WriteString("}\n")
	for _, f := range fields {
		b.WriteString("  " + f + "\n")
	}
	return b.String()
}

// Stack is a running Check path.
type Stack struct {
	Client   authv3.AuthorizationClient
	Registry *prometheus.Registry
	// Runtime is the running stack: key sets, readiness, reload.
	Runtime *stack.Stack
	// Current is the authorizer in force, for other adapters.
	Current *authz.Current
	Addr    string
}

// Options tune Start.
type Options struct {
	// Now is the authorizer's clock; nil means time.Now.
	Now func() time.Time
	// Clock drives key refresh; nil means the real clock.
	Clock jwks.Clock
	// NoWait skips waiting for every provider to be ready.
	NoWait bool
	// FullDecode serves without envoy.Codec: every CheckRequest is
	// decoded in full and every answer marshalled from its message.
	FullDecode bool
}

// Start parses yaml, builds it and serves Check on 127.0.0.1:0. Everything
// stops in t.Cleanup.
func Start(t testing.TB, yaml string, o Options) *Stack {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	rt, err := stack.New(cfg, stack.Options{Registry: reg, Clock: o.Clock, Now: o.Now})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	t.Cleanup(rt.Close)
	if !o.NoWait {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rt.WaitReady(ctx); err != nil {
			t.Fatalf("not ready: %v", err)
		}
	}
	cur := rt.Current()
	var opts []grpc.ServerOption
	if !o.FullDecode {
		opts = append(opts, grpc.ForceServerCodecV2(envoy.Codec())) // as serve does
	}
	gs := grpc.NewServer(opts...)
	envoy.Register(gs, envoy.NewServer(envoy.Options{Authorizer: cur}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Stack{Client: authv3.NewAuthorizationClient(conn), Registry: reg, Runtime: rt, Current: cur, Addr: lis.Addr().String()}
}

// Req describes one request to Check.
type Req struct {
	Method  string
	Path    string
	Host    string
	Token   string // sent as "authorization: Bearer <Token>" when set
	Headers map[string]string
	Context map[string]string
	// Scheme is attributes.request.http.scheme; "" means http.
	Scheme string
	// Certificate is attributes.source.certificate (URL-encoded PEM).
	Certificate string
}

// CheckRequest builds the CheckRequest Envoy would send.
func (r Req) CheckRequest() *authv3.CheckRequest {
	h := map[string]string{}
	for k, v := range r.Headers {
		h[strings.ToLower(k)] = v
	}
	if r.Token != "" {
		h["authorization"] = "Bearer " + r.Token
	}
	method, path, host := r.Method, r.Path, r.Host
	if method == "" {
		method = "GET"
	}
	if path == "" {
		path = "/"
	}
	if host == "" {
		host = "api.example.com"
	}
	scheme := r.Scheme
	if scheme == "" {
		scheme = "http"
	}
	h[":method"], h[":path"], h[":authority"] = method, path, host
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Certificate: r.Certificate},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: host, Headers: h, Protocol: "HTTP/1.1", Scheme: scheme,
		}},
		ContextExtensions: r.Context,
	}}
}

// Check sends r and fails the test on a gRPC error.
func (s *Stack) Check(t testing.TB, r Req) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.Client.Check(ctx, r.CheckRequest())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// Count returns the value of jwt_authz_checks_total for the labels.
func (s *Stack) Count(decision, reason, provider string) float64 {
	return testutil.ToFloat64(s.Current.Load().Metrics().Checks(decision, reason, provider))
}
