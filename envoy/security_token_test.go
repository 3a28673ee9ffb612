package envoy_test

// Security tests of tokens and keys over real gRPC: each case was
// reproduced against the server before the fix (a cached token outliving
// its key, max_lifetime overflow, small-order Ed25519 and weak RSA keys,
// tokens with more than one spelling) and must be denied with the reason,
// status and challenge the contract gives.

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

const secIssuer = "https://tenant.example.com/"

// jwksDoc is a JWKS server whose document the test replaces at will.
type jwksDoc struct {
	srv *httptest.Server
	doc atomic.Pointer[[]byte]
}

func newJWKSDoc(t *testing.T) *jwksDoc {
	t.Helper()
	d := &jwksDoc{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(*d.doc.Load())
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// jwkEntry is one key of a document: a public key, a kid ("" for none)
// and an alg.
type jwkEntry struct {
	pub      crypto.PublicKey
	kid, alg string
}

// set serves keys, built with jwkstest.PublicJWK, plus raw JWK objects.
func (d *jwksDoc) set(t *testing.T, keys []jwkEntry, raw ...map[string]any) {
	t.Helper()
	var list []any
	for _, k := range keys {
		j, err := jwkstest.PublicJWK(k.pub, k.kid, k.alg)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, j)
	}
	for _, r := range raw {
		list = append(list, r)
	}
	b, err := json.Marshal(map[string]any{"keys": list})
	if err != nil {
		t.Fatal(err)
	}
	d.doc.Store(&b)
}

func secStack(t *testing.T, d *jwksDoc, clk *jwkstest.Clock, extra string) *stacktest.Stack {
	t.Helper()
	var o stacktest.Options
	if clk != nil { // a nil *Clock in the interface would not be nil
		o.Clock = clk
	}
	return stacktest.Start(t, fmt.Sprintf(`
providers:
- name: auth0
  issuer: %q
  audiences: [%q]
  algorithms: ["RS256", "EdDSA"]
  jwks: {uri: %q, refresh_interval: "900s", min_refresh_interval: "30s", fetch_timeout: "1s"}
%s
token_cache: {max_entries: 1000}
`, secIssuer, jwkstest.Audience, d.srv.URL+"/jwks.json", extra), o)
}

// secClaims are valid claims of secIssuer for an hour.
func secClaims(sub string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": secIssuer, "sub": sub, "aud": jwkstest.Audience, "iat": now, "exp": now + 3600,
		"scope": jwkstest.Scope, "gty": "client-credentials"}
}

func mustKey(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	k, err := jwkstest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// refetch makes the server fetch its key set now: past the minimum
// refresh interval, a token with an unknown kid refetches before it is
// answered.
func refetch(t *testing.T, s *stacktest.Stack, clk *jwkstest.Clock, key crypto.Signer) {
	t.Helper()
	clk.Advance(31 * time.Second)
	tok := jwkstest.SignToken(t, "RS256", key, map[string]any{"kid": "trigger-" + rand.Text()}, secClaims("x"))
	if r := reasonOf(t, s, tok); r != "unknown_key" {
		t.Fatalf("refetch trigger: %s", r)
	}
}

func invalidToken(desc string) string {
	return secRealm + `, error="invalid_token", error_description="` + desc + `"`
}

var wantBadSignature = want{reason: "invalid_signature", http: 401, grpc: 16, challenge: invalidToken("the token's signature is invalid")}

// TestCachedTokenBoundToItsKey: a token verified by key A and cached stops
// verifying once the key set serves key B under A's kid, or swaps a
// kid-less A for a kid-less B — at once, like an uncached token of A.
func TestCachedTokenBoundToItsKey(t *testing.T) {
	t.Parallel()
	a, b := mustKey(t, "RS256"), mustKey(t, "RS256")
	for _, tc := range []struct {
		name  string
		kid   string // "" signs without a kid and publishes kid-less keys
		other jwkEntry
	}{
		{name: "same kid, other key", kid: "k1"},
		{name: "kid-less key swapped", kid: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newJWKSDoc(t)
			keep := mustKey(t, "RS256") // a key that stays, so the set is never empty
			d.set(t, []jwkEntry{{pub: a.Public(), kid: tc.kid, alg: "RS256"}, {pub: keep.Public(), kid: "keep", alg: "RS256"}})
			clk := jwkstest.NewClock(time.Now())
			s := secStack(t, d, clk, "")
			hdr := map[string]any{"kid": tc.kid}
			if tc.kid == "" {
				hdr = map[string]any{}
			}
			cached := jwkstest.SignToken(t, "RS256", a, hdr, secClaims("cached"))
			for range 2 {
				assertDecision(t, s.Check(t, stacktest.Req{Token: cached}), want{allow: true, reason: "ok", http: 200})
			}
			if hits := gathered(t, s, "jwt_authz_token_cache_lookups_total", map[string]string{"result": "hit"}); hits < 1 {
				t.Fatalf("the token was not served from the cache (hits %v)", hits)
			}

			d.set(t, []jwkEntry{{pub: b.Public(), kid: tc.kid, alg: "RS256"}, {pub: keep.Public(), kid: "keep", alg: "RS256"}})
			refetch(t, s, clk, keep)

			fresh := jwkstest.SignToken(t, "RS256", a, hdr, secClaims("fresh"))
			assertDecision(t, s.Check(t, stacktest.Req{Token: fresh}), wantBadSignature)
			assertDecision(t, s.Check(t, stacktest.Req{Token: cached}), wantBadSignature)
			assertDecision(t, s.Check(t, stacktest.Req{Token: jwkstest.SignToken(t, "RS256", b, hdr, secClaims("b"))}),
				want{allow: true, reason: "ok", http: 200})

			// Key A back under its kid: the token verifies again.
			d.set(t, []jwkEntry{{pub: a.Public(), kid: tc.kid, alg: "RS256"}, {pub: keep.Public(), kid: "keep", alg: "RS256"}})
			refetch(t, s, clk, keep)
			assertDecision(t, s.Check(t, stacktest.Req{Token: cached}), want{allow: true, reason: "ok", http: 200})
		})
	}
}

// TestMaxLifetimeHugeNumbers: with max_lifetime 24 h, exp or iat numbers
// that overflowed a Duration no longer pass.
func TestMaxLifetimeHugeNumbers(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	s := stacktest.Start(t, fmt.Sprintf(`
providers:
- name: auth0
  issuer: %q
  audiences: [%q]
  max_lifetime: "86400s"
  jwks: {uri: %q}
`, iss.IssuerURL(), jwkstest.Audience, iss.JWKSURL()), stacktest.Options{})
	now := time.Now().Unix()
	malformed := want{reason: "malformed_token", http: 401, grpc: 16,
		challenge: invalidToken("the token is malformed: a time claim is not a valid date")}
	tooOld := want{reason: "token_too_old", http: 401, grpc: 16, challenge: invalidToken("the token's lifetime is longer than accepted")}
	for _, tc := range []struct {
		name     string
		iat, exp any
		want     want
	}{
		{"exp 1e300", now, json.Number("1e300"), malformed},
		{"exp in year 2603", now, int64(20000000000), tooOld},
		{"iat far negative", int64(-9000000000), now + 3600, malformed},
		{"exp beyond year 9999", now, int64(253402300800), malformed},
		{"exp -0", now, json.Number("-0"), malformed},
		{"lifetime 25 h", now - 3600, now + 24*3600, tooOld},
		{"lifetime 23 h", now - 3600, now + 22*3600, want{allow: true, reason: "ok", http: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := iss.Claims("s")
			c["iat"], c["exp"] = tc.iat, tc.exp
			assertDecision(t, s.Check(t, stacktest.Req{Token: iss.Sign(t, c)}), tc.want)
		})
	}
}

// TestWeakKeysNeverVerify: a JWKS key whose x is the Ed25519 identity
// point would verify a signature forged without any private key (R =
// identity, S = 0); an RSA key with e = 1 makes the padded digest its own
// signature. Both are refused at load: their kid is unknown, and without
// a kid the forgery matches no key.
func TestWeakKeysNeverVerify(t *testing.T) {
	t.Parallel()
	d := newJWKSDoc(t)
	good := mustKey(t, "RS256")
	rsaKey := good.(*rsa.PrivateKey)
	enc := base64.RawURLEncoding
	identity := make([]byte, 32)
	identity[0] = 1
	d.set(t, []jwkEntry{{pub: good.Public(), kid: "good", alg: "RS256"}},
		map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "identity", "alg": "EdDSA", "x": enc.EncodeToString(identity)},
		map[string]any{"kty": "RSA", "kid": "e1", "alg": "RS256", "n": enc.EncodeToString(rsaKey.N.Bytes()), "e": "AQ"},
	)
	s := secStack(t, d, nil, "")

	payload := enc.EncodeToString(mustJSONBytes(t, secClaims("forged")))
	forgeEd := func(hdr string) string {
		sig := append(append([]byte{}, identity...), make([]byte, 32)...)
		return enc.EncodeToString([]byte(hdr)) + "." + payload + "." + enc.EncodeToString(sig)
	}
	if !ed25519.Verify(identity, []byte("premise"), append(append([]byte{}, identity...), make([]byte, 32)...)) {
		t.Fatal("the identity-point forgery does not verify: the premise of this test is wrong")
	}
	forgeE1 := func() string {
		in := enc.EncodeToString([]byte(`{"alg":"RS256","kid":"e1"}`)) + "." + payload
		h := sha256.Sum256([]byte(in))
		// EMSA-PKCS1-v1_5 (RFC 8017 §9.2): with e = 1 it is the signature.
		prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
		k := (rsaKey.N.BitLen() + 7) / 8
		em := make([]byte, k)
		em[1] = 1
		digestInfo := append(prefix, h[:]...)
		for i := 2; i < k-len(digestInfo)-1; i++ {
			em[i] = 0xff
		}
		copy(em[k-len(digestInfo):], digestInfo)
		if new(big.Int).SetBytes(em).Cmp(rsaKey.N) >= 0 {
			panic("encoded message not below the modulus")
		}
		return in + "." + enc.EncodeToString(em)
	}
	unknown := want{reason: "unknown_key", http: 401, grpc: 16, challenge: invalidToken("no usable key matches the token's key id")}
	for _, tc := range []struct {
		name string
		tok  string
		want want
	}{
		{"ed25519 identity point", forgeEd(`{"alg":"EdDSA","kid":"identity"}`), unknown},
		{"ed25519 identity point, no kid", forgeEd(`{"alg":"EdDSA"}`), wantBadSignature},
		{"rsa e=1", forgeE1(), unknown},
		{"good key still works", jwkstest.SignToken(t, "RS256", good, map[string]any{"kid": "good"}, secClaims("ok")),
			want{allow: true, reason: "ok", http: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, s.Check(t, stacktest.Req{Token: tc.tok}), tc.want)
		})
	}
	if keys := s.Runtime.Providers[0].Status().Keys; len(keys) != 1 || keys[0].KID != "good" {
		t.Errorf("usable keys = %+v, want only \"good\"", keys)
	}
}

func mustJSONBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOneSpellingPerToken: validly signed tokens whose header or payload
// has a second spelling — member names in another case, duplicate members
// (nested too), data after the payload, non-canonical base64url — are
// malformed_token; alg none in any case is disallowed_algorithm, also with
// an empty signature part.
func TestOneSpellingPerToken(t *testing.T) {
	t.Parallel()
	d := newJWKSDoc(t)
	key := mustKey(t, "RS256").(*rsa.PrivateKey)
	d.set(t, []jwkEntry{{pub: key.Public(), kid: "k1", alg: "RS256"}})
	s := secStack(t, d, nil, "")
	enc := base64.RawURLEncoding
	cl := string(mustJSONBytes(t, secClaims("s")))
	signText := func(h64, p64 string) string {
		in := h64 + "." + p64
		dg := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, dg[:])
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + enc.EncodeToString(sig)
	}
	sign := func(h, p string) string {
		return signText(enc.EncodeToString([]byte(h)), enc.EncodeToString([]byte(p)))
	}
	const hdr = `{"alg":"RS256","kid":"k1"}`
	good := sign(hdr, cl)
	dot := strings.LastIndexByte(good, '.')
	malformed := func(why string) want {
		return want{reason: "malformed_token", http: 401, grpc: 16, challenge: invalidToken("the token is malformed: " + why)}
	}
	headerBad, payloadBad := malformed("header is not a JSON object"), malformed("payload is not a JSON object")
	unsignedW := want{reason: "disallowed_algorithm", http: 401, grpc: 16, challenge: invalidToken("unsigned tokens are not accepted")}
	for _, tc := range []struct {
		name string
		tok  string
		want want
	}{
		{"control: exact spelling", good, want{allow: true, reason: "ok", http: 200}},
		{"upper-case header names", sign(`{"ALG":"RS256","KID":"k1"}`, cl), malformed("header has no alg")},
		{"duplicate alg", sign(`{"alg":"none","alg":"RS256","kid":"k1"}`, cl), headerBad},
		{"duplicate kid by escape", sign(`{"alg":"RS256","kid":"x","\u006bid":"k1"}`, cl), headerBad},
		{"duplicate iss in payload", sign(hdr, `{"iss":"https://evil.example/",`+cl[1:]), payloadBad},
		{"nested duplicate in payload", sign(hdr, cl[:len(cl)-1]+`,"org":{"id":"a","id":"b"}}`), payloadBad},
		{"payload then junk", sign(hdr, cl+"}junk"), payloadBad},
		{"trailing bit set in signature", good[:dot+1] + flipTrailingBit(good[dot+1:]), malformed("signature is not base64url")},
		{"padded payload", signText(enc.EncodeToString([]byte(hdr)), padded(cl)), malformed("payload is not base64url")},
		{"alg none, empty signature", enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString([]byte(cl)) + ".", unsignedW},
		{"alg NoNe, empty signature", enc.EncodeToString([]byte(`{"alg":"NoNe","kid":"k1"}`)) + "." + enc.EncodeToString([]byte(cl)) + ".", unsignedW},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assertDecision(t, s.Check(t, stacktest.Req{Token: tc.tok}), tc.want)
		})
	}
}

// padded encodes text in base64url with "=" padding (spaces added until
// there is some).
func padded(text string) string {
	for len(text)%3 == 0 {
		text += " "
	}
	return base64.URLEncoding.EncodeToString([]byte(text))
}

// flipTrailingBit sets a trailing bit of an RSA-2048 signature's last
// base64url character (342 characters: 4 trailing bits).
func flipTrailingBit(part string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	v := strings.IndexByte(alpha, part[len(part)-1])
	return part[:len(part)-1] + string(alpha[v|1])
}
