package authz_test

// Benchmarks of (*authz.Authorizer).Check, each beside the bare signature
// verification with crypto/* measured in the same run, so that the
// authorizer's overhead reads as a ratio (make bench; benchstat-friendly
// names: BenchmarkCheckMissRS256 vs BenchmarkBareRS256).
//
// The fixtures here (keys, a realistic ~800-byte token, a ~10-header
// request, the demo's rules) are shared with diff_test.go and fuzz_test.go.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

const (
	benchIssuer   = "https://tenant.example.com/"
	benchAudience = "urn:apigee:target:api"
)

// benchKeys are generated once per test binary: RSA generation dominates
// otherwise.
type benchKeys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

var (
	benchKeysOnce sync.Once
	benchKeysVal  benchKeys
)

func keys(tb testing.TB) benchKeys {
	tb.Helper()
	benchKeysOnce.Do(func() {
		var err error
		if benchKeysVal.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if benchKeysVal.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, benchKeysVal.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
	return benchKeysVal
}

// staticKeys is the provider's key set: kid = alg, one key per algorithm.
func (k benchKeys) staticKeys() authz.StaticKeys {
	return authz.StaticKeys{
		{ID: "RS256", Algorithm: "RS256", Public: &k.rsa.PublicKey},
		{ID: "ES256", Algorithm: "ES256", Public: &k.ec.PublicKey},
		{ID: "EdDSA", Algorithm: "EdDSA", Public: k.ed.Public()},
	}
}

func (k benchKeys) signer(alg string) crypto.Signer {
	switch alg {
	case "ES256":
		return k.ec
	case "EdDSA":
		return k.ed
	}
	return k.rsa
}

// benchClaims are the claims of a typical Auth0 machine-to-machine access
// token; with an RS256 signature the token is about 800 bytes.
func benchClaims(now time.Time, sub string) map[string]any {
	return map[string]any{
		"iss":         benchIssuer,
		"sub":         sub,
		"aud":         []string{benchAudience, "https://tenant.example.com/userinfo"},
		"iat":         now.Add(-time.Minute).Unix(),
		"exp":         now.Add(time.Hour).Unix(),
		"azp":         "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a",
		"scope":       "read:target write:target read:users openid profile",
		"gty":         "client-credentials",
		"permissions": []string{"read:target", "write:target", "read:users"},
		"https://example.com/claims/org": map[string]any{
			"id": "org_4f8a2b1c9d7e6f50", "name": "Example Corporation", "tier": "enterprise",
		},
	}
}

func benchToken(tb testing.TB, alg string, now time.Time, sub string) string {
	tb.Helper()
	k := keys(tb)
	return jwkstest.SignToken(tb, alg, k.signer(alg), map[string]any{"kid": alg}, benchClaims(now, sub))
}

// benchOptions builds the authorizer the way the demo config does: one
// provider, claim headers, three rules, metrics and a logger that drops
// decisions below Info.
func benchOptions(tb testing.TB, cacheEntries int, now func() time.Time) authz.Options {
	tb.Helper()
	reg := prometheus.NewRegistry()
	return authz.Options{
		Providers: []authz.Provider{{
			Name:           "tenant",
			Issuer:         benchIssuer,
			Audiences:      []string{benchAudience},
			Algorithms:     []string{"RS256", "ES256", "EdDSA"},
			Keys:           keys(tb).staticKeys(),
			ClockSkew:      30 * time.Second,
			RequiredClaims: []string{"sub"},
			ClaimHeaders: []authz.ClaimHeader{
				{Claim: "sub", Header: "x-jwt-sub"},
				{Claim: "scope", Header: "x-jwt-scope"},
				{Claim: "azp", Header: "x-jwt-client-id"},
				{Claim: "permissions", Header: "x-jwt-permissions"},
			},
		}},
		Rules: []authz.Rule{
			{Name: "health", Match: authz.Match{PathPrefix: "/healthz", Methods: []string{"GET"}}, AllowAnonymous: true},
			{Name: "admin", Match: authz.Match{PathPrefix: "/admin"}, Require: authz.Requirement{Scopes: []string{"admin:write"}}},
			{Name: "api", Match: authz.Match{PathPrefix: "/"}, Require: authz.Requirement{Scopes: []string{"read:target"}}},
		},
		DenyBody:          authz.BodyJSON,
		Now:               now,
		Metrics:           authz.NewMetrics(reg),
		CacheMetrics:      authz.NewCacheMetrics(reg),
		Logger:            slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		DecisionLevel:     slog.LevelDebug,
		TokenCacheEntries: cacheEntries,
	}
}

func newBenchAuthorizer(tb testing.TB, cacheEntries int) *authz.Authorizer {
	tb.Helper()
	a, err := authz.New(benchOptions(tb, cacheEntries, nil))
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// benchRequest is what Envoy sends for a typical API call: about ten
// headers besides the token.
func benchRequest(authorization string) *authz.Request {
	h := map[string]string{
		":authority":                     "api.example.com",
		":method":                        "GET",
		":path":                          "/v1/orders/12345?expand=items",
		":scheme":                        "https",
		"user-agent":                     "example-client/2.3.1 (linux; amd64)",
		"accept":                         "application/json",
		"accept-encoding":                "gzip, deflate, br",
		"x-request-id":                   "5f0c6c5e-1b7a-4d9e-9a43-3f1c2b7d8e90",
		"x-forwarded-for":                "203.0.113.17",
		"x-forwarded-proto":              "https",
		"x-envoy-expected-rq-timeout-ms": "15000",
	}
	if authorization != "" {
		h["authorization"] = authorization
	}
	return &authz.Request{Method: "GET", Path: h[":path"], Host: h[":authority"], Headers: h}
}

func benchCheck(b *testing.B, a *authz.Authorizer, r *authz.Request, want authz.Reason) {
	b.Helper()
	ctx := context.Background()
	if d := a.Check(ctx, r); d.Reason != want {
		b.Fatalf("reason %q (%s), want %q", d.Reason, d.Description, want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a.Check(ctx, r)
	}
}

// BenchmarkCheckHit is a token seen before: no signature verification.
func BenchmarkCheckHit(b *testing.B) {
	a := newBenchAuthorizer(b, 1000)
	tok := benchToken(b, "RS256", time.Now(), "svc-orders@clients")
	benchCheck(b, a, benchRequest("Bearer "+tok), authz.ReasonOK)
}

// BenchmarkCheckHitParallel is BenchmarkCheckHit from GOMAXPROCS
// goroutines: the cache's read path under contention.
func BenchmarkCheckHitParallel(b *testing.B) {
	a := newBenchAuthorizer(b, 1000)
	tok := benchToken(b, "RS256", time.Now(), "svc-orders@clients")
	r := benchRequest("Bearer " + tok)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := a.Check(ctx, r); !d.Allow {
				b.Errorf("denied: %s", d.Reason)
				return
			}
		}
	})
}

func benchMiss(b *testing.B, alg string) {
	a := newBenchAuthorizer(b, 0)
	tok := benchToken(b, alg, time.Now(), "svc-orders@clients")
	benchCheck(b, a, benchRequest("Bearer "+tok), authz.ReasonOK)
}

// BenchmarkCheckMissRS256 verifies the token on every Check (cache off).
func BenchmarkCheckMissRS256(b *testing.B) { benchMiss(b, "RS256") }

// BenchmarkCheckMissES256 verifies the token on every Check (cache off).
func BenchmarkCheckMissES256(b *testing.B) { benchMiss(b, "ES256") }

// BenchmarkCheckMissEdDSA verifies the token on every Check (cache off).
func BenchmarkCheckMissEdDSA(b *testing.B) { benchMiss(b, "EdDSA") }

// BenchmarkCheckDenyMissing has no token on a route that needs one.
func BenchmarkCheckDenyMissing(b *testing.B) {
	benchCheck(b, newBenchAuthorizer(b, 1000), benchRequest(""), authz.ReasonMissingToken)
}

// BenchmarkCheckDenyMalformed has a bearer value that is not a JWS.
func BenchmarkCheckDenyMalformed(b *testing.B) {
	benchCheck(b, newBenchAuthorizer(b, 1000), benchRequest("Bearer not.a-jws"), authz.ReasonMalformedToken)
}

// BenchmarkCheckDenyExpired has a well-signed expired token: expired
// tokens are never cached, so each costs a verification.
func BenchmarkCheckDenyExpired(b *testing.B) {
	tok := benchToken(b, "RS256", time.Now().Add(-2*time.Hour), "svc-orders@clients")
	benchCheck(b, newBenchAuthorizer(b, 1000), benchRequest("Bearer "+tok), authz.ReasonExpired)
}

// BenchmarkCheckDenyBadSignature has a token whose signature is another
// token's.
func BenchmarkCheckDenyBadSignature(b *testing.B) {
	now := time.Now()
	t1 := benchToken(b, "RS256", now, "a")
	t2 := benchToken(b, "RS256", now, "b")
	tok := t1[:strings.LastIndexByte(t1, '.')] + t2[strings.LastIndexByte(t2, '.'):]
	benchCheck(b, newBenchAuthorizer(b, 1000), benchRequest("Bearer "+tok), authz.ReasonInvalidSignature)
}

// splitToken returns the signing input and the decoded signature.
func splitToken(tb testing.TB, tok string) (string, []byte) {
	tb.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		tb.Fatal(err)
	}
	return tok[:i], sig
}

// BenchmarkBareRS256 is SHA-256 of the signing input and
// rsa.VerifyPKCS1v15: the floor of any RS256 verifier.
func BenchmarkBareRS256(b *testing.B) {
	k := keys(b)
	input, sig := splitToken(b, benchToken(b, "RS256", time.Now(), "svc-orders@clients"))
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256([]byte(input))
		if err := rsa.VerifyPKCS1v15(&k.rsa.PublicKey, crypto.SHA256, d[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareES256 is SHA-256 and ecdsa.Verify of the raw R||S.
func BenchmarkBareES256(b *testing.B) {
	k := keys(b)
	input, sig := splitToken(b, benchToken(b, "ES256", time.Now(), "svc-orders@clients"))
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(&k.ec.PublicKey, d[:], r, s) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkBareEdDSA is ed25519.Verify.
func BenchmarkBareEdDSA(b *testing.B) {
	k := keys(b)
	input, sig := splitToken(b, benchToken(b, "EdDSA", time.Now(), "svc-orders@clients"))
	pub := k.ed.Public().(ed25519.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, []byte(input), sig) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkBareTokenKey is the SHA-256 of the token: the cache key.
func BenchmarkBareTokenKey(b *testing.B) {
	tok := benchToken(b, "RS256", time.Now(), "svc-orders@clients")
	b.SetBytes(int64(len(tok)))
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256([]byte(tok))
	}
}

// BenchmarkJWXParseRS256 is jwx's jwt.Parse with the key set and
// validation: what a server that ran jwx on every request would pay.
func BenchmarkJWXParseRS256(b *testing.B) {
	k := keys(b)
	set := jwxSet(b, k.staticKeys())
	tok := []byte(benchToken(b, "RS256", time.Now(), "svc-orders@clients"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwt.Parse(tok, jwt.WithKeySet(set), jwt.WithValidate(true),
			jwt.WithIssuer(benchIssuer), jwt.WithAudience(benchAudience)); err != nil {
			b.Fatal(err)
		}
	}
}

// jwxSet turns a StaticKeys into a jwk.Set with the same kids and algs.
func jwxSet(tb testing.TB, ks authz.StaticKeys) jwk.Set {
	tb.Helper()
	set := jwk.NewSet()
	for _, k := range ks {
		jk, err := jwk.FromRaw(k.Public)
		if err != nil {
			tb.Fatal(err)
		}
		if k.ID != "" {
			_ = jk.Set(jwk.KeyIDKey, k.ID)
		}
		if k.Algorithm != "" {
			_ = jk.Set(jwk.AlgorithmKey, k.Algorithm)
		}
		if err := set.AddKey(jk); err != nil {
			tb.Fatal(err)
		}
	}
	return set
}
