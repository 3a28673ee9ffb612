package envoy_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestAudienceInvariant: with audiences set, a token is allowed exactly when
// its aud (string or array) contains one of them byte for byte, over
// generated aud values built from look-alikes of the configured audience
// (another API of the same tenant, the Management API, case, whitespace,
// suffixes). With skip_audience_check the same tokens all pass.
func TestAudienceInvariant(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	const seed = 11
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	configured := []string{"urn:apigee:target:api", "https://api.example.com/"}
	pool := []string{
		"urn:apigee:target:api", "https://api.example.com/", "URN:apigee:target:api", "urn:apigee:target:api ",
		" urn:apigee:target:api", "urn:apigee:target:api/", "urn:apigee:target", "urn:apigee:target:api2",
		"https://api.example.com", "https://api.example.com//", "https://tenant.example/api/v2/",
		"urn:other:api", "", "urn:apigee:target:api\x00", "*",
	}
	yaml := func(aud string) string {
		return fmt.Sprintf("providers:\n- {name: auth0, issuer: %q, %s, jwks: {uri: %q}}\n", iss.IssuerURL(), aud, iss.JWKSURL())
	}
	strict := stacktest.Start(t, yaml(`audiences: ["urn:apigee:target:api", "https://api.example.com/"]`), stacktest.Options{})
	open := stacktest.Start(t, yaml(`skip_audience_check: true`), stacktest.Options{})
	for i := range 60 {
		claims := iss.Claims("client-1@clients")
		var auds []string
		switch k := rng.IntN(4); k {
		case 0:
			auds = []string{pool[rng.IntN(len(pool))]}
			claims["aud"] = auds[0]
		case 1:
			delete(claims, "aud")
		default:
			for range rng.IntN(4) {
				auds = append(auds, pool[rng.IntN(len(pool))])
			}
			claims["aud"] = auds
		}
		tok := iss.Sign(t, claims)
		allowed := slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(configured, a) })
		t.Run(fmt.Sprintf("%d/%q", i, claims["aud"]), func(t *testing.T) {
			resp := strict.Check(t, stacktest.Req{Token: tok})
			if allowed {
				assertDecision(t, resp, want{allow: true, reason: "ok"})
			} else if r := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); r != "invalid_audience" ||
				resp.GetDeniedResponse().GetStatus().GetCode() != 401 || resp.GetStatus().GetCode() != 16 {
				t.Errorf("aud %q: reason %q, status %v, want 401 invalid_audience", claims["aud"], r, resp.GetStatus())
			}
			assertDecision(t, open.Check(t, stacktest.Req{Token: tok}), want{allow: true, reason: "ok"})
		})
	}
}

// TestDiscoveredPlainHTTPJWKSURIRefused: a discovery document (on
// loopback) whose jwks_uri is plain http to another host is refused at
// discovery time: the provider is not ready, its error says why, its
// tokens get 503 keys_unavailable over the real gRPC server. With
// allow_insecure_http the same document is followed: the fetch is tried
// (and fails on the name, which does not resolve), not refused.
func TestDiscoveredPlainHTTPJWKSURIRefused(t *testing.T) {
	t.Parallel()
	keys := jwkstest.New(t, jwkstest.Options{})
	var idp *httptest.Server
	idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, idp.URL+"/", "http://keys.example/.well-known/jwks.json")
	}))
	t.Cleanup(idp.Close)
	const doc = "providers:\n- {name: moved, issuer: %q, audiences: [%q], jwks: {discovery: true%s}}\n"
	s := stacktest.Start(t, fmt.Sprintf(doc, idp.URL+"/", jwkstest.Audience, ""), stacktest.Options{NoWait: true})
	last := waitLastError(t, s, "plain http")
	if !strings.Contains(last, "jwks_uri: http://keys.example/.well-known/jwks.json") || !strings.Contains(last, "allow_insecure_http") {
		t.Errorf("error does not name the jwks_uri and the way out: %q", last)
	}
	claims := keys.Claims("s")
	claims["iss"] = idp.URL + "/"
	tok := keys.Sign(t, claims)
	assertDecision(t, s.Check(t, stacktest.Req{Token: tok}), want{reason: "keys_unavailable", http: 503, grpc: 14})
	if ready, names := s.Runtime.Ready(); ready || len(names) != 1 {
		t.Errorf("Ready() = %v %v", ready, names)
	}

	allowed := stacktest.Start(t, fmt.Sprintf(doc, idp.URL+"/", jwkstest.Audience, `, allow_insecure_http: true, fetch_timeout: "1s"`), stacktest.Options{NoWait: true})
	last = waitLastError(t, allowed, "")
	if strings.Contains(last, "plain http") || !strings.Contains(last, "keys.example") {
		t.Errorf("with allow_insecure_http the jwks_uri was not followed: %q", last)
	}
}

// waitLastError polls the first provider's last error until it contains
// want (any error when want is empty) and returns it.
func waitLastError(t *testing.T, s *stacktest.Stack, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		last := s.Runtime.KeySets()[0].Status().LastError
		if last != "" && strings.Contains(last, want) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("no error containing %q; last error %q", want, last)
		}
		time.Sleep(5 * time.Millisecond) // poll for the first fetch
	}
}
