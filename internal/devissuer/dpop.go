package devissuer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/jwtauthz/jwt-authz/replay"
)

// DPoP proofs of token requests (RFC 9449 §4.3, §5), checked the way an
// authorization server such as Auth0 checks them before it issues a token
// bound to the proof's key (cnf.jkt).
const (
	dpopHeader = "DPoP"
	dpopTyp    = "dpop+jwt"
	// Auth0's defaults for the proof's age: iat at most 300 s in the past,
	// with 30 s of clock leeway either way.
	dpopIATOffset = 300 * time.Second
	dpopIATLeeway = 30 * time.Second
	// maxProofBytes bounds the header; an RSA-4096 proof is about 1.5 KiB.
	maxProofBytes = 8 << 10
)

// DPoPAlgorithms are the proof algorithms the dev-issuer accepts (and
// advertises as dpop_signing_alg_values_supported): asymmetric only.
// Ed25519 is RFC 9864's fully-specified name for EdDSA over Ed25519, which
// clients such as oauth4webapi use.
var DPoPAlgorithms = []string{"ES256", "PS256", "RS256", "EdDSA", algEd25519}

const algEd25519 = "Ed25519"

// privateJWKMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). A proof's jwk must
// have none of them.
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// proofClaims are the claims of a DPoP proof the issuer reads. Pointers and
// json.Number tell a missing claim from an empty one.
type proofClaims struct {
	JTI *string     `json:"jti"`
	HTM *string     `json:"htm"`
	HTU *string     `json:"htu"`
	IAT json.Number `json:"iat"`
}

// errProof is the error_description of an invalid_dpop_proof answer.
type errProof string

func (e errProof) Error() string { return string(e) }

// checkDPoP checks the DPoP header of a token request, if any: none gives
// jkt "" and no error; one valid proof gives its key's RFC 7638 thumbprint;
// anything else an errProof (400 invalid_dpop_proof) or, when the replay
// cache is full, another error (503).
func (iss *Issuer) checkDPoP(r *http.Request) (jkt string, err error) {
	values := r.Header.Values(dpopHeader)
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errProof("exactly one DPoP header is allowed")
	}
	proof := values[0]
	if len(proof) > maxProofBytes {
		return "", errProof("DPoP proof is too long")
	}
	key, alg, err := parseProofHeader(proof)
	if err != nil {
		return "", err
	}
	payload, err := verifyProof(proof, alg, key)
	if err != nil {
		return "", errProof("DPoP proof signature does not verify with its jwk")
	}
	var c proofClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return "", errProof("DPoP proof claims are not a JSON object")
	}
	now := iss.now()
	iat, err := checkProofClaims(c, iss.tokenURL, now)
	if err != nil {
		return "", err
	}
	thumb, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", errProof("DPoP proof jwk has no thumbprint")
	}
	jkt = base64.RawURLEncoding.EncodeToString(thumb)

	// The proof is single-use inside the window it is accepted in: it is
	// accepted up to and including iat+offset+leeway, so it is remembered
	// until a second after.
	fresh, err := iss.proofs.Claim(r.Context(), jkt+" "+*c.JTI, iat.Add(dpopIATOffset+dpopIATLeeway+time.Second))
	switch {
	case errors.Is(err, replay.ErrExpired):
		return "", errProof("DPoP proof is too old")
	case errors.Is(err, replay.ErrInvalidKey):
		return "", errProof("DPoP proof jti is too long")
	case err != nil:
		return "", fmt.Errorf("devissuer: dpop replay cache: %w", err)
	case !fresh:
		return "", errProof("DPoP proof was already used (jti replayed)")
	}
	return jkt, nil
}

// verifyProof checks the signature and returns the payload. jwx v2 does not
// know the name Ed25519, so that one is checked with crypto/ed25519.
func verifyProof(proof string, alg jwa.SignatureAlgorithm, key jwk.Key) ([]byte, error) {
	if alg != algEd25519 {
		return jws.Verify([]byte(proof), jws.WithKey(alg, key))
	}
	var pub ed25519.PublicKey
	if err := key.Raw(&pub); err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(proof, '.')
	sig, err := base64.RawURLEncoding.Strict().DecodeString(proof[i+1:])
	if err != nil || !ed25519.Verify(pub, []byte(proof[:i]), sig) {
		return nil, errors.New("ed25519 signature does not verify")
	}
	return base64.RawURLEncoding.Strict().DecodeString(proof[strings.IndexByte(proof, '.')+1 : i])
}

// parseProofHeader checks the protected header of a compact proof: typ
// dpop+jwt, an accepted asymmetric alg, and a public jwk that suits it.
func parseProofHeader(proof string) (jwk.Key, jwa.SignatureAlgorithm, error) {
	parts := strings.Split(proof, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, "", errProof("DPoP proof is not a compact JWS")
	}
	rawHeader, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return nil, "", errProof("DPoP proof header is not base64url")
	}
	var hdr struct {
		Typ string                     `json:"typ"`
		Alg string                     `json:"alg"`
		JWK map[string]json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(rawHeader, &hdr); err != nil {
		return nil, "", errProof("DPoP proof header is not a JSON object")
	}
	if hdr.Typ != dpopTyp {
		return nil, "", errProof("DPoP proof typ must be dpop+jwt")
	}
	if !slices.Contains(DPoPAlgorithms, hdr.Alg) {
		return nil, "", errProof("DPoP proof alg must be one of " + strings.Join(DPoPAlgorithms, ", "))
	}
	if hdr.JWK == nil {
		return nil, "", errProof("DPoP proof header has no jwk")
	}
	for _, m := range privateJWKMembers {
		if _, ok := hdr.JWK[m]; ok {
			return nil, "", errProof("DPoP proof jwk must be a public key (it has private member " + m + ")")
		}
	}
	rawJWK, err := json.Marshal(hdr.JWK)
	if err != nil {
		return nil, "", errProof("DPoP proof jwk is not a JSON object")
	}
	key, err := jwk.ParseKey(rawJWK)
	if err != nil {
		return nil, "", errProof("DPoP proof jwk is not a valid key")
	}
	alg := jwa.SignatureAlgorithm(hdr.Alg)
	if err := keySuitsAlg(key, alg); err != nil {
		return nil, "", err
	}
	return key, alg, nil
}

func keySuitsAlg(key jwk.Key, alg jwa.SignatureAlgorithm) error {
	switch k := key.(type) {
	case jwk.RSAPublicKey:
		if alg != jwa.RS256 && alg != jwa.PS256 {
			break
		}
		var pub rsa.PublicKey
		if err := k.Raw(&pub); err != nil || pub.N.BitLen() < 2048 {
			return errProof("DPoP proof jwk: RSA keys need at least 2048 bits")
		}
		return nil
	case jwk.ECDSAPublicKey:
		if alg == jwa.ES256 && k.Crv() == jwa.P256 {
			return nil
		}
	case jwk.OKPPublicKey:
		if (alg == jwa.EdDSA || alg == algEd25519) && k.Crv() == jwa.Ed25519 {
			return nil
		}
	}
	return errProof("DPoP proof jwk does not suit alg " + alg.String())
}

// checkProofClaims checks jti, htm, htu and iat, returning iat.
func checkProofClaims(c proofClaims, tokenEndpoint string, now time.Time) (time.Time, error) {
	if c.JTI == nil || *c.JTI == "" {
		return time.Time{}, errProof("DPoP proof has no jti")
	}
	if c.HTM == nil || *c.HTM != http.MethodPost {
		return time.Time{}, errProof("DPoP proof htm must be POST")
	}
	if c.HTU == nil {
		return time.Time{}, errProof("DPoP proof has no htu")
	}
	got, err := normalizeHTU(*c.HTU)
	if err != nil || got != tokenEndpoint {
		return time.Time{}, errProof("DPoP proof htu must be the token endpoint " + tokenEndpoint)
	}
	if c.IAT == "" {
		return time.Time{}, errProof("DPoP proof has no iat")
	}
	secs, err := c.IAT.Float64()
	if err != nil || math.IsNaN(secs) || secs < 0 || secs > 253402300799 { // before year 10000
		return time.Time{}, errProof("DPoP proof iat is not a NumericDate")
	}
	whole := math.Floor(secs)
	iat := time.Unix(int64(whole), int64((secs-whole)*1e9))
	switch {
	case iat.Before(now.Add(-dpopIATOffset - dpopIATLeeway)):
		return time.Time{}, errProof("DPoP proof is too old")
	case iat.After(now.Add(dpopIATLeeway)):
		return time.Time{}, errProof("DPoP proof iat is in the future")
	}
	return iat, nil
}

// normalizeHTU is the syntax-based normalisation of RFC 3986 §6.2.2 that
// RFC 9449 §4.3 asks for, on what an htu can differ in harmlessly: scheme
// and host case, the default port, an empty path; query and fragment are
// ignored. Userinfo is refused.
func normalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}
