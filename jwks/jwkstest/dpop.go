package jwkstest

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DPoPKey is a client's DPoP key (RFC 9449) for tests. It signs proofs
// with go-jose, a JOSE library independent of the verifier under test
// (typ dpop+jwt, the public jwk embedded), and JKT is go-jose's RFC 7638
// SHA-256 thumbprint of it, as a token's cnf.jkt names it. Safe for
// concurrent use.
type DPoPKey struct {
	Private crypto.Signer
	Alg     string
	JKT     string
	signer  jose.Signer
}

// NewDPoPKey generates a key for alg (see GenerateKey).
func NewDPoPKey(t testing.TB, alg string) *DPoPKey {
	t.Helper()
	priv, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	return &DPoPKey{Private: priv, Alg: alg, JKT: base64.RawURLEncoding.EncodeToString(tp), signer: s}
}

// Sign makes a proof of the payload as given (any JSON, or not).
func (k *DPoPKey) Sign(t testing.TB, payload []byte) string {
	t.Helper()
	obj, err := k.signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SignClaims makes a proof of claims.
func (k *DPoPKey) SignClaims(t testing.TB, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return k.Sign(t, b)
}

var dpopJTI atomic.Uint64

// ProofClaims are the claims of a good proof for a request with token:
// a fresh jti, htm, htu, iat and ath.
func ProofClaims(method, htu, token string, iat time.Time) map[string]any {
	ath := sha256.Sum256([]byte(token))
	return map[string]any{
		"jti": fmt.Sprintf("jti-%d-%d", time.Now().UnixNano(), dpopJTI.Add(1)),
		"htm": method,
		"htu": htu,
		"iat": iat.Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(ath[:]),
	}
}

// Proof makes a good proof for a request with token, made at iat.
func (k *DPoPKey) Proof(t testing.TB, method, htu, token string, iat time.Time) string {
	t.Helper()
	return k.SignClaims(t, ProofClaims(method, htu, token, iat))
}

// PublicJWK is the key's public JWK as a JSON object, for proofs made by
// hand.
func (k *DPoPKey) PublicJWK(t testing.TB) map[string]any {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: k.Private.Public()}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
