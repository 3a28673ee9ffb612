package authz_test

// The differential test: our direct JWS path (authz/jws.go, verify.go)
// against two independent JOSE libraries, jwx (the reference) and go-jose
// v4. All see the same key set and clock; for every token of a corpus of
// valid, forged and malformed tokens, and of generated odd spellings of
// signed tokens, each library reaches our verdict, or we are the stricter
// one: we refuse as malformed_token a token that breaks one of our
// one-spelling rules (strictViolation, written on go-jose's JSON parser,
// which refuses duplicate members by itself), and never accept a token a
// library refuses.
//
// The oracle is jwx with the RFC rules our path applies and jwx v2.1 leaves
// to the caller, each one line below and named in oracleDeny:
//   - RFC 8725 §3.1: the header's alg must be the key's alg. jwx's
//     WithKeySet verifies with the JWK's alg and ignores the header's, so
//     a token that says RS384 but is signed RS256 passes jwx alone.
//   - RFC 7515 §4.1.11: crit must be understood; we understand none.
//   - RFC 7515 §2/§7.1: base64url without padding, in its one canonical
//     form. jwx's decoder also takes padding and the standard alphabet,
//     and re-encodes the header and payload before verifying, so
//     "eyJ...=" verifies in jwx; go-jose takes set trailing bits and
//     skips CR/LF.
//   - RFC 8725 §3.1: alg none is refused as such, whatever the signature
//     part holds (an empty one included).
//   - time claims must be JSON numbers (RFC 7519 §2 NumericDate); jwx also
//     takes numeric strings.
//   - RFC 7518 §3.5: the PSS salt is as long as the hash. jwx verifies PS*
//     with rsa.VerifyPSS(..., nil), which accepts any salt length.
//   - a kid, when present, selects the key: jwx's WithRequireKid(false)
//     would try every key, so the oracle asks for the kid when there is one.
//   - exp is required (the provider's rule; go-jose leaves it optional).

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
	"fmt"
	"io"
	mrand "math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
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

// rfcParts splits tok and applies the RFC rules both oracles need before
// a library reads it (see the top): three parts; alg none refused as such,
// whatever the signature part (RFC 8725 §3.1); each part canonical
// base64url without padding (RFC 7515 §2). class is "" when they hold.
func rfcParts(tok string) (parts []string, class string, err error) {
	parts = strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, oracleMalformed, errors.New("not three parts")
	}
	if unsignedHeader(parts[0]) {
		return nil, oracleAlg, errors.New("alg none")
	}
	for _, p := range parts {
		if !b64urlPart.MatchString(p) || !canonical(p) {
			return nil, oracleMalformed, errors.New("not canonical base64url")
		}
	}
	return parts, "", nil
}

// oracle decides tok with jwx in the order our path uses (parse, issuer,
// algorithm, signature, claims), so that the class of a denial is
// comparable. It returns the class and jwx's error for messages.
func oracle(k *diffKeySet, tok string) (string, error) {
	parts, class, err := rfcParts(tok)
	if class != "" {
		return class, err
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
		if !pssHashLen(&pub, parts) {
			return oracleSignature, errors.New("PSS salt is not the hash length")
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

// joseAlgs is every signature algorithm go-jose parses: the allowlist is
// applied by the oracle, after the issuer, as our path does.
var joseAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512}

// joseOracle decides tok with go-jose v4 and the RFC rules at the top, in
// the order our path uses, like oracle does with jwx.
func joseOracle(k *diffKeySet, tok string) (string, error) {
	parts, class, err := rfcParts(tok)
	if class != "" {
		return class, err
	}
	obj, err := jose.ParseSignedCompact(tok, joseAlgs)
	if err != nil {
		return oracleMalformed, err
	}
	var hdr map[string]any
	if err := josejson.Unmarshal(mustDecode(parts[0]), &hdr); err != nil {
		return oracleMalformed, err
	}
	if _, ok := hdr["crit"]; ok {
		return oracleMalformed, errors.New("crit")
	}
	payload := obj.UnsafePayloadWithoutVerification()
	var pm map[string]any
	if err := josejson.Unmarshal(payload, &pm); err != nil {
		return oracleMalformed, err
	}
	if iss, _ := pm["iss"].(string); iss != diffIssuer {
		return oracleIssuer, errors.New("issuer")
	}
	alg := obj.Signatures[0].Header.Algorithm
	allowed := false
	for _, a := range diffAlgs {
		allowed = allowed || a == alg
	}
	if !allowed {
		return oracleAlg, errors.New("algorithm not allowed")
	}
	kid, hasKid := hdr["kid"].(string)
	var used *authz.Key
	for _, key := range k.static {
		if hasKid && key.ID != kid {
			continue
		}
		// RFC 8725 §3.1: the key's alg is the header's.
		if key.Algorithm == alg {
			if _, err := obj.Verify(key.Public); err == nil {
				used = key
				break
			}
		}
		if hasKid {
			break // the first key with the kid decides
		}
	}
	if used == nil {
		return oracleSignature, errors.New("no key verifies")
	}
	if strings.HasPrefix(alg, "PS") && !pssHashLen(used.Public.(*rsa.PublicKey), parts) {
		return oracleSignature, errors.New("PSS salt is not the hash length")
	}
	var c josejwt.Claims
	if err := josejson.Unmarshal(payload, &c); err != nil {
		return oracleMalformed, err
	}
	if c.Expiry == nil {
		return oracleMissing, errors.New("no exp")
	}
	err = c.ValidateWithLeeway(josejwt.Expected{AnyAudience: josejwt.Audience{diffAud}, Time: diffNow}, diffSkew)
	switch {
	case err == nil:
		return oracleOK, nil
	case errors.Is(err, josejwt.ErrExpired):
		return oracleExpired, err
	case errors.Is(err, josejwt.ErrNotValidYet), errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return oracleNotYet, err
	case errors.Is(err, josejwt.ErrInvalidAudience):
		return oracleAudience, err
	}
	return "unclassified", err
}

// pssHashLen checks a PS256 signature with the salt as long as the hash
// (RFC 7518 §3.5; both libraries accept any salt length).
func pssHashLen(pub *rsa.PublicKey, parts []string) bool {
	d := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
	return rsa.VerifyPSS(pub, crypto.SHA256, d[:], mustDecode(parts[2]), opts) == nil
}

// strictViolation names the one-spelling rule tok breaks, "" for none. It
// is written apart from authz/jws.go, on go-jose's JSON parser (which
// matches names exactly and refuses duplicate members at any depth and
// data after the value): non-canonical base64url; a header or payload
// that is not one JSON object with unique member names (a header without
// even whitespace around it); a header without
// an exact-case alg, or whose alg, kid or typ is not a string; a date
// claim that is not a number in [0, year 10000).
func strictViolation(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "parts"
	}
	for _, p := range parts {
		if !b64urlPart.MatchString(p) || !canonical(p) {
			return "base64url"
		}
	}
	hb := mustDecode(parts[0])
	if !utf8.Valid(hb) || !utf8.Valid(mustDecode(parts[1])) {
		return "utf-8"
	}
	if len(hb) < 2 || hb[0] != '{' || hb[len(hb)-1] != '}' {
		return "header whitespace"
	}
	var hdr map[string]any
	if err := josejson.Unmarshal(hb, &hdr); err != nil {
		return "header json: " + err.Error()
	}
	if _, ok := hdr["alg"].(string); !ok {
		return "header alg"
	}
	if _, ok := hdr["crit"]; ok {
		return "header crit" // any crit, null included: we understand none
	}
	for _, n := range []string{"kid", "typ"} {
		if v, ok := hdr[n]; ok {
			if _, isStr := v.(string); !isStr {
				return "header " + n
			}
		}
	}
	r := strings.NewReader(string(mustDecode(parts[1])))
	d := josejson.NewDecoder(r)
	d.SetNumberType(josejson.UnmarshalJSONNumber)
	var pm map[string]any
	if err := d.Decode(&pm); err != nil {
		return "payload json: " + err.Error()
	}
	if rest, _ := io.ReadAll(io.MultiReader(d.Buffered(), r)); strings.TrimSpace(string(rest)) != "" {
		return "payload trailing data"
	}
	if pm == nil {
		return "payload null"
	}
	var floats any
	if err := josejson.Unmarshal(mustDecode(parts[1]), &floats); err != nil {
		return "payload number: " + err.Error()
	}
	for _, n := range []string{"exp", "nbf", "iat"} {
		v, ok := pm[n]
		if !ok {
			continue
		}
		num, isNum := v.(josejson.Number)
		if !isNum {
			return "date " + n
		}
		f, err := num.Float64()
		if err != nil || strings.HasPrefix(string(num), "-") || f >= 253402300800 {
			return "date " + n
		}
	}
	return ""
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
		return jwkstest.With(map[string]any{
			"iss": diffIssuer, "sub": "client-1", "aud": diffAud,
			"iat": diffNow.Add(-time.Minute).Unix(), "exp": diffNow.Add(time.Hour).Unix(),
		}, mod)
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
	claimsText := string(mustJSON(cl(nil)))
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
		// One spelling per token.
		{"header_names_upper_case", raw(`{"ALG":"RS256","KID":"rsa"}`, claimsText), authz.ReasonMalformedToken},
		{"header_kid_other_case", raw(`{"alg":"RS256","Kid":"rsa"}`, claimsText), authz.ReasonOK}, // no kid: any key
		{"header_dup_alg", raw(`{"alg":"none","alg":"RS256","kid":"rsa"}`, claimsText), authz.ReasonMalformedToken},
		{"header_dup_kid", raw(`{"kid":"ps","alg":"RS256","kid":"rsa"}`, claimsText), authz.ReasonMalformedToken},
		{"header_nested_dup", raw(`{"alg":"RS256","kid":"rsa","x":[{"a":1,"a":1}]}`, claimsText), authz.ReasonMalformedToken},
		{"header_escaped_names", raw(`{"\u0061lg":"RS256","\u006bid":"rsa"}`, claimsText), authz.ReasonOK},
		{"header_escaped_dup", raw(`{"alg":"RS256","\u0061lg":"RS256","kid":"rsa"}`, claimsText), authz.ReasonMalformedToken},
		{"header_trailing_junk", raw(`{"alg":"RS256","kid":"rsa"}}`, claimsText), authz.ReasonMalformedToken},
		{"header_outer_space", raw(` {"alg":"RS256","kid":"rsa"}`, claimsText), authz.ReasonMalformedToken},
		{"header_kid_null", raw(`{"alg":"RS256","kid":null}`, claimsText), authz.ReasonMalformedToken},
		{"header_kid_number", raw(`{"alg":"RS256","kid":1}`, claimsText), authz.ReasonMalformedToken},
		{"header_no_alg", raw(`{"kid":"rsa"}`, claimsText), authz.ReasonMalformedToken},
		{"header_crit_null", raw(`{"alg":"RS256","kid":"rsa","crit":null}`, claimsText), authz.ReasonMalformedToken},
		{"payload_dup_iss", raw(`{"alg":"RS256","kid":"rsa"}`, `{"iss":"https://evil.example/",`+claimsText[1:]), authz.ReasonMalformedToken},
		{"payload_dup_exp", raw(`{"alg":"RS256","kid":"rsa"}`, claimsText[:len(claimsText)-1]+`,"exp":1}`), authz.ReasonMalformedToken},
		{"payload_nested_dup", raw(`{"alg":"RS256","kid":"rsa"}`, claimsText[:len(claimsText)-1]+`,"org":{"id":"a","id":"b"}}`), authz.ReasonMalformedToken},
		{"payload_names_other_case", raw(`{"alg":"RS256","kid":"rsa"}`, claimsText[:len(claimsText)-1]+`,"org":{"id":"a","ID":"b"}}`), authz.ReasonOK},
		{"payload_trailing_brace_junk", raw(`{"alg":"RS256","kid":"rsa"}`, claimsText+`}junk`), authz.ReasonMalformedToken},
		{"payload_two_objects", raw(`{"alg":"RS256","kid":"rsa"}`, claimsText+` {}`), authz.ReasonMalformedToken},
		{"payload_whitespace", raw(`{"alg":"RS256","kid":"rsa"}`, " \t"+claimsText+"\r\n"), authz.ReasonOK},
		{"payload_number_overflow", raw(`{"alg":"RS256","kid":"rsa"}`, claimsText[:len(claimsText)-1]+`,"x":1e400}`), authz.ReasonMalformedToken},
		{"exp_float_form", raw(`{"alg":"RS256","kid":"rsa"}`, withExp(claimsText, fmt.Sprintf("%d.0e0", diffNow.Add(time.Hour).Unix()))), authz.ReasonOK},
		{"exp_1e300", raw(`{"alg":"RS256","kid":"rsa"}`, withExp(claimsText, "1e300")), authz.ReasonMalformedToken},
		{"exp_year_10000", raw(`{"alg":"RS256","kid":"rsa"}`, withExp(claimsText, "253402300800")), authz.ReasonMalformedToken},
		{"exp_negative_zero", raw(`{"alg":"RS256","kid":"rsa"}`, withExp(claimsText, "-0")), authz.ReasonMalformedToken},
		{"exp_null", raw(`{"alg":"RS256","kid":"rsa"}`, withExp(claimsText, "null")), authz.ReasonMalformedToken},
		{"iat_negative", sign("RS256", k.rsa, "rsa", map[string]any{"iat": -9000000000}), authz.ReasonMalformedToken},
		{"sig_trailing_bits", h + "." + p + "." + setTrailingBit(s), authz.ReasonMalformedToken},
		{"payload_trailing_bits", raw64(k.rsa, h, setTrailingBit(oddLength(claimsText))), authz.ReasonMalformedToken},
		{"payload_newline", raw64(k.rsa, h, p[:10]+"\n"+p[10:]), authz.ReasonMalformedToken},
	}
}

// oddSpellings generates n tokens whose header or payload is spelled
// oddly — names in another case or with unicode escapes, duplicate members
// (nested ones too), data after the object, whitespace, numbers in odd
// forms, non-canonical base64url — each signed RS256 with the rsa key over
// exactly its text, so that only the spelling decides.
func oddSpellings(tb testing.TB, rng *mrand.Rand, n int) []diffCase {
	tb.Helper()
	k := diffKeys(tb)
	enc := base64.RawURLEncoding
	signText := func(h64, p64 string) string {
		in := h64 + "." + p64
		d := sha256.Sum256([]byte(in))
		sig, err := rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, d[:])
		if err != nil {
			tb.Fatal(err)
		}
		return in + "." + enc.EncodeToString(sig)
	}
	headers := []string{
		`{"alg":"RS256","kid":"rsa"}`, `{"alg":"RS256","kid":"rsa","typ":"JWT"}`, `{"alg":"RS256"}`,
		`{"ALG":"RS256","KID":"rsa"}`, `{"Alg":"RS256","kid":"rsa"}`, `{"alg":"RS256","Kid":"rsa"}`,
		`{"alg":"RS256","kid":"rsa","alg":"RS256"}`, `{"alg":"none","alg":"RS256","kid":"rsa"}`,
		`{"kid":"ps","alg":"RS256","kid":"rsa"}`, `{"alg":"RS256","kid":"rsa","x":{"a":1,"a":2}}`,
		`{"\u0061lg":"RS256","kid":"rsa"}`, `{"alg":"RS256","\u006bid":"rsa"}`, `{"\u0041LG":"RS256","kid":"rsa"}`,
		`{"alg":"RS\u0032\u00356","kid":"rsa"}`, `{"alg":"RS256","kid":"rsa","typ":"JWT","TYP":"x"}`,
		` {"alg":"RS256","kid":"rsa"}` + "\n", `{"alg":"RS256","kid":"rsa"}x`, `{"alg":"RS256","kid":"rsa"}{}`,
		`{"alg":"RS256","kid":"rsa"}}`, `{"alg":"RS256","kid":null}`, `{"alg":"RS256","kid":1}`, `{"alg":"RS256","kid":"rsa","typ":7}`,
		`{"alg":"RS256","kid":"rsa","alg":"RS256","kid":"rsa"}`, `{"alg":"RS256","kid":"rsa","x":[{"b":1},{"b":1,"b":1}]}`,
		`{"alg":"RS256","kid":"rsa","crit":null}`,
	}
	iat, exp := diffNow.Add(-time.Minute).Unix(), diffNow.Add(time.Hour).Unix()
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	members := func() []string {
		return []string{`"iss":` + q(diffIssuer), `"sub":"client-1"`, `"aud":` + q(diffAud),
			fmt.Sprintf(`"iat":%d`, iat), fmt.Sprintf(`"exp":%d`, exp)}
	}
	expForms := []string{
		fmt.Sprintf("%d.0", exp), fmt.Sprintf("%de0", exp), fmt.Sprintf("%dE+0", exp), fmt.Sprintf("%d.5", exp),
		fmt.Sprintf("%de-3", exp*1000), "1e300", "-1", "-0", "1e3", "20000000000", "253402300799", "253402300800",
		"1e400", `"` + fmt.Sprint(exp) + `"`, "true", "null", "0x10", "01", "1.", ".5", "NaN", "Infinity",
	}
	mutate := []func(m []string) []string{
		func(m []string) []string { m[0] = strings.Replace(m[0], `"iss"`, `"ISS"`, 1); return m },
		func(m []string) []string { m[4] = strings.Replace(m[4], `"exp"`, `"Exp"`, 1); return m },
		func(m []string) []string { return append([]string{`"iss":"https://evil.example/"`}, m...) },
		func(m []string) []string { return append(m, `"iss":"https://evil.example/"`) },
		func(m []string) []string { return append([]string{`"exp":1`}, m...) },
		func(m []string) []string { return append([]string{`"aud":"other"`}, m...) },
		func(m []string) []string { return append(m, `"org":{"id":"a","tier":"x","id":"b"}`) },
		func(m []string) []string { return append(m, `"perms":[{"a":1},{"a":1,"a":2}]`) },
		func(m []string) []string { return append(m, `"org":{"id":"a","ID":"b"}`) },
		func(m []string) []string { m[0] = strings.Replace(m[0], `"iss"`, `"\u0069ss"`, 1); return m },
		func(m []string) []string { m[4] = strings.Replace(m[4], `"exp"`, `"e\u0078p"`, 1); return m },
		func(m []string) []string { m[4] = `"exp":` + expForms[rng.IntN(len(expForms))]; return m },
		func(m []string) []string { m[3] = `"iat":` + expForms[rng.IntN(len(expForms))]; return m },
		func(m []string) []string { return append(m, `"nbf":`+expForms[rng.IntN(len(expForms))]) },
		func(m []string) []string { m[3] = `"iat":-9000000000`; return m },
		func(m []string) []string { return append(m, `"x":1e400`) },
	}
	wrap := []func(string) string{
		func(s string) string { return s },
		func(s string) string { return s + "}" },
		func(s string) string { return s + "junk" },
		func(s string) string { return s + " {}" },
		func(s string) string { return " \t" + s + "\r\n " },
		func(s string) string { return s + "\x00" },
	}
	noncanonical := func(part string) string {
		switch rng.IntN(3) {
		case 0:
			if len(part)%4 == 0 {
				return part + "=="[:rng.IntN(2)+1]
			}
			// Set a trailing bit of the last character.
			const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			v := strings.IndexByte(alpha, part[len(part)-1])
			return part[:len(part)-1] + string(alpha[v^1])
		case 1:
			i := 1 + rng.IntN(len(part)-1) // inside: around the token is extraction's business
			return part[:i] + "\n" + part[i:]
		}
		return part + "="
	}
	out := make([]diffCase, 0, n)
	for i := range n {
		h := headers[0]
		if rng.IntN(2) == 0 {
			h = headers[rng.IntN(len(headers))]
		}
		m := members()
		for range rng.IntN(3) {
			m = mutate[rng.IntN(len(mutate))](m)
		}
		payload := "{" + strings.Join(m, ",") + "}"
		if rng.IntN(4) == 0 {
			payload = wrap[rng.IntN(len(wrap))](payload)
		}
		h64, p64 := enc.EncodeToString([]byte(h)), enc.EncodeToString([]byte(payload))
		switch rng.IntN(12) {
		case 0:
			h64 = noncanonical(h64)
		case 1:
			p64 = noncanonical(p64)
		}
		out = append(out, diffCase{name: fmt.Sprintf("odd_%03d", i), token: signText(h64, p64)})
	}
	return out
}

// checkOneParse holds one token to the one-parse invariant: we accept only
// what both libraries accept and our own rules allow; a token that breaks
// a one-spelling rule is refused (at parse, malformed_token); and where a
// library's verdict differs from ours, we are the stricter one because of
// such a rule.
func checkOneParse(t *testing.T, a *authz.Authorizer, k *diffKeySet, tok string) {
	t.Helper()
	if strings.TrimSpace(tok) != tok {
		return // how a token is extracted is FuzzBearerToken's business
	}
	got := ours(a, tok)
	viol := strictViolation(tok)
	jwxClass, jwxErr := oracle(k, tok)
	joseClass, joseErr := joseOracle(k, tok)
	if got == authz.ReasonOK && (jwxClass != oracleOK || joseClass != oracleOK || viol != "") {
		t.Fatalf("we accept %q; jwx %q (%v), go-jose %q (%v), rule broken %q", tok, jwxClass, jwxErr, joseClass, joseErr, viol)
	}
	if viol != "" && !strings.HasPrefix(viol, "date") && got != authz.ReasonMalformedToken && got != authz.ReasonDisallowedAlgorithm {
		t.Fatalf("%q breaks %q but ours is %q", tok, viol, got)
	}
	for lib, class := range map[string]string{"jwx": jwxClass, "go-jose": joseClass} {
		// Both deny: the verdict agrees (a token with two faults may be
		// refused for either). A library that accepts what we refuse
		// needs one of our rules to explain it.
		if class != oracleOK || got == authz.ReasonOK || viol != "" {
			continue
		}
		t.Fatalf("%q: ours %q, %s accepts (jwx: %v; go-jose: %v), and no rule of ours explains it", tok, got, lib, jwxErr, joseErr)
	}
}

// TestOneParse runs the corpus and generated odd spellings of signed tokens
// through checkOneParse.
func TestOneParse(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	a := diffAuthorizer(t)
	k := diffKeys(t)
	cases := append(diffCorpus(t), oddSpellings(t, mrand.New(mrand.NewPCG(seed, 7515)), 300)...)
	stricter := 0
	for _, tc := range cases {
		checkOneParse(t, a, k, tc.token)
		if strictViolation(tc.token) != "" {
			stricter++
		}
	}
	t.Logf("%d tokens, %d refused by a one-spelling rule", len(cases), stricter)
}

// withExp replaces the exp member of a claims text with a literal.
func withExp(claims, lit string) string {
	return regexp.MustCompile(`"exp":[0-9]+`).ReplaceAllLiteralString(claims, `"exp":`+lit)
}

// setTrailingBit spells a base64url part with a trailing bit set: the same
// bytes to a lenient decoder, another spelling of them.
func setTrailingBit(part string) string {
	if len(part)%4 == 0 {
		panic("no trailing bits in " + part)
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	v := strings.IndexByte(alpha, part[len(part)-1])
	return part[:len(part)-1] + string(alpha[v|1])
}

// oddLength encodes text, padded with spaces so that its last base64url
// character has trailing bits.
func oddLength(text string) string {
	for base64.RawURLEncoding.EncodedLen(len(text))%4 == 0 {
		text += " "
	}
	return base64.RawURLEncoding.EncodeToString([]byte(text))
}

// raw64 signs the base64url text h64.p64 as it is, RS256.
func raw64(key *rsa.PrivateKey, h64, p64 string) string {
	in := h64 + "." + p64
	d := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		panic(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
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
	testCorpusAgainst(t, "jwx", oracle)
}

// TestVerifyAgainstGoJOSE is TestVerifyAgainstJWX with go-jose v4 as the
// oracle: a second, independent reading of every corpus token.
func TestVerifyAgainstGoJOSE(t *testing.T) {
	t.Parallel()
	testCorpusAgainst(t, "go-jose", joseOracle)
}

// testCorpusAgainst checks each corpus token: our reason is the case's,
// and the library's verdict agrees with it.
func testCorpusAgainst(t *testing.T, lib string, decide func(*diffKeySet, string) (string, error)) {
	a := diffAuthorizer(t)
	k := diffKeys(t)
	for _, tc := range diffCorpus(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ours(a, tc.token)
			if got != tc.want {
				t.Errorf("ours: got %q, want %q", got, tc.want)
			}
			class, err := decide(k, tc.token)
			if !agrees(class, got, tc.token) {
				t.Errorf("%s: got %q (%v), want %q to agree with our %q", lib, class, err, oracleClass[got], got)
			}
		})
	}
}

// agrees reports whether a library's class fits our reason: the same, or
// we refuse as malformed a token that breaks one of our one-spelling rules.
func agrees(class string, got authz.Reason, tok string) bool {
	return class == oracleClass[got] || got == authz.ReasonMalformedToken && strictViolation(tok) != ""
}

// FuzzVerifyAgainstJWX mutates the corpus and generated odd spellings:
// whatever the token, we accept only what jwx and go-jose accept (with the
// RFC rules above) and our one-spelling rules allow, and a library accepts
// what we refuse only when one of those rules explains it. On a denial, a
// signature that jwx refuses is never one we take.
func FuzzVerifyAgainstJWX(f *testing.F) {
	for _, tc := range diffCorpus(f) {
		f.Add(tc.token)
	}
	for _, tc := range oddSpellings(f, mrand.New(mrand.NewPCG(1, 2)), 40) {
		f.Add(tc.token)
	}
	a := diffAuthorizer(f)
	k := diffKeys(f)
	f.Fuzz(func(t *testing.T, tok string) {
		if len(tok) > authz.MaxTokenBytes || strings.TrimSpace(tok) != tok || tok == "" {
			return // extraction's business (FuzzBearerToken)
		}
		checkOneParse(t, a, k, tok)
		got := ours(a, tok)
		class, err := oracle(k, tok)
		if class == oracleSignature && oracleClass[got] != oracleSignature && got != authz.ReasonMalformedToken {
			// A signature jwx refuses may still be malformed for us
			// first (we decode the payload before verifying).
			t.Fatalf("jwx refused the signature (%v), ours %q", err, got)
		}
	})
}
