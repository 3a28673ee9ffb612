package authz

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/big"
	"strings"
)

// The JWS work of the hot path: split the compact form, decode the header,
// verify the signature with the standard library. jwx stays the reference:
// the differential test and FuzzVerifyAgainstJWX hold this code to
// jwx's verdicts.

// jwsHeader is the part of a JOSE header that verification reads. jku, x5u,
// jwk and x5c are deliberately not decoded: keys come from the provider's
// key set only (RFC 8725 §3.10).
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  *string         `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// compact is a token split into its parts.
type compact struct {
	header     jwsHeader
	payload    []byte // decoded payload JSON
	rawPayload string // base64url payload, as in the token
	signing    string // header "." payload: the signing input
	sig        []byte
}

// parseCompact splits and decodes a JWS compact serialization. It returns a
// description of the problem when the token is malformed.
func parseCompact(tok string) (*compact, string) {
	h, rest, ok1 := strings.Cut(tok, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, "not a JWS compact serialization"
	}
	if h == "" || p == "" || s == "" {
		return nil, "empty token part"
	}
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, "header is not base64url"
	}
	c := &compact{rawPayload: p, signing: tok[:len(h)+1+len(p)]}
	if err := strictUnmarshal(hb, &c.header); err != nil {
		return nil, "header is not a JSON object"
	}
	if c.header.Crit != nil {
		return nil, "crit header not supported"
	}
	if c.payload, err = base64.RawURLEncoding.DecodeString(p); err != nil {
		return nil, "payload is not base64url"
	}
	if c.sig, err = base64.RawURLEncoding.DecodeString(s); err != nil {
		return nil, "signature is not base64url"
	}
	return c, ""
}

// strictUnmarshal decodes a JSON object and refuses trailing data.
func strictUnmarshal(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errNotObject
	}
	return json.Unmarshal(b, v)
}

type constError string

func (e constError) Error() string { return string(e) }

const errNotObject = constError("not a JSON object")

// algSpec describes a JWS algorithm we verify.
type algSpec struct {
	kind     string // "RSA", "PSS", "EC", "OKP"
	hash     crypto.Hash
	newHash  func() hash.Hash
	curveLen int // bytes per coordinate for ECDSA
	curve    string
}

var algs = map[string]algSpec{
	"RS256": {kind: "RSA", hash: crypto.SHA256, newHash: sha256.New},
	"RS384": {kind: "RSA", hash: crypto.SHA384, newHash: sha512.New384},
	"RS512": {kind: "RSA", hash: crypto.SHA512, newHash: sha512.New},
	"PS256": {kind: "PSS", hash: crypto.SHA256, newHash: sha256.New},
	"PS384": {kind: "PSS", hash: crypto.SHA384, newHash: sha512.New384},
	"PS512": {kind: "PSS", hash: crypto.SHA512, newHash: sha512.New},
	"ES256": {kind: "EC", hash: crypto.SHA256, newHash: sha256.New, curveLen: 32, curve: "P-256"},
	"ES384": {kind: "EC", hash: crypto.SHA384, newHash: sha512.New384, curveLen: 48, curve: "P-384"},
	"ES512": {kind: "EC", hash: crypto.SHA512, newHash: sha512.New, curveLen: 66, curve: "P-521"},
	"EdDSA": {kind: "OKP"},
}

// SupportedAlgorithm reports whether alg is an asymmetric JWS algorithm
// jwt-authz verifies. HS* are not: a shared secret has no place in a
// verifier's config, and refusing them closes the RSA-key-as-HMAC-secret
// attack by construction.
func SupportedAlgorithm(alg string) bool {
	_, ok := algs[alg]
	return ok
}

// keyFits reports whether k may verify a token signed with alg: the JWK's
// alg, when set, equals it, and the key's type and curve fit it.
func keyFits(k *Key, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	spec, ok := algs[alg]
	if !ok {
		return false
	}
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		return spec.kind == "RSA" || spec.kind == "PSS"
	case *ecdsa.PublicKey:
		return spec.kind == "EC" && pub.Curve.Params().Name == spec.curve
	case ed25519.PublicKey:
		return spec.kind == "OKP"
	}
	return false
}

// verifySignature checks sig over signing with key k under alg. The caller
// has checked keyFits.
func verifySignature(alg string, k *Key, signing string, sig []byte) bool {
	spec := algs[alg]
	if spec.kind == "OKP" {
		pub, ok := k.Public.(ed25519.PublicKey)
		return ok && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, []byte(signing), sig)
	}
	h := spec.newHash()
	h.Write([]byte(signing))
	digest := h.Sum(nil)
	switch spec.kind {
	case "RSA":
		pub, ok := k.Public.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(pub, spec.hash, digest, sig) == nil
	case "PSS":
		pub, ok := k.Public.(*rsa.PublicKey)
		// RFC 7518 §3.5: the salt is as long as the hash.
		return ok && rsa.VerifyPSS(pub, spec.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case "EC":
		pub, ok := k.Public.(*ecdsa.PublicKey)
		// RFC 7518 §3.4: R and S as fixed-width big-endian, not ASN.1.
		if !ok || len(sig) != 2*spec.curveLen {
			return false
		}
		r := new(big.Int).SetBytes(sig[:spec.curveLen])
		s := new(big.Int).SetBytes(sig[spec.curveLen:])
		return ecdsa.Verify(pub, digest, r, s)
	}
	return false
}
