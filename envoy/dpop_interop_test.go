package envoy_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/jwtauthz/jwt-authz/internal/interop"
	"github.com/jwtauthz/jwt-authz/internal/stacktest"
)

// TestDPoPInteropOIDCProvider: a DPoP-bound JWT access token from the real
// oidc-provider and a proof made by the real oauth4webapi pass jwt-authz's
// Check; the same token as Bearer is missing_proof, the same proof again is
// a replay. Skips when node is not installed (internal/interop).
func TestDPoPInteropOIDCProvider(t *testing.T) {
	srv := interop.StartDPoPServer(t)
	yaml := fmt.Sprintf(`
providers:
- name: oidc
  issuer: %q
  audiences: [%q]
  algorithms: [%s]
  jwks: {uri: %q}
  token_type: at+jwt
`, srv.Issuer, srv.Resource, srv.Alg, srv.JWKSURI)
	s := stacktest.Start(t, yaml, stacktest.Options{})
	r := srv.Request(t, http.MethodPost, "https://api.example.com/items?page=2")
	req := stacktest.Req{Method: r.Method, Path: "/items?page=2", Host: "api.example.com", Scheme: "https",
		Headers: map[string]string{"authorization": r.Authorization, "dpop": r.Proof}}

	resp := s.Check(t, req)
	assertDecision(t, resp, want{allow: true, reason: "ok", http: 200})
	if metaOf(resp, "cnf_method") != "dpop" || metaOf(resp, "cnf_thumbprint") == "" {
		t.Errorf("metadata cnf_method %q cnf_thumbprint %q", metaOf(resp, "cnf_method"), metaOf(resp, "cnf_thumbprint"))
	}
	assertDecision(t, s.Check(t, req), badProof("the DPoP proof was already used"))
	assertDecision(t, s.Check(t, stacktest.Req{Method: r.Method, Path: "/items", Host: "api.example.com", Scheme: "https", Token: r.AccessToken}),
		dpopInvalid("missing_proof", "the DPoP-bound token was sent without the DPoP scheme and proof"))
}
