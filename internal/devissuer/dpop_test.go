package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proofs here are made with crypto/* and encoding/json alone, independently
// of the jwx code that checks them, so that both sides are not wrong the same
// way.

var proofRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// proofKey is a client's DPoP key.
type proofKey struct {
	alg    string
	signer crypto.Signer
}

func newProofKey(t *testing.T, alg string) proofKey {
	t.Helper()
	switch alg {
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return proofKey{alg: alg, signer: k}
	case "RS256", "PS256":
		return proofKey{alg: alg, signer: proofRSAKey()}
	case "EdDSA", "Ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return proofKey{alg: alg, signer: k}
	}
	t.Fatalf("no key for %s", alg)
	return proofKey{}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// publicJWK is the RFC 7517 public JWK of the key, built by hand.
func (k proofKey) publicJWK() map[string]any {
	switch pub := k.signer.Public().(type) {
	case *ecdsa.PublicKey:
		ecdh, _ := pub.ECDH()
		raw := ecdh.Bytes() // 0x04 || X || Y
		return map[string]any{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}
	}
	return nil
}

// thumbprint is RFC 7638 by hand: the required members in lexicographic
// order, no whitespace, SHA-256, base64url.
func thumbprint(t *testing.T, j map[string]any) string {
	t.Helper()
	var members []string
	switch j["kty"] {
	case "EC":
		members = []string{"crv", "kty", "x", "y"}
	case "RSA":
		members = []string{"e", "kty", "n"}
	case "OKP":
		members = []string{"crv", "kty", "x"}
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`"` + m + `":"` + j[m].(string) + `"`)
	}
	sb.WriteByte('}')
	sum := sha256.Sum256([]byte(sb.String()))
	return b64(sum[:])
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact JWS of header and claims with the key.
func (k proofKey) sign(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch k.alg {
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.signer.(*ecdsa.PrivateKey), digest[:])
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.signer.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.signer.(*rsa.PrivateKey), crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "EdDSA", "Ed25519":
		sig = ed25519.Sign(k.signer.(ed25519.PrivateKey), []byte(input))
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

func randomJTI(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// proofParts are a valid proof's header and claims for ts's token endpoint.
func proofParts(t *testing.T, k proofKey, htu string, now time.Time) (header, claims map[string]any) {
	t.Helper()
	header = map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.publicJWK()}
	claims = map[string]any{"jti": randomJTI(t), "htm": "POST", "htu": htu, "iat": now.Unix()}
	return header, claims
}

func proofRequest(t *testing.T, url string, proofs ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(good()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return do(t, req)
}

// tokenClaims decodes the payload of an issued token (its signature is
// checked separately with verify).
func tokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", raw)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func fixedNow() (time.Time, func() time.Time) {
	now := time.Now().Truncate(time.Second)
	return now, func() time.Time { return now }
}

func TestDPoPBoundToken(t *testing.T) {
	t.Parallel()
	now, clock := fixedNow()
	ts := newTestServer(t, Options{Now: clock})
	for _, alg := range DPoPAlgorithms {
		t.Run(alg, func(t *testing.T) {
			k := newProofKey(t, alg)
			h, c := proofParts(t, k, ts.URL+"/oauth/token", now)
			resp := proofRequest(t, ts.URL+"/oauth/token", k.sign(t, h, c))
			if resp.status != http.StatusOK {
				t.Fatalf("status %d, body %s", resp.status, resp.body)
			}
			var tr tokenResponse
			if err := json.Unmarshal(resp.body, &tr); err != nil {
				t.Fatal(err)
			}
			if tr.TokenType != "DPoP" {
				t.Errorf("token_type %q, want DPoP", tr.TokenType)
			}
			if err := verify(t, ts, tr.AccessToken); err != nil {
				t.Fatalf("issued token does not verify: %v", err)
			}
			cnf, _ := tokenClaims(t, tr.AccessToken)["cnf"].(map[string]any)
			want := map[string]any{"jkt": thumbprint(t, k.publicJWK())}
			if len(cnf) != 1 || cnf["jkt"] != want["jkt"] {
				t.Errorf("cnf %v, want %v", cnf, want)
			}
		})
	}
	// Without a proof: a bearer token, no cnf.
	tr := ts.token(t, demoParams("demo-m2m", "demo-m2m-secret"))
	if _, has := tokenClaims(t, tr.AccessToken)["cnf"]; has || tr.TokenType != "Bearer" {
		t.Errorf("no proof: token_type %q, cnf present %v; want Bearer and no cnf", tr.TokenType, has)
	}
}

func TestDPoPInvalidProofs(t *testing.T) {
	t.Parallel()
	now, clock := fixedNow()
	ts := newTestServer(t, Options{Now: clock})
	endpoint := ts.URL + "/oauth/token"
	es, other := newProofKey(t, "ES256"), newProofKey(t, "ES256")
	ed := newProofKey(t, "EdDSA")

	// A URL that differs only harmlessly from the endpoint is accepted.
	host := strings.TrimPrefix(ts.URL, "http://")
	for _, htu := range []string{
		strings.ToUpper("http://"+host) + "/oauth/token",
		"http://" + host + "/oauth/token?x=1#frag",
	} {
		h, c := proofParts(t, es, htu, now)
		if resp := proofRequest(t, endpoint, es.sign(t, h, c)); resp.status != http.StatusOK {
			t.Errorf("htu %s: status %d, body %s; want 200", htu, resp.status, resp.body)
		}
	}

	tests := []struct {
		name   string
		key    proofKey
		edit   func(h, c map[string]any)
		proof  func(valid string) []string // the DPoP header values; nil: the valid proof
		detail string
	}{
		{name: "no typ", key: es, edit: func(h, _ map[string]any) { delete(h, "typ") }, detail: "typ must be dpop+jwt"},
		{name: "typ JWT", key: es, edit: func(h, _ map[string]any) { h["typ"] = "JWT" }, detail: "typ must be dpop+jwt"},
		{name: "alg none", key: es, edit: func(h, _ map[string]any) { h["alg"] = "none" }, detail: "alg must be one of"},
		{name: "alg ES384", key: es, edit: func(h, _ map[string]any) { h["alg"] = "ES384" }, detail: "alg must be one of"},
		{name: "alg does not suit key", key: es, edit: func(h, _ map[string]any) { h["alg"] = "RS256" }, detail: "does not suit alg RS256"},
		{name: "Ed25519 alg with EC key", key: es, edit: func(h, _ map[string]any) { h["alg"] = "Ed25519" }, detail: "does not suit alg Ed25519"},
		{name: "Ed25519 signature of other key", key: ed, edit: func(h, _ map[string]any) {
			h["alg"] = "Ed25519"
			h["jwk"] = newProofKey(t, "Ed25519").publicJWK()
		}, detail: "signature does not verify"},
		{name: "no jwk", key: es, edit: func(h, _ map[string]any) { delete(h, "jwk") }, detail: "has no jwk"},
		{name: "jwk with private d", key: es, edit: func(h, _ map[string]any) {
			d, err := es.signer.(*ecdsa.PrivateKey).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			h["jwk"].(map[string]any)["d"] = b64(d)
		}, detail: "private member d"},
		{name: "okp jwk with private d", key: ed, edit: func(h, _ map[string]any) {
			h["jwk"].(map[string]any)["d"] = b64(ed.signer.(ed25519.PrivateKey).Seed())
		}, detail: "private member d"},
		{name: "symmetric jwk", key: es, edit: func(h, _ map[string]any) {
			h["jwk"] = map[string]any{"kty": "oct", "k": b64([]byte("secret"))}
		}, detail: "private member k"},
		{name: "jwk of another key", key: es, edit: func(h, _ map[string]any) { h["jwk"] = other.publicJWK() }, detail: "signature does not verify"},
		{name: "htm GET", key: es, edit: func(_, c map[string]any) { c["htm"] = "GET" }, detail: "htm must be POST"},
		{name: "htm post", key: es, edit: func(_, c map[string]any) { c["htm"] = "post" }, detail: "htm must be POST"},
		{name: "no htu", key: es, edit: func(_, c map[string]any) { delete(c, "htu") }, detail: "has no htu"},
		{name: "htu other path", key: es, edit: func(_, c map[string]any) { c["htu"] = ts.URL + "/oauth/token2" }, detail: "htu must be the token endpoint"},
		{name: "htu https", key: es, edit: func(_, c map[string]any) { c["htu"] = "https://" + host + "/oauth/token" }, detail: "htu must be the token endpoint"},
		{name: "htu other host", key: es, edit: func(_, c map[string]any) { c["htu"] = "http://127.0.0.2:1/oauth/token" }, detail: "htu must be the token endpoint"},
		{name: "htu userinfo", key: es, edit: func(_, c map[string]any) { c["htu"] = "http://u@" + host + "/oauth/token" }, detail: "htu must be the token endpoint"},
		{name: "no jti", key: es, edit: func(_, c map[string]any) { delete(c, "jti") }, detail: "has no jti"},
		{name: "empty jti", key: es, edit: func(_, c map[string]any) { c["jti"] = "" }, detail: "has no jti"},
		{name: "jti too long", key: es, edit: func(_, c map[string]any) { c["jti"] = strings.Repeat("j", 2000) }, detail: "jti is too long"},
		{name: "no iat", key: es, edit: func(_, c map[string]any) { delete(c, "iat") }, detail: "has no iat"},
		{name: "iat string", key: es, edit: func(_, c map[string]any) { c["iat"] = "now" }, detail: "claims are not a JSON object"},
		{name: "iat too old", key: es, edit: func(_, c map[string]any) { c["iat"] = now.Add(-331 * time.Second).Unix() }, detail: "too old"},
		{name: "iat in the future", key: es, edit: func(_, c map[string]any) { c["iat"] = now.Add(31 * time.Second).Unix() }, detail: "in the future"},
		{name: "iat huge", key: es, edit: func(_, c map[string]any) { c["iat"] = 1e300 }, detail: "not a NumericDate"},
		{name: "two DPoP headers", key: es, proof: func(v string) []string { return []string{v, v} }, detail: "exactly one DPoP header"},
		{name: "not compact", key: es, proof: func(v string) []string { return []string{v + ".x"} }, detail: "not a compact JWS"},
		{name: "signature of other key", key: es, proof: func(v string) []string {
			h, c := proofParts(t, es, endpoint, now)
			h["jwk"] = other.publicJWK()
			forged := other.sign(t, h, c)
			return []string{v[:strings.LastIndex(v, ".")] + forged[strings.LastIndex(forged, "."):]}
		}, detail: "signature does not verify"},
		{name: "HMAC proof", key: es, proof: func(string) []string {
			h, c := proofParts(t, es, endpoint, now)
			h["alg"] = "HS256"
			input := b64(mustJSON(t, h)) + "." + b64(mustJSON(t, c))
			mac := hmac.New(sha256.New, []byte("secret"))
			mac.Write([]byte(input))
			return []string{input + "." + b64(mac.Sum(nil))}
		}, detail: "alg must be one of"},
		{name: "header not base64url", key: es, proof: func(v string) []string { return []string{"e30=" + v[strings.Index(v, "."):]} }, detail: "header is not base64url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, c := proofParts(t, tc.key, endpoint, now)
			if tc.edit != nil {
				tc.edit(h, c)
			}
			proofs := []string{tc.key.sign(t, h, c)}
			if tc.proof != nil {
				proofs = tc.proof(proofs[0])
			}
			resp := proofRequest(t, endpoint, proofs...)
			checkProofError(t, resp, tc.detail)
		})
	}

	// The iat window's edges are inside it.
	for _, iat := range []time.Time{now.Add(-330 * time.Second), now.Add(30 * time.Second)} {
		h, c := proofParts(t, es, endpoint, now)
		c["iat"] = iat.Unix()
		if resp := proofRequest(t, endpoint, es.sign(t, h, c)); resp.status != http.StatusOK {
			t.Errorf("iat now%+v: status %d, body %s; want 200", iat.Sub(now), resp.status, resp.body)
		}
	}
}

func checkProofError(t *testing.T, resp response, detail string) {
	t.Helper()
	if resp.status != http.StatusBadRequest {
		t.Fatalf("status %d, body %s; want 400", resp.status, resp.body)
	}
	var e oauthError
	if err := json.Unmarshal(resp.body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error != "invalid_dpop_proof" || !strings.Contains(e.ErrorDescription, detail) {
		t.Fatalf("body %s; want invalid_dpop_proof mentioning %q", resp.body, detail)
	}
}

func TestDPoPProofIsSingleUse(t *testing.T) {
	t.Parallel()
	now, clock := fixedNow()
	ts := newTestServer(t, Options{Now: clock})
	k := newProofKey(t, "ES256")
	h, c := proofParts(t, k, ts.URL+"/oauth/token", now)
	proof := k.sign(t, h, c)
	if resp := proofRequest(t, ts.URL+"/oauth/token", proof); resp.status != http.StatusOK {
		t.Fatalf("first use: status %d, body %s", resp.status, resp.body)
	}
	checkProofError(t, proofRequest(t, ts.URL+"/oauth/token", proof), "already used")

	// The same jti under another key is another proof.
	k2 := newProofKey(t, "ES256")
	h["jwk"] = k2.publicJWK()
	if resp := proofRequest(t, ts.URL+"/oauth/token", k2.sign(t, h, c)); resp.status != http.StatusOK {
		t.Fatalf("same jti, other key: status %d, body %s", resp.status, resp.body)
	}

	// Bad credentials are refused before the proof is looked at, and do not
	// use it up.
	h, c = proofParts(t, k, ts.URL+"/oauth/token", now)
	proof = k.sign(t, h, c)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/oauth/token",
		strings.NewReader(demoParams("demo-m2m", "wrong").form()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", proof)
	if resp := do(t, req); resp.status != http.StatusUnauthorized {
		t.Fatalf("bad secret with proof: status %d, want 401", resp.status)
	}
	if resp := proofRequest(t, ts.URL+"/oauth/token", proof); resp.status != http.StatusOK {
		t.Fatalf("proof after a refused request: status %d, body %s", resp.status, resp.body)
	}
}

// TestDPoPMutatedProofs: over generated one-character changes of valid
// proofs, the issuer answers 200 or 400 invalid_dpop_proof, and every token it
// issues is bound to the key that signed the proof.
func TestDPoPMutatedProofs(t *testing.T) {
	t.Parallel()
	now, clock := fixedNow()
	ts := newTestServer(t, Options{Now: clock})
	const seed uint64 = 9449
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 7638))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
	keys := []proofKey{newProofKey(t, "ES256"), newProofKey(t, "EdDSA"), newProofKey(t, "RS256"), newProofKey(t, "Ed25519")}
	accepted := 0
	for i := range 200 {
		k := keys[i%len(keys)]
		h, c := proofParts(t, k, ts.URL+"/oauth/token", now)
		proof := []byte(k.sign(t, h, c))
		pos := rng.IntN(len(proof))
		proof[pos] = alphabet[rng.IntN(len(alphabet))]
		resp := proofRequest(t, ts.URL+"/oauth/token", string(proof))
		switch resp.status {
		case http.StatusOK:
			accepted++
			var tr tokenResponse
			if err := json.Unmarshal(resp.body, &tr); err != nil {
				t.Fatal(err)
			}
			cnf, _ := tokenClaims(t, tr.AccessToken)["cnf"].(map[string]any)
			if want := thumbprint(t, k.publicJWK()); tr.TokenType != "DPoP" || cnf["jkt"] != want {
				t.Fatalf("mutation %d at %d: token_type %q cnf %v; want DPoP bound to %s", i, pos, tr.TokenType, cnf, want)
			}
		case http.StatusBadRequest:
			var e oauthError
			if err := json.Unmarshal(resp.body, &e); err != nil || e.Error != "invalid_dpop_proof" {
				t.Fatalf("mutation %d at %d: body %s; want invalid_dpop_proof", i, pos, resp.body)
			}
		default:
			t.Fatalf("mutation %d at %d: status %d, body %s", i, pos, resp.status, resp.body)
		}
	}
	t.Logf("%d of 200 mutated proofs accepted (unchanged by the mutation)", accepted)
}

func TestNormalizeHTU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"http://127.0.0.1:8081/oauth/token", "http://127.0.0.1:8081/oauth/token"},
		{"HTTP://LocalHost:80/oauth/token", "http://localhost/oauth/token"},
		{"https://Issuer.Example:443/oauth/token?a=b#c", "https://issuer.example/oauth/token"},
		{"https://issuer.example:8443/oauth/token", "https://issuer.example:8443/oauth/token"},
		{"http://[::1]:80", "http://[::1]/"},
		{"https://issuer.example/OAuth/Token", "https://issuer.example/OAuth/Token"},
		{"ftp://issuer.example/", ""},
		{"/oauth/token", ""},
		{"https://user:pw@issuer.example/oauth/token", ""},
		{"https:opaque", ""},
	} {
		got, err := normalizeHTU(tc.in)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("normalizeHTU(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
