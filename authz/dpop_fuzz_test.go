package authz

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

var allProofAlgs = func() map[string]bool {
	m := map[string]bool{}
	for alg := range dpopAlgs {
		m[alg] = true
	}
	return m
}()

// FuzzDPoPProof holds the proof parser to go-jose: whatever parseProof
// accepts, go-jose parses, verifies with the embedded jwk, and computes
// the same RFC 7638 thumbprint for; nothing panics; an accepted proof has
// its claims (jti bounded, htm, htu, iat, ath). go-jose accepts more than
// we do (other spellings), never less for a proof we accept.
func FuzzDPoPProof(f *testing.F) {
	// Seeds signed by go-jose (jwkstest cannot be imported here: it
	// imports jwks, which imports authz).
	sign := func(alg jose.SignatureAlgorithm, key crypto.Signer, payload string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
		if err != nil {
			f.Fatal(err)
		}
		obj, err := s.Sign([]byte(payload))
		if err != nil {
			f.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	claims := `{"jti":"a1","htm":"GET","htu":"https://api.example.com/x","iat":1767225600,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"}`
	f.Add(sign(jose.ES256, ec, claims))
	f.Add(sign(jose.EdDSA, ed, claims))
	f.Add(sign(jose.RS256, rk, claims))
	f.Add(sign(jose.PS256, rk, claims))
	f.Add(sign(jose.ES256, ec, `{"jti":"","htm":"GET"}`))
	f.Add(sign(jose.ES256, ec, `{"jti":"a","jti":"b","htm":"GET","htu":"x","iat":1,"ath":"x"}`))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		p, why := parseProof(raw, allProofAlgs, nil)
		if why != "" {
			return
		}
		if p.jti == "" || len(p.jti) > MaxJTIBytes || p.htm == "" || p.htu == "" || p.ath == "" {
			t.Fatalf("accepted a proof without its claims: %+v", p)
		}
		obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512,
			jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA})
		if err != nil {
			if headerAlg(raw) == "Ed25519" {
				return // go-jose v4 does not know RFC 9864's name
			}
			t.Fatalf("we accept, go-jose cannot parse: %v", err)
		}
		jwk := obj.Signatures[0].Protected.JSONWebKey
		if jwk == nil || !jwk.IsPublic() {
			t.Fatalf("we accept, go-jose sees no public jwk")
		}
		if _, err := obj.Verify(jwk); err != nil {
			t.Fatalf("we accept, go-jose does not verify: %v", err)
		}
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil || base64.RawURLEncoding.EncodeToString(tp) != p.jkt {
			t.Fatalf("thumbprint %s, go-jose %x (%v)", p.jkt, tp, err)
		}
	})
}

func headerAlg(raw string) string {
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var m struct{ Alg string }
	json.Unmarshal(b, &m)
	return m.Alg
}

// TestProofThumbprintRFC7638 checks thumbprint against RFC 7638 §3.1's
// example key.
func TestProofThumbprintRFC7638(t *testing.T) {
	jwk := `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	_, jkt, why := parseProofJWK(json.RawMessage(jwk))
	if why != "" {
		t.Fatal(why)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; jkt != want {
		t.Errorf("thumbprint %s, want %s", jkt, want)
	}
}

// TestNormalizeHTU: what two URLs compare equal as.
func TestNormalizeHTU(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"https://API.Example.com:443/a/b?q=1#f", "https://api.example.com/a/b", true},
		{"HTTP://api.example.com:80", "http://api.example.com/", true},
		{"http://api.example.com:8080/%7e%2f", "http://api.example.com:8080/~%2F", true},
		{"http://[::1]:9001/x", "http://[::1]:9001/x", true},
		{"http://a.example/x/../y", "http://a.example/x/../y", true},
		{"ftp://a.example/", "", false},
		{"http://u:p@a.example/", "", false},
		{"/relative", "", false},
		{"http://a.example:99999999/", "", false},
		{"http://a..example/", "", false},
	} {
		got, ok := normalizeHTU(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzProofMembers holds the proof payload scanner to encoding/json: for
// any payload oneObject accepts (and without escapes, which the scanner
// does not read as the names they spell), it finds the same values.
func FuzzProofMembers(f *testing.F) {
	f.Add([]byte(`{"jti":"a","htm":"GET","htu":"https://x/","iat":1767225600,"ath":"x"}`))
	f.Add([]byte(` { "a" : [1,{"jti":2}], "jti" : "b" , "iat":-1.5e3,"x":{"y":"}"}} `))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if oneObject(b) != nil || bytes.IndexByte(b, '\\') >= 0 {
			return
		}
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil {
			return
		}
		var got proofMembers
		got.read(b)
		for _, name := range proofClaimNames {
			if string(got[name]) != string(want[name]) {
				t.Fatalf("%s: scanner %q, encoding/json %q", name, got[name], want[name])
			}
		}
	})
}
