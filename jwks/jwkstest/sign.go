package jwkstest

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// SignToken signs claims with key as a compact JWS. The protected header is
// {alg, typ: JWT} plus header, whose entries override or add; a nil value
// deletes an entry. When header sets an "alg" other than alg, the token
// claims that algorithm but is signed with alg (for algorithm-confusion
// tests).
func SignToken(t testing.TB, alg string, key crypto.Signer, header map[string]any, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("jwkstest: marshal claims: %v", err)
	}
	h := map[string]any{"alg": alg, "typ": "JWT"}
	for name, v := range header {
		if v == nil {
			delete(h, name)
			continue
		}
		h[name] = v
	}
	if claimed, ok := h["alg"]; !ok || claimed != alg {
		// jws.Sign always writes the signer's alg; craft the lying
		// header by hand.
		return signRaw(t, alg, key, h, payload)
	}
	hdrs := jws.NewHeaders()
	for name, v := range h {
		if name == "alg" {
			continue
		}
		if err := hdrs.Set(name, v); err != nil {
			t.Fatalf("jwkstest: header %q: %v", name, err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(alg), key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatalf("jwkstest: sign: %v", err)
	}
	return string(tok)
}

func signRaw(t testing.TB, alg string, key crypto.Signer, header map[string]any, payload []byte) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatalf("jwkstest: marshal header: %v", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(hb) + "." + enc.EncodeToString(payload)
	signer, err := jws.NewSigner(jwa.SignatureAlgorithm(alg))
	if err != nil {
		t.Fatalf("jwkstest: signer: %v", err)
	}
	sig, err := signer.Sign([]byte(input), key)
	if err != nil {
		t.Fatalf("jwkstest: sign: %v", err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// With returns a copy of claims with changes applied; a nil value deletes
// the claim.
func With(claims, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims)+len(changes))
	maps.Copy(out, claims)
	for k, v := range changes {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// Unsigned is a token with the protected header {alg, typ: JWT} and claims,
// signed by nothing: its signature part is junk ("AA"), so that it has
// three non-empty parts (alg-none tests).
func Unsigned(alg string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + ".AA"
}

// Tamper changes the claims of tok as With does and keeps its header and
// signature: a token whose signature no longer verifies.
func Tamper(tok string, changes map[string]any) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return tok
	}
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(p, &c)
	nb, _ := json.Marshal(With(c, changes))
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(nb) + "." + parts[2]
}
