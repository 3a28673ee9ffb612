package main

import (
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestShutdownFinishesInFlightChecks: a Check waiting on an unknown-kid
// refetch when shutdown starts still gets its answer; health turns
// NOT_SERVING during the lameduck; serve exits 0.
func TestShutdownFinishesInFlightChecks(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	writeConfig(t, cfg, "lameduck: \"0.5s\"\nshutdown_grace: \"10s\"\nproviders:\n"+
		stacktest.Provider("auth0", iss, `min_refresh_interval: "0.001s", fetch_timeout: "1.5s"`))
	p := startServe(t, cfg)
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthgrpc.NewHealthClient(conn)
	eventually(t, "SERVING", func() bool {
		h, err := health.Check(t.Context(), &healthgrpc.HealthCheckRequest{})
		return err == nil && h.GetStatus() == healthgrpc.HealthCheckResponse_SERVING
	})

	iss.SetFailure(jwkstest.Timeout)
	before := iss.Requests()
	tok := iss.SignWith(t, iss.KID(), map[string]any{"kid": "brand-new"}, iss.Claims("s"))
	type result struct {
		resp *authv3.CheckResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := authv3.NewAuthorizationClient(conn).Check(t.Context(), stacktest.Req{Token: tok}.CheckRequest())
		done <- result{resp, err}
	}()
	eventually(t, "refetch in flight", func() bool { return iss.Requests() > before })
	p.cancel() // as SIGTERM does
	eventually(t, "NOT_SERVING during the lameduck", func() bool {
		h, err := health.Check(t.Context(), &healthgrpc.HealthCheckRequest{})
		return err == nil && h.GetStatus() == healthgrpc.HealthCheckResponse_NOT_SERVING
	})
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("in-flight Check lost: %v", r.err)
		}
		if got := r.resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != "unknown_key" {
			t.Errorf("in-flight Check: reason %q, want unknown_key", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("in-flight Check never answered")
	}
	select {
	case <-p.done:
		if p.code != 0 {
			t.Errorf("exit %d", p.code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
