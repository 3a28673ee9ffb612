package httpauthz_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestDPoPThroughForwardedHeaders: in the HTTP mode the proof's htu is
// checked against the URL the trusted forwarded headers name (scheme, host
// and URI), and the challenges are rendered as headers.
func TestDPoPThroughForwardedHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key := jwkstest.NewDPoPKey(t, "ES256")
	c := f.iss.Claims("client-1@clients")
	c["cnf"] = map[string]any{"jkt": key.JKT}
	tok := f.iss.Sign(t, c)
	req := func(htu string) http.Header {
		return http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/json?page=2"}, "X-Forwarded-Host": {"api.example.com"},
			"X-Forwarded-Proto": {"https"}, "Authorization": {"DPoP " + tok}, "Dpop": {key.Proof(t, "GET", htu, tok, time.Now())},
		}
	}
	runCases(t, f.xfwd, []testCase{
		{name: "proof for the forwarded URL", target: "/authz", hdr: req("https://api.example.com/json"),
			want: result{Status: 200, Reason: "ok", Sub: "client-1@clients", Remove: "x-jwt-permissions"}},
		{name: "proof for the subrequest's own URL", target: "/authz", hdr: req("http://api.example.com/authz"),
			want: result{Status: 401, Reason: "invalid_proof", BodyError: "invalid_dpop_proof",
				Challenge: `DPoP algs="ES256 PS256 RS256 EdDSA Ed25519", error="invalid_dpop_proof", error_description="the DPoP proof is for another URL"`}},
	})
}
