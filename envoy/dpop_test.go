package envoy_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// The sender-constrained token checks (RFC 9449 DPoP, RFC 8705 mTLS) over a
// real gRPC Check: tokens from jwkstest issuers, proofs signed by go-jose
// (an independent JOSE library) or, for deliberately broken ones, by hand.

const dpopYAML = `
providers:
- name: auth0        # DPoP allowed (the default), mTLS allowed with Envoy's certificate
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
  mtls: {mode: allowed}
- name: strict       # DPoP required
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
  dpop: {mode: required, algorithms: [ES256], trust_forwarded_headers: true}
- name: mesh         # mTLS required, certificate from XFCC; DPoP disabled
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
  dpop: {mode: disabled}
  mtls: {mode: required, certificate_source: xfcc}
- name: plain        # neither
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: %q}
  dpop: {mode: disabled}
rules:
- name: bound
  match: {path_prefix: "/bound"}
  require: {sender_constrained: true}
- name: api
  match: {path_prefix: "/"}
`

type dpopWorld struct {
	*stacktest.Stack
	a, strict, mesh, plain *jwkstest.Issuer
	clock                  atomic.Int64 // the authorizer's now, Unix nanoseconds
}

func (w *dpopWorld) now() time.Time { return time.Unix(0, w.clock.Load()) }

func (w *dpopWorld) advance(d time.Duration) { w.clock.Add(int64(d)) }

func newDPoPWorld(t *testing.T) *dpopWorld {
	t.Helper()
	w := &dpopWorld{
		a:      jwkstest.New(t, jwkstest.Options{}),
		strict: jwkstest.New(t, jwkstest.Options{}),
		mesh:   jwkstest.New(t, jwkstest.Options{}),
		plain:  jwkstest.New(t, jwkstest.Options{}),
	}
	// Whole seconds, so that iat edges are exact.
	w.clock.Store(time.Now().Truncate(time.Second).UnixNano())
	yaml := fmt.Sprintf(dpopYAML, w.a.IssuerURL(), w.a.JWKSURL(), w.strict.IssuerURL(), w.strict.JWKSURL(),
		w.mesh.IssuerURL(), w.mesh.JWKSURL(), w.plain.IssuerURL(), w.plain.JWKSURL())
	w.Stack = stacktest.Start(t, yaml, stacktest.Options{Now: w.now})
	return w
}

// proofClaims are the claims of a good proof for the request, made now
// on the world's clock.
func (w *dpopWorld) proofClaims(method, url, token string) map[string]any {
	return jwkstest.ProofClaims(method, url, token, w.now())
}

// rawProof assembles a proof by hand: any header, signed with sign (nil:
// an empty signature).
func rawProof(header, claims map[string]any, sign func([]byte) []byte) string {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + enc.EncodeToString(sig)
}

// es256 signs as JWS ES256 (R || S).
func es256(priv crypto.Signer) func([]byte) []byte {
	return func(in []byte) []byte {
		d := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, priv.(*ecdsa.PrivateKey), d[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

// dpopReq is a request with "Authorization: DPoP <token>" and the proof.
func dpopReq(method, path, token, proof string) stacktest.Req {
	h := map[string]string{"authorization": "DPoP " + token}
	if proof != "" {
		h["dpop"] = proof
	}
	return stacktest.Req{Method: method, Path: path, Headers: h}
}

const (
	apiURL   = "http://api.example.com"
	dpopAlgs = `DPoP algs="ES256 PS256 RS256 EdDSA Ed25519"`
)

func badProof(desc string) want {
	return want{reason: "invalid_proof", http: 401, grpc: 16,
		challenge: dpopAlgs + `, error="invalid_dpop_proof", error_description="` + desc + `"`}
}

func dpopInvalid(reason, desc string) want {
	return want{reason: reason, http: 401, grpc: 16,
		challenge: dpopAlgs + `, error="invalid_token", error_description="` + desc + `"`}
}

func bearerInvalid(reason, desc string) want {
	return want{reason: reason, http: 401, grpc: 16, challenge: secRealm + `, error="invalid_token", error_description="` + desc + `"`}
}

func metaOf(resp *authv3.CheckResponse, key string) string {
	return resp.GetDynamicMetadata().GetFields()[key].GetStringValue()
}

func TestDPoP(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	key := jwkstest.NewDPoPKey(t, "ES256")
	other := jwkstest.NewDPoPKey(t, "ES256")
	bound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	unbound := w.a.Sign(t, with(w.a, nil))
	good := func(method, url, token string) string { return key.SignClaims(t, w.proofClaims(method, url, token)) }
	edit := func(changes map[string]any) string {
		c := w.proofClaims("GET", apiURL+"/items", bound)
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return key.SignClaims(t, c)
	}
	priv := key.PublicJWK(t)
	priv["d"] = "AAAA"
	hs := func(in []byte) []byte { m := hmac.New(sha256.New, []byte("secret")); m.Write(in); return m.Sum(nil) }
	weakRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakJWK, _ := (&jose.JSONWebKey{Key: &weakRSA.PublicKey}).MarshalJSON()
	var weak map[string]any
	json.Unmarshal(weakJWK, &weak)
	rs256 := func(in []byte) []byte {
		d := sha256.Sum256(in)
		s, _ := rsa.SignPKCS1v15(rand.Reader, weakRSA, crypto.SHA256, d[:])
		return s
	}
	// A small-order Ed25519 point (the identity) signs anything with R =
	// identity, S = 0.
	identity := make([]byte, 32)
	identity[0] = 1
	smallOrder := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(identity)}
	forged := func([]byte) []byte { return append(append([]byte{}, identity...), make([]byte, 32)...) }

	tests := []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{"good proof", dpopReq("GET", "/items", bound, good("GET", apiURL+"/items", bound)), want{allow: true, reason: "ok"}},
		{"query ignored in request", dpopReq("GET", "/items?page=2", bound, good("GET", apiURL+"/items", bound)), want{allow: true, reason: "ok"}},
		{"query and fragment ignored in htu", dpopReq("GET", "/items", bound, good("GET", apiURL+"/items?x=1#f", bound)), want{allow: true, reason: "ok"}},
		{"default port and host case", dpopReq("GET", "/items", bound, good("GET", "HTTP://API.Example.COM:80/items", bound)), want{allow: true, reason: "ok"}},
		{"encoded unreserved character", dpopReq("GET", "/%7Eitems", bound, good("GET", apiURL+"/~items", bound)), want{allow: true, reason: "ok"}},
		{"other method", dpopReq("POST", "/items", bound, good("GET", apiURL+"/items", bound)), badProof("the DPoP proof is for another method")},
		{"method case", dpopReq("GET", "/items", bound, good("get", apiURL+"/items", bound)), badProof("the DPoP proof is for another method")},
		{"other scheme", dpopReq("GET", "/items", bound, good("GET", "https://api.example.com/items", bound)), badProof("the DPoP proof is for another URL")},
		{"other host", dpopReq("GET", "/items", bound, good("GET", "http://evil.example.com/items", bound)), badProof("the DPoP proof is for another URL")},
		{"other port", dpopReq("GET", "/items", bound, good("GET", apiURL+":8080/items", bound)), badProof("the DPoP proof is for another URL")},
		{"other path", dpopReq("GET", "/items", bound, good("GET", apiURL+"/items/1", bound)), badProof("the DPoP proof is for another URL")},
		{"dot segments are not resolved", dpopReq("GET", "/items", bound, good("GET", apiURL+"/x/../items", bound)), badProof("the DPoP proof is for another URL")},
		{"userinfo in htu", dpopReq("GET", "/items", bound, good("GET", "http://u@api.example.com/items", bound)), badProof("the DPoP proof is for another URL")},
		{"iat at the oldest edge", dpopReq("GET", "/items", bound, edit(map[string]any{"iat": w.now().Add(-330 * time.Second).Unix()})), want{allow: true, reason: "ok"}},
		{"iat one second too old", dpopReq("GET", "/items", bound, edit(map[string]any{"iat": w.now().Add(-331 * time.Second).Unix()})), badProof("the DPoP proof is too old")},
		{"iat at the future edge", dpopReq("GET", "/items", bound, edit(map[string]any{"iat": w.now().Add(30 * time.Second).Unix()})), want{allow: true, reason: "ok"}},
		{"iat one second too far ahead", dpopReq("GET", "/items", bound, edit(map[string]any{"iat": w.now().Add(31 * time.Second).Unix()})), badProof("the DPoP proof was made in the future")},
		{"iat a string", dpopReq("GET", "/items", bound, edit(map[string]any{"iat": "now"})), badProof("the DPoP proof has no valid iat")},
		{"no iat", dpopReq("GET", "/items", bound, edit(map[string]any{"iat": nil})), badProof("the DPoP proof has no valid iat")},
		{"ath of another token", dpopReq("GET", "/items", bound, edit(map[string]any{"ath": base64.RawURLEncoding.EncodeToString(make([]byte, 32))})), badProof("the DPoP proof is for another access token")},
		{"no ath", dpopReq("GET", "/items", bound, edit(map[string]any{"ath": nil})), badProof("the DPoP proof has no ath")},
		{"no jti", dpopReq("GET", "/items", bound, edit(map[string]any{"jti": nil})), badProof("the DPoP proof has no usable jti")},
		{"jti too long", dpopReq("GET", "/items", bound, edit(map[string]any{"jti": strings.Repeat("j", 513)})), badProof("the DPoP proof has no usable jti")},
		{"no htu", dpopReq("GET", "/items", bound, edit(map[string]any{"htu": nil})), badProof("the DPoP proof has no htu")},
		{"proof key is not the token's", dpopReq("GET", "/items", bound, other.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound))),
			dpopInvalid("sender_mismatch", "the DPoP proof's key is not the one the token is bound to")},
		{"unbound token with the DPoP scheme", dpopReq("GET", "/items", unbound, good("GET", apiURL+"/items", unbound)),
			dpopInvalid("sender_mismatch", "the token is not bound to a DPoP key")},
		{"bound token as Bearer", stacktest.Req{Path: "/items", Token: bound}, dpopInvalid("missing_proof", "the DPoP-bound token was sent without the DPoP scheme and proof")},
		{"bound token as Bearer with a proof", stacktest.Req{Path: "/items", Token: bound, Headers: map[string]string{"dpop": good("GET", apiURL+"/items", bound)}},
			dpopInvalid("missing_proof", "the DPoP-bound token was sent without the DPoP scheme and proof")},
		{"DPoP scheme without a proof", dpopReq("GET", "/items", bound, ""), dpopInvalid("missing_proof", "the DPoP token came without a DPoP proof")},
		{"two proofs joined", dpopReq("GET", "/items", bound, good("GET", apiURL+"/items", bound)+","+good("GET", apiURL+"/items", bound)), badProof("more than one DPoP proof")},
		{"jwk with a private member", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": priv}, w.proofClaims("GET", apiURL+"/items", bound), es256(key.Private))),
			badProof("the DPoP proof has a private key in its jwk")},
		{"alg none", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": key.PublicJWK(t)}, w.proofClaims("GET", apiURL+"/items", bound), nil)),
			badProof("the DPoP proof is malformed: unsigned tokens are not accepted")},
		{"alg HS256", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}, w.proofClaims("GET", apiURL+"/items", bound), hs)),
			badProof("the DPoP proof has an algorithm that is not accepted")},
		{"alg not in the provider's list", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES384", "jwk": key.PublicJWK(t)}, w.proofClaims("GET", apiURL+"/items", bound), es256(key.Private))),
			badProof("the DPoP proof has an algorithm that is not accepted")},
		{"jwk of another type than alg", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": key.PublicJWK(t)}, w.proofClaims("GET", apiURL+"/items", bound), es256(key.Private))),
			badProof("the DPoP proof has a jwk that does not fit its algorithm")},
		{"weak RSA jwk", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": weak}, w.proofClaims("GET", apiURL+"/items", bound), rs256)),
			badProof("the DPoP proof has a weak jwk")},
		{"small-order Ed25519 jwk", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": smallOrder}, w.proofClaims("GET", apiURL+"/items", bound), forged)),
			badProof("the DPoP proof has a weak jwk")},
		{"typ JWT", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "JWT", "alg": "ES256", "jwk": key.PublicJWK(t)}, w.proofClaims("GET", apiURL+"/items", bound), es256(key.Private))),
			badProof("the DPoP proof has the wrong typ")},
		{"no jwk", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256"}, w.proofClaims("GET", apiURL+"/items", bound), es256(key.Private))),
			badProof("the DPoP proof has no jwk")},
		{"signature by another key", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": key.PublicJWK(t)}, w.proofClaims("GET", apiURL+"/items", bound), es256(other.Private))),
			badProof("the DPoP proof has an invalid signature")},
		{"upper-case member name", dpopReq("GET", "/items", bound, rawProof(map[string]any{"typ": "dpop+jwt", "ALG": "ES256", "alg": "ES256", "jwk": key.PublicJWK(t)}, w.proofClaims("GET", apiURL+"/items", bound), es256(key.Private))),
			want{allow: true, reason: "ok"}}, // ALG is another member, not alg: ignored as any unknown member is
		{"proof in place of the token", dpopReq("GET", "/items", "not.a.token", good("GET", apiURL+"/items", bound)),
			dpopInvalid("malformed_token", "the token is malformed: header is not base64url")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.want.allow {
				tc.want.http = 200
			}
			resp := w.Check(t, tc.req)
			assertDecision(t, resp, tc.want)
			if tc.want.allow {
				if got := metaOf(resp, "cnf_method"); got != "dpop" {
					t.Errorf("cnf_method %q, want dpop", got)
				}
				if got := metaOf(resp, "cnf_thumbprint"); got != key.JKT {
					t.Errorf("cnf_thumbprint %q, want %q", got, key.JKT)
				}
			}
		})
	}
}

// TestDPoPReplay: a proof is accepted once; the token, cached, keeps
// working with fresh proofs.
func TestDPoPReplay(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	key := jwkstest.NewDPoPKey(t, "ES256")
	bound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	p := key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound))
	assertDecision(t, w.Check(t, dpopReq("GET", "/items", bound, p)), want{allow: true, reason: "ok", http: 200})
	assertDecision(t, w.Check(t, dpopReq("GET", "/items", bound, p)), badProof("the DPoP proof was already used"))
	// A replay stays refused until the proof is too old anyway.
	w.advance(329 * time.Second)
	assertDecision(t, w.Check(t, dpopReq("GET", "/items", bound, p)), badProof("the DPoP proof was already used"))
	w.advance(2 * time.Second)
	assertDecision(t, w.Check(t, dpopReq("GET", "/items", bound, p)), badProof("the DPoP proof is too old"))

	w2 := newDPoPWorld(t)
	k2 := jwkstest.NewDPoPKey(t, "ES256")
	b2 := w2.a.Sign(t, with(w2.a, map[string]any{"cnf": map[string]any{"jkt": k2.JKT}}))
	hit := map[string]string{"result": "hit"}
	hits := gathered(t, w2.Stack, "jwt_authz_token_cache_lookups_total", hit)
	for range 5 {
		pr := k2.SignClaims(t, w2.proofClaims("GET", apiURL+"/items", b2))
		assertDecision(t, w2.Check(t, dpopReq("GET", "/items", b2, pr)), want{allow: true, reason: "ok", http: 200})
	}
	if got := gathered(t, w2.Stack, "jwt_authz_token_cache_lookups_total", hit) - hits; got != 4 {
		t.Errorf("token cache hits %v, want 4: the token is verified once, its proofs every time", got)
	}
}

// TestDPoPTwoHeaders: two DPoP header entries (Envoy's header_map keeps
// them apart) are invalid_proof.
func TestDPoPTwoHeaders(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	key := jwkstest.NewDPoPKey(t, "ES256")
	bound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	req := stacktest.Req{Path: "/items"}.CheckRequest()
	hm := &corev3.HeaderMap{}
	for _, kv := range [][2]string{
		{":method", "GET"}, {":path", "/items"}, {":authority", "api.example.com"},
		{"authorization", "DPoP " + bound},
		{"dpop", key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound))},
		{"dpop", key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound))},
	} {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[0], Value: kv[1]})
	}
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = hm
	resp, err := w.Client.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertDecision(t, resp, badProof("more than one DPoP proof"))
}

// TestDPoPModes: required refuses unbound tokens, disabled does not accept
// the scheme and ignores cnf.jkt, and rules or context_extensions may
// require a sender-constrained token (tighten only).
func TestDPoPModes(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	key := jwkstest.NewDPoPKey(t, "ES256")
	strictBound := w.strict.Sign(t, with(w.strict, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	strictUnbound := w.strict.Sign(t, with(w.strict, nil))
	plainBound := w.plain.Sign(t, with(w.plain, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	aBound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	aUnbound := w.a.Sign(t, with(w.a, nil))
	proof := func(path, tok string) string { return key.SignClaims(t, w.proofClaims("GET", apiURL+path, tok)) }
	ok := want{allow: true, reason: "ok", http: 200}
	unboundDPoP := func(algs, desc string) want {
		return want{reason: "unbound_token", http: 401, grpc: 16,
			challenge: `DPoP algs="` + algs + `", error="invalid_token", error_description="` + desc + `"`}
	}
	fwd := func(r stacktest.Req, proto, host string) stacktest.Req {
		if proto != "" {
			r.Headers["x-forwarded-proto"] = proto
		}
		if host != "" {
			r.Headers["x-forwarded-host"] = host
		}
		return r
	}
	httpsProof := func(tok string) string {
		return key.SignClaims(t, w.proofClaims("GET", "https://public.example.com/items", tok))
	}
	strictBad := func(desc string) want {
		return want{reason: "invalid_proof", http: 401, grpc: 16,
			challenge: `DPoP algs="ES256", error="invalid_dpop_proof", error_description="` + desc + `"`}
	}
	tests := []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{"required: bound and proven, URL from trusted forwarded headers", fwd(dpopReq("GET", "/items", strictBound, httpsProof(strictBound)), "https", "public.example.com"), ok},
		{"trusted forwarded headers: Envoy's URL no longer serves", fwd(dpopReq("GET", "/items", strictBound, proof("/items", strictBound)), "https", "public.example.com"),
			strictBad("the DPoP proof is for another URL")},
		{"trusted forwarded headers: one missing", fwd(dpopReq("GET", "/items", strictBound, httpsProof(strictBound)), "https", ""),
			strictBad("the request URL cannot be read")},
		{"trusted forwarded headers: two hosts", fwd(dpopReq("GET", "/items", strictBound, httpsProof(strictBound)), "https", "public.example.com,evil.example.com"),
			strictBad("the request URL cannot be read")},
		{"untrusted forwarded headers are ignored", fwd(dpopReq("GET", "/items", aBound, httpsProof(aBound)), "https", "public.example.com"),
			badProof("the DPoP proof is for another URL")},
		{"required: unbound Bearer", stacktest.Req{Path: "/items", Token: strictUnbound}, unboundDPoP("ES256", "the issuer's tokens must be DPoP-bound")},
		{"disabled: the DPoP scheme is not accepted", dpopReq("GET", "/items", plainBound, proof("/items", plainBound)),
			dpopInvalid("malformed_token", "the token was sent where its issuer's tokens are not accepted")},
		{"disabled: cnf.jkt is not checked", stacktest.Req{Path: "/items", Token: plainBound}, ok},
		{"rule: unbound token", stacktest.Req{Path: "/bound", Token: aUnbound}, unboundDPoP("ES256 PS256 RS256 EdDSA Ed25519", "the route requires a sender-constrained token")},
		{"rule: bound and proven", dpopReq("GET", "/bound", aBound, proof("/bound", aBound)), ok},
		{"rule: context false does not widen", stacktest.Req{Path: "/bound", Token: aUnbound, Context: map[string]string{"sender_constrained": "false"}},
			unboundDPoP("ES256 PS256 RS256 EdDSA Ed25519", "the route requires a sender-constrained token")},
		{"context: unbound token", stacktest.Req{Path: "/items", Token: aUnbound, Context: map[string]string{"sender_constrained": "true"}},
			unboundDPoP("ES256 PS256 RS256 EdDSA Ed25519", "the route requires a sender-constrained token")},
		{"context: no token", stacktest.Req{Path: "/items", Context: map[string]string{"sender_constrained": "true"}}, missing},
		{"context: bound and proven", dpopReq("GET", "/items", aBound, proof("/items", aBound)), ok},
		{"allowed: unbound Bearer passes", stacktest.Req{Path: "/items", Token: aUnbound}, ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, w.Check(t, tc.req), tc.want)
		})
	}
}

// testCert is a self-signed client certificate.
type testCert struct {
	der []byte
}

func newTestCert(t *testing.T) testCert {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{der: der}
}

func (c testCert) thumb() string {
	s := sha256.Sum256(c.der)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func (c testCert) hash() string {
	s := sha256.Sum256(c.der)
	return hex.EncodeToString(s[:])
}

// urlPEM is the certificate as Envoy sends it: PEM, every character but
// the unreserved ones percent-encoded.
func (c testCert) urlPEM() string {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})
	var b strings.Builder
	for _, ch := range p {
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

func TestMTLS(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	cert, another := newTestCert(t), newTestCert(t)
	flipped := testCert{der: append([]byte{}, cert.der...)}
	flipped.der[len(flipped.der)-1] ^= 1 // one byte of the signature
	aBound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"x5t#S256": cert.thumb()}}))
	meshBound := w.mesh.Sign(t, with(w.mesh, map[string]any{"cnf": map[string]any{"x5t#S256": cert.thumb()}}))
	meshUnbound := w.mesh.Sign(t, with(w.mesh, nil))
	ok := want{allow: true, reason: "ok", http: 200}
	xfcc := func(elems ...string) map[string]string {
		return map[string]string{"x-forwarded-client-cert": strings.Join(elems, ",")}
	}
	el := func(c testCert) string {
		return `By=spiffe://cluster.local/ns/api/sa/api;Hash=` + c.hash() + `;Subject="CN=client,O=x";URI=spiffe://cluster.local/ns/c/sa/c`
	}
	tests := []struct {
		name string
		req  stacktest.Req
		want want
	}{
		{"envoy: the bound certificate", stacktest.Req{Path: "/items", Token: aBound, Certificate: cert.urlPEM()}, ok},
		{"envoy: no certificate", stacktest.Req{Path: "/items", Token: aBound}, bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
		{"envoy: another certificate", stacktest.Req{Path: "/items", Token: aBound, Certificate: another.urlPEM()},
			bearerInvalid("sender_mismatch", "the client certificate is not the one the token is bound to")},
		{"envoy: one byte differs", stacktest.Req{Path: "/items", Token: aBound, Certificate: flipped.urlPEM()},
			bearerInvalid("sender_mismatch", "the client certificate is not the one the token is bound to")},
		{"envoy: XFCC from an untrusted source is ignored", stacktest.Req{Path: "/items", Token: aBound, Headers: xfcc(el(cert))},
			bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
		{"envoy: garbage certificate", stacktest.Req{Path: "/items", Token: aBound, Certificate: "%%%not-pem"},
			bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
		{"xfcc: last element's Hash", stacktest.Req{Path: "/items", Token: meshBound, Headers: xfcc(el(another), el(cert))}, ok},
		{"xfcc: last element's Cert", stacktest.Req{Path: "/items", Token: meshBound, Headers: xfcc(`Cert="` + cert.urlPEM() + `"`)}, ok},
		{"xfcc: only an earlier element matches", stacktest.Req{Path: "/items", Token: meshBound, Headers: xfcc(el(cert), el(another))},
			bearerInvalid("sender_mismatch", "the client certificate is not the one the token is bound to")},
		{"xfcc: one byte differs", stacktest.Req{Path: "/items", Token: meshBound, Headers: xfcc(el(flipped))},
			bearerInvalid("sender_mismatch", "the client certificate is not the one the token is bound to")},
		{"xfcc: none", stacktest.Req{Path: "/items", Token: meshBound}, bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
		{"xfcc: Envoy's attribute is not read", stacktest.Req{Path: "/items", Token: meshBound, Certificate: cert.urlPEM()},
			bearerInvalid("missing_proof", "the certificate-bound token came without a client certificate")},
		{"required: unbound token", stacktest.Req{Path: "/items", Token: meshUnbound, Headers: xfcc(el(cert))},
			bearerInvalid("unbound_token", "the issuer's tokens must be certificate-bound")},
		{"rule: certificate-bound token satisfies sender_constrained", stacktest.Req{Path: "/bound", Token: aBound, Certificate: cert.urlPEM()}, ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := w.Check(t, tc.req)
			assertDecision(t, resp, tc.want)
			if tc.want.allow && (metaOf(resp, "cnf_method") != "mtls" || metaOf(resp, "cnf_thumbprint") != cert.thumb()) {
				t.Errorf("metadata cnf_method %q cnf_thumbprint %q, want mtls %s", metaOf(resp, "cnf_method"), metaOf(resp, "cnf_thumbprint"), cert.thumb())
			}
		})
	}
}

// TestDPoPProofMutations: no change to any byte of a good proof, or to the
// request it was made for, is allowed (except the proof's own unsigned
// spellings, which the strict parser refuses). Seeded; the seed is logged.
func TestDPoPProofMutations(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	key := jwkstest.NewDPoPKey(t, "ES256")
	bound := w.a.Sign(t, with(w.a, map[string]any{"cnf": map[string]any{"jkt": key.JKT}}))
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 14))
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=,+/ "
	for i := range 150 {
		p := []byte(key.SignClaims(t, w.proofClaims("GET", apiURL+"/items", bound)))
		pos := rng.IntN(len(p))
		c := alphabet[rng.IntN(len(alphabet))]
		if p[pos] == c {
			continue
		}
		p[pos] = c
		resp := w.Check(t, dpopReq("GET", "/items", bound, string(p)))
		if resp.GetOkResponse() != nil {
			t.Fatalf("mutation %d (byte %d to %q) allowed: %s", i, pos, c, p)
		}
		if r := metaOf(resp, "reason"); r != "invalid_proof" {
			t.Errorf("mutation %d: reason %q, want invalid_proof", i, r)
		}
	}
}

// TestDPoPChallengesWithoutToken: no token and a provider that accepts
// DPoP → a Bearer and a DPoP challenge.
func TestDPoPChallengesWithoutToken(t *testing.T) {
	t.Parallel()
	w := newDPoPWorld(t)
	resp := w.Check(t, stacktest.Req{Path: "/items"})
	var got []string
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			got = append(got, h.GetHeader().GetValue())
			if len(got) == 2 && h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				t.Errorf("second challenge action %v, want APPEND_IF_EXISTS_OR_ADD (two header entries)", h.GetAppendAction())
			}
		}
	}
	want := []string{secRealm, `DPoP algs="ES256 PS256 RS256 EdDSA Ed25519"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("challenges %q, want %q", got, want)
	}
}
