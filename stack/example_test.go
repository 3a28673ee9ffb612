package stack_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/stack"
)

func ExampleNew() {
	pub := ed25519.NewKeyFromSeed([]byte("jwt-authz example key, 32 bytes!")).Public().(ed25519.PublicKey)
	jwks := `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"` +
		base64.RawURLEncoding.EncodeToString(pub) + `"}]}`
	cfg, err := config.Parse([]byte(`
providers:
- name: tenant
  issuer: "https://tenant.example/"
  audiences: ["urn:example:api"]
  algorithms: ["EdDSA"]
  jwks: {inline: '` + jwks + `'}
`))
	if err != nil {
		panic(err)
	}
	s, err := stack.New(cfg, stack.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		panic(err)
	}
	rec := httptest.NewRecorder()
	s.ReadyHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	fmt.Println("readyz", rec.Code)

	// An adapter asks s.Current(); a reload swaps what it answers with.
	d := s.Current().Check(ctx, func() (*authz.Request, authz.Refusal) {
		return &authz.Request{Method: "GET", Path: "/orders", Host: "api.example.com"}, authz.Refusal{}
	})
	fmt.Println(d.Status, d.Reason)
	// Output:
	// readyz 200
	// 401 missing_token
}
