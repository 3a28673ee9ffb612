package authz_test

// The differential test: our direct JWS path (authz/jws.go, verify.go)
// against jwx, the reference. Both see the same key set and clock; for
// every token of a corpus of valid, forged and malformed tokens they must
// reach the same verdict, and our reason must be the one that jwx's error
// maps to.
//
// The oracle is jwx with the RFC rules our path applies and jwx v2.1 leaves
// to the caller, each one line below and named in oracleDeny:
//   - RFC 8725 §3.1: the header's alg must be the key's alg. jwx's
//     WithKeySet verifies with the JWK's alg and ignores the header's, so
//     a token that says RS384 but is signed RS256 passes jwx alone.
//   - RFC 7515 §4.1.11: crit must be understood; we understand none.
//   - RFC 7515 §2/§7.1: base64url without padding. jwx's decoder also
//     takes padding and the standard alphabet, and re-encodes the header
//     and payload before verifying, so "eyJ...=" verifies in jwx.
//   - time claims must be JSON numbers (RFC 7519 §2 NumericDate); jwx also
//     takes numeric strings.
//   - RFC 7518 §3.5: the PSS salt is as long as the hash. jwx verifies PS*
//     with rsa.VerifyPSS(..., nil), which accepts any salt length.
//   - a kid, when present, selects the key: jwx's WithRequireKid(false)
//     would try every key, so the oracle asks for the kid when there is one.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

const (
	diffIssuer = "https://diff.example.com/"
	diffAud    = "api"
	diffSkew   = 30 * time.Second
)

// diffNow is the fixed clock of both paths.
var diffNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// diffAlgs is the provider's allowlist. RS384 is allowed but no key has
// it: it makes the alg-binding case reachable.
var diffAlgs = []string{"RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA"}

type diffKeySet struct {
	rsa, rsa4096, ps *rsa.PrivateKey
	ec256, ec384     *ecdsa.PrivateKey
	ed               ed25519.PrivateKey
	static           authz.StaticKeys
	set              jwk.Set
}

var (
	diffKeysOnce sync.Once
	diffKeysVal  *diffKeySet
)

func diffKeys(tb testing.TB) *diffKeySet {
	tb.Helper()
	diffKeysOnce.Do(func() {
		k := &diffKeySet{rsa: keys(tb).rsa, ec256: keys(tb).ec, ed: keys(tb).ed}
		var err error
		if k.rsa4096, err = rsa.GenerateKey(rand.Reader, 4096); err != nil {
			panic(err)
		}
		if k.ps, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			panic(err)
		}
		k.static = authz.StaticKeys{
			{ID: "rsa", Algorithm: "RS256", Public: &k.rsa.PublicKey},
			{ID: "rsa4096", Algorithm: "RS256", Public: &k.rsa4096.PublicKey},
			{ID: "ps", Algorithm: "PS256", Public: &k.ps.PublicKey},
			{ID: "ec256", Algorithm: "ES256", Public: &k.ec256.PublicKey},
			{ID: "ec384", Algorithm: "ES384", Public: &k.ec384.PublicKey},
			{ID: "ed", Algorithm: "EdDSA", Public: k.ed.Public()},
		}
		k.set = jwxSet(tb, k.static)
		diffKeysVal = k
	})
	return diffKeysVal
}

func diffAuthorizer(tb testing.TB) *authz.Authorizer {
	tb.Helper()
	a, err := authz.New(authz.Options{
		Providers: []authz.Provider{{
			Name: "diff", Issuer: diffIssuer, Audiences: []string{diffAud}, Algorithms: diffAlgs,
			Keys: diffKeys(tb).static, ClockSkew: diffSkew,
		}},
		Now: func() time.Time { return diffNow },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// ours runs the token through the whole Check and returns its reason.
func ours(a *authz.Authorizer, tok string) authz.Reason {
	return a.Check(context.Background(), &authz.Request{
		Method: "GET", Path: "/", Host: "api.example.com",
		Headers: map[string]string{"authorization": "Bearer " + tok},
	}).Reason
}

// Oracle verdict classes: what jwx's answer means.
const (
	oracleOK        = "ok"
	oracleMalformed = "malformed" // not a JWS/JWT jwx can parse, or an RFC rule above
	oracleAlg       = "alg"       // alg none or not in the allowlist
	oracleIssuer    = "issuer"
	oracleSignature = "signature" // jws.Verify failed (unknown kid included)
	oracleExpired   = "expired"
	oracleNotYet    = "not_yet_valid"
	oracleAudience  = "audience"
	oracleMissing   = "missing_claim"
)

// oracleClass maps each of our reasons to the oracle class it must agree
// with.
var oracleClass = map[authz.Reason]string{
	authz.ReasonOK:                  oracleOK,
	authz.ReasonMalformedToken:      oracleMalformed,
	authz.ReasonDisallowedAlgorithm: oracleAlg,
	authz.ReasonUnknownIssuer:       oracleIssuer,
	authz.ReasonInvalidSignature:    oracleSignature,
	authz.ReasonUnknownKey:          oracleSignature,
	authz.ReasonExpired:             oracleExpired,
	authz.ReasonNotYetValid:         oracleNotYet,
	authz.ReasonInvalidAudience:     oracleAudience,
	authz.ReasonMissingClaim:        oracleMissing,
}

var b64urlPart = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// canonical reports whether part is unpadded base64url that re-encodes to
// itself.
func canonical(part string) bool {
	b, err := base64.RawURLEncoding.DecodeString(part)
	return err == nil && base64.RawURLEncoding.EncodeToString(b) == part
}

// oracle decides tok with jwx in the order our path uses (parse, issuer,
// algorithm, signature, claims), so that the class of a denial is
// comparable. It returns the class and jwx's error for messages.
func oracle(k *diffKeySet, tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return oracleMalformed, errors.New("not three parts")
	}
	if unsignedHeader(parts[0]) {
		// RFC 8725 §3.1: an unsigned token is refused as such, whatever
		// its signature part (see the top).
		return oracleAlg, errors.New("alg none")
	}
	for _, p := range parts {
		// RFC 7515 §2: base64url, no padding (oracleDeny, see the top).
		if !b64urlPart.MatchString(p) || !canonical(p) {
			return oracleMalformed, errors.New("not canonical base64url")
		}
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		return oracleMalformed, err
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return oracleMalformed, errors.New("not one signature")
	}
	hdr := sigs[0].ProtectedHeaders()
	if _, ok := hdr.Get(jws.CriticalKey); ok {
		return oracleMalformed, errors.New("crit")
	}
	alg := hdr.Algorithm().String()
	if strings.EqualFold(alg, "none") {
		return oracleAlg, errors.New("alg none")
	}
	// Which issuer, before anything else the payload says: plain JSON, as
	// jwt.Parse would already refuse a string exp here.
	var payload map[string]any
	if err := json.Unmarshal(msg.Payload(), &payload); err != nil {
		return oracleMalformed, err
	}
	if iss, _ := payload["iss"].(string); iss != diffIssuer {
		return oracleIssuer, errors.New("issuer")
	}
	allowed := false
	for _, a := range diffAlgs {
		allowed = allowed || a == alg
	}
	if !allowed {
		return oracleAlg, errors.New("algorithm not allowed")
	}
	var used jwk.Key
	_, hasKid := hdr.Get(jws.KeyIDKey)
	if _, err := jws.Verify([]byte(tok), jws.WithKeySet(k.set, jws.WithRequireKid(hasKid)), jws.WithKeyUsed(&used)); err != nil {
		return oracleSignature, err
	}
	if used.Algorithm().String() != alg {
		// RFC 8725 §3.1 (see the top).
		return oracleSignature, errors.New("header alg is not the key's alg")
	}
	if strings.HasPrefix(alg, "PS") {
		// RFC 7518 §3.5 (see the top). Only PS256 is allowed here.
		var pub rsa.PublicKey
		if err := used.Raw(&pub); err != nil {
			return "unclassified", err
		}
		d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
		if err := rsa.VerifyPSS(&pub, crypto.SHA256, d[:], mustDecode(parts[2]), opts); err != nil {
			return oracleSignature, err
		}
	}
	parsed, err := jwt.Parse(msg.Payload(), jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		return oracleMalformed, err
	}
	for _, c := range []string{"exp", "nbf", "iat"} {
		if _, isStr := payload[c].(string); isStr {
			// NumericDate is a JSON number (RFC 7519 §2; see the top).
			return oracleMalformed, errors.New(c + " is a string")
		}
	}
	err = jwt.Validate(parsed,
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return diffNow })),
		jwt.WithAcceptableSkew(diffSkew),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithAudience(diffAud),
	)
	switch {
	case err == nil:
		return oracleOK, nil
	case errors.Is(err, jwt.ErrTokenExpired()):
		return oracleExpired, err
	case errors.Is(err, jwt.ErrTokenNotYetValid()), errors.Is(err, jwt.ErrInvalidIssuedAt()):
		return oracleNotYet, err
	case errors.Is(err, jwt.ErrInvalidAudience()):
		return oracleAudience, err
	case errors.Is(err, jwt.ErrRequiredClaim()):
		return oracleMissing, err
	}
	return "unclassified", err
}

// unsignedHeader reports whether part is a canonical header whose alg is
// "none" in any case.
func unsignedHeader(part string) bool {
	if !b64urlPart.MatchString(part) || !canonical(part) {
		return false
	}
	var h map[string]any
	if json.Unmarshal(mustDecode(part), &h) != nil {
		return false
	}
	alg, _ := h["alg"].(string)
	return strings.EqualFold(alg, "none")
}

func mustDecode(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}

// diffCase is one corpus token and the reason our path must give.
type diffCase struct {
	name  string
	token string
	want  authz.Reason
}

func diffCorpus(tb testing.TB) []diffCase {
	tb.Helper()
	k := diffKeys(tb)
	enc := base64.RawURLEncoding
	cl := func(mod map[string]any) map[string]any {
		c := map[string]any{
			"iss": diffIssuer, "sub": "client-1", "aud": diffAud,
			"iat": diffNow.Add(-time.Minute).Unix(), "exp": diffNow.Add(time.Hour).Unix(),
		}
		for n, v := range mod {
			if v == nil {
				delete(c, n)
				continue
			}
			c[n] = v
		}
		return c
	}
	sign := func(alg string, key crypto.Signer, kid string, mod map[string]any) string {
		h := map[string]any{"kid": kid}
		if kid == "" {
			h = map[string]any{}
		}
		return jwkstest.SignToken(tb, alg, key, h, cl(mod))
	}
	signHdr := func(alg string, key crypto.Signer, hdr map[string]any) string {
		return jwkstest.SignToken(tb, alg, key, hdr, cl(nil))
	}
	// raw builds a token from a literal header and payload, signed RS256
	// with the rsa key over exactly those bytes.
	raw := func(header, payload string) string {
		in := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		d := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, d[:])
		if err != nil {
			tb.Fatal(err)
		}
		return in + "." + enc.EncodeToString(sig)
	}
	parts := func(tok string) (string, string, string) {
		p := strings.Split(tok, ".")
		return p[0], p[1], p[2]
	}
	good := sign("RS256", k.rsa, "rsa", nil)
	h, p, s := parts(good)
	other := sign("RS256", k.rsa, "rsa", map[string]any{"sub": "client-2"})
	_, p2, _ := parts(other)
	es := sign("ES256", k.ec256, "ec256", nil)
	esH, esP, esS := parts(es)
	esSig := mustDecode(esS)
	psIn := func(salt int) string {
		in := enc.EncodeToString([]byte(`{"alg":"PS256","kid":"ps","typ":"JWT"}`)) + "." + p
		d := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPSS(rand.Reader, k.ps, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			tb.Fatal(err)
		}
		return in + "." + enc.EncodeToString(sig)
	}
	hs := func() string {
		// Algorithm confusion: HS256 keyed with the RSA public key.
		der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
		in := enc.EncodeToString([]byte(`{"alg":"HS256","kid":"rsa","typ":"JWT"}`)) + "." + p
		m := hmac.New(sha256.New, der)
		m.Write([]byte(in))
		return in + "." + enc.EncodeToString(m.Sum(nil))
	}
	asn1ES := func() string {
		d := sha256.Sum256([]byte(esH + "." + esP))
		sig, err := ecdsa.SignASN1(rand.Reader, k.ec256, d[:])
		if err != nil {
			tb.Fatal(err)
		}
		return esH + "." + esP + "." + enc.EncodeToString(sig)
	}
	return []diffCase{
		// Valid.
		{"rs256", good, authz.ReasonOK},
		{"rs256_4096", sign("RS256", k.rsa4096, "rsa4096", nil), authz.ReasonOK},
		{"ps256", sign("PS256", k.ps, "ps", nil), authz.ReasonOK},
		{"ps256_salt_hash_len", psIn(rsa.PSSSaltLengthEqualsHash), authz.ReasonOK},
		{"es256", es, authz.ReasonOK},
		{"es384", sign("ES384", k.ec384, "ec384", nil), authz.ReasonOK},
		{"eddsa", sign("EdDSA", k.ed, "ed", nil), authz.ReasonOK},
		{"no_kid_rs256", sign("RS256", k.rsa, "", nil), authz.ReasonOK},
		{"no_kid_eddsa", sign("EdDSA", k.ed, "", nil), authz.ReasonOK},
		{"aud_array", sign("RS256", k.rsa, "rsa", map[string]any{"aud": []string{"x", diffAud}}), authz.ReasonOK},
		{"exp_within_skew", sign("RS256", k.rsa, "rsa", map[string]any{"exp": diffNow.Add(-10 * time.Second).Unix()}), authz.ReasonOK},
		{"nbf_within_skew", sign("RS256", k.rsa, "rsa", map[string]any{"nbf": diffNow.Add(10 * time.Second).Unix()}), authz.ReasonOK},
		{"typ_absent", signHdr("RS256", k.rsa, map[string]any{"kid": "rsa", "typ": nil}), authz.ReasonOK},
		// Forged.
		{"wrong_sig", h + "." + p + "." + parts3(other), authz.ReasonInvalidSignature},
		{"payload_swap", h + "." + p2 + "." + s, authz.ReasonInvalidSignature},
		{"sig_flipped", h + "." + p + "." + flip(s), authz.ReasonInvalidSignature},
		{"alg_none", enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + p + ".", authz.ReasonDisallowedAlgorithm},
		{"alg_none_sig", enc.EncodeToString([]byte(`{"alg":"none","kid":"rsa"}`)) + "." + p + "." + s, authz.ReasonDisallowedAlgorithm},
		{"alg_None", enc.EncodeToString([]byte(`{"alg":"None","kid":"rsa"}`)) + "." + p + "." + s, authz.ReasonDisallowedAlgorithm},
		{"alg_hs256_confusion", hs(), authz.ReasonDisallowedAlgorithm},
		{"alg_rs384_signed_rs256", signHdr("RS256", k.rsa, map[string]any{"kid": "rsa", "alg": "RS384"}), authz.ReasonUnknownKey},
		{"alg_ps256_signed_rs256", signHdr("RS256", k.rsa, map[string]any{"kid": "rsa", "alg": "PS256"}), authz.ReasonUnknownKey},
		{"alg_es256_on_rsa_kid", signHdr("ES256", k.ec256, map[string]any{"kid": "rsa"}), authz.ReasonUnknownKey},
		{"alg_es384_on_es256_key", signHdr("ES384", k.ec384, map[string]any{"kid": "ec256"}), authz.ReasonUnknownKey},
		{"kid_swap_rsa", signHdr("RS256", k.rsa, map[string]any{"kid": "rsa4096"}), authz.ReasonInvalidSignature},
		{"kid_unknown", signHdr("RS256", k.rsa, map[string]any{"kid": "nope"}), authz.ReasonUnknownKey},
		{"no_kid_foreign_key", func() string {
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			return sign("RS256", other, "", nil)
		}(), authz.ReasonInvalidSignature},
		{"es_sig_asn1", asn1ES(), authz.ReasonInvalidSignature},
		{"es_sig_short", esH + "." + esP + "." + enc.EncodeToString(esSig[:63]), authz.ReasonInvalidSignature},
		{"es_sig_long", esH + "." + esP + "." + enc.EncodeToString(append(append([]byte{}, esSig...), 0)), authz.ReasonInvalidSignature},
		{"ps256_salt_zero", psIn(0), authz.ReasonInvalidSignature},
		{"ps256_salt_max", psIn(rsa.PSSSaltLengthAuto), authz.ReasonInvalidSignature},
		{"eddsa_on_rsa_kid", signHdr("EdDSA", k.ed, map[string]any{"kid": "rsa"}), authz.ReasonUnknownKey},
		{"unknown_issuer", sign("RS256", k.rsa, "rsa", map[string]any{"iss": "https://evil.example/"}), authz.ReasonUnknownIssuer},
		{"no_issuer", sign("RS256", k.rsa, "rsa", map[string]any{"iss": nil}), authz.ReasonUnknownIssuer},
		{"alg_disallowed_es512", func() string {
			ek, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
			return sign("ES512", ek, "ec256", nil)
		}(), authz.ReasonDisallowedAlgorithm},
		// Claims.
		{"expired", sign("RS256", k.rsa, "rsa", map[string]any{"exp": diffNow.Add(-time.Hour).Unix()}), authz.ReasonExpired},
		{"expired_past_skew", sign("RS256", k.rsa, "rsa", map[string]any{"exp": diffNow.Add(-time.Minute).Unix()}), authz.ReasonExpired},
		{"no_exp", sign("RS256", k.rsa, "rsa", map[string]any{"exp": nil}), authz.ReasonMissingClaim},
		{"nbf_future", sign("RS256", k.rsa, "rsa", map[string]any{"nbf": diffNow.Add(time.Hour).Unix()}), authz.ReasonNotYetValid},
		{"iat_future", sign("RS256", k.rsa, "rsa", map[string]any{"iat": diffNow.Add(time.Hour).Unix()}), authz.ReasonNotYetValid},
		{"wrong_aud", sign("RS256", k.rsa, "rsa", map[string]any{"aud": "other"}), authz.ReasonInvalidAudience},
		{"exp_string", sign("RS256", k.rsa, "rsa", map[string]any{"exp": "2000000000"}), authz.ReasonMalformedToken},
		{"expired_forged", h + "." + enc.EncodeToString(mustJSON(cl(map[string]any{"exp": 1}))) + "." + s, authz.ReasonInvalidSignature},
		// Malformed.
		{"two_parts", h + "." + p, authz.ReasonMalformedToken},
		{"four_parts", good + "." + s, authz.ReasonMalformedToken},
		{"truncated_sig", h + "." + p + "." + s[:len(s)-6], authz.ReasonInvalidSignature},
		{"truncated_header", h[:len(h)-3] + "." + p + "." + s, authz.ReasonMalformedToken},
		{"empty_sig", h + "." + p + ".", authz.ReasonMalformedToken},
		{"empty_header", "." + p + "." + s, authz.ReasonMalformedToken},
		{"bad_base64_header", "e!J." + p + "." + s, authz.ReasonMalformedToken},
		{"bad_base64_sig", h + "." + p + "." + s[:10] + "*" + s[11:], authz.ReasonMalformedToken},
		{"std_alphabet_sig", h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s) + "+", authz.ReasonMalformedToken},
		{"padded_header", h + "=." + p + "." + s, authz.ReasonMalformedToken},
		{"padded_payload", h + "." + p + "==." + s, authz.ReasonMalformedToken},
		{"padded_sig", h + "." + p + "." + s + "==", authz.ReasonMalformedToken},
		{"header_array", raw(`["alg","RS256"]`, string(mustJSON(cl(nil)))), authz.ReasonMalformedToken},
		{"header_string", raw(`"RS256"`, string(mustJSON(cl(nil)))), authz.ReasonMalformedToken},
		{"header_not_json", raw(`{alg:RS256}`, string(mustJSON(cl(nil)))), authz.ReasonMalformedToken},
		{"payload_array", raw(`{"alg":"RS256","kid":"rsa"}`, `[1,2]`), authz.ReasonMalformedToken},
		{"payload_number", raw(`{"alg":"RS256","kid":"rsa"}`, `42`), authz.ReasonMalformedToken},
		{"payload_not_json", raw(`{"alg":"RS256","kid":"rsa"}`, `iss=me`), authz.ReasonMalformedToken},
		{"crit", raw(`{"alg":"RS256","kid":"rsa","crit":["exp"],"exp":1}`, string(mustJSON(cl(nil)))), authz.ReasonMalformedToken},
		{"crit_empty", raw(`{"alg":"RS256","kid":"rsa","crit":[]}`, string(mustJSON(cl(nil)))), authz.ReasonMalformedToken},
		{"raw_ok", raw(`{"alg":"RS256","kid":"rsa"}`, string(mustJSON(cl(nil)))), authz.ReasonOK},
	}
}

func parts3(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }

// flip changes one character in the middle of a base64url string.
func flip(s string) string {
	i := len(s) / 2
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestVerifyAgainstJWX(t *testing.T) {
	t.Parallel()
	a := diffAuthorizer(t)
	k := diffKeys(t)
	for _, tc := range diffCorpus(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ours(a, tc.token)
			if got != tc.want {
				t.Errorf("ours: got %q, want %q", got, tc.want)
			}
			class, err := oracle(k, tc.token)
			if want := oracleClass[got]; class != want {
				t.Errorf("jwx: got %q (%v), want %q to agree with our %q", class, err, want, got)
			}
		})
	}
}

// FuzzVerifyAgainstJWX mutates the corpus: whatever the token, when we
// accept, jwx (with the RFC rules above) accepts, and when jwx accepts, so
// do we. On a denial, a signature that jwx refuses is never one we take.
func FuzzVerifyAgainstJWX(f *testing.F) {
	for _, tc := range diffCorpus(f) {
		f.Add(tc.token)
	}
	a := diffAuthorizer(f)
	k := diffKeys(f)
	f.Fuzz(func(t *testing.T, tok string) {
		if len(tok) > authz.MaxTokenBytes || strings.TrimSpace(tok) != tok || tok == "" {
			return // extraction's business (FuzzBearerToken)
		}
		got := ours(a, tok)
		class, err := oracle(k, tok)
		if (got == authz.ReasonOK) != (class == oracleOK) {
			t.Fatalf("ours %q, jwx %q (%v)", got, class, err)
		}
		if class == oracleSignature && oracleClass[got] != oracleSignature && got != authz.ReasonMalformedToken {
			// A signature jwx refuses may still be malformed for us
			// first (we decode the payload before verifying).
			t.Fatalf("jwx refused the signature (%v), ours %q", err, got)
		}
	})
}
