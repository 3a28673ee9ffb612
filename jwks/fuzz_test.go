package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// FuzzJWKSDocument feeds arbitrary JWKS documents to the parser: it must
// never panic, and every key it keeps must be one the verifier may use.
func FuzzJWKSDocument(f *testing.F) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	var keys []any
	for i, raw := range []any{rsaKey.Public(), ecKey.Public(), edKey.Public()} {
		k, err := jwk.FromRaw(raw)
		if err != nil {
			f.Fatal(err)
		}
		k.Set(jwk.KeyIDKey, string(rune('a'+i)))
		k.Set(jwk.KeyUsageKey, "sig")
		keys = append(keys, k)
	}
	doc, _ := json.Marshal(map[string]any{"keys": keys})
	f.Add(doc)
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","use":"enc"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`not json{`))
	f.Add([]byte(`{"keys":{}}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"7P___________________________________________38"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","e":"AQ","n":"` + base64.RawURLEncoding.EncodeToString(rsaKey.N.Bytes()) + `"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := parseKeySet(doc, []string{"RS256", "ES256", "EdDSA", "PS256"})
		if err != nil {
			if s != nil {
				t.Fatal("a set and an error")
			}
			return
		}
		if len(s.keys) == 0 || len(s.keys) != len(s.info) {
			t.Fatalf("inconsistent set: %d keys, %d infos", len(s.keys), len(s.info))
		}
		for i, k := range s.keys {
			if s.info[i].Use == "enc" {
				t.Fatal("an encryption key was kept")
			}
			switch pub := k.Public.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() < 2048 || pub.E < 3 || pub.E%2 == 0 {
					t.Fatalf("RSA key of %d bits, e=%d kept", pub.N.BitLen(), pub.E)
				}
			case *ecdsa.PublicKey:
				if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
					t.Fatal("EC point not on its curve kept")
				}
			case ed25519.PublicKey:
				if len(pub) != ed25519.PublicKeySize {
					t.Fatal("short Ed25519 key kept")
				}
				if lowOrderByX25519(t, pub) {
					t.Fatalf("small-order Ed25519 key %x kept", []byte(pub))
				}
			default:
				t.Fatalf("key of type %T kept", pub)
			}
		}
	})
}
