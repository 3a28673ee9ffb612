package interop

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/jwtauthz/jwt-authz/internal/devissuer"
)

// TestDPoPInterop gets a DPoP-bound access token from oidc-provider and a
// proof from oauth4webapi, and checks what jwt-authz will rely on: the token
// is a JWS signed by a key of the issuer's JWKS, with iss, aud and cnf.jkt;
// the proof is a dpop+jwt signed by its jwk, whose RFC 7638 thumbprint is
// the token's cnf.jkt, for the method and URL asked (without the query), with
// ath = base64url(SHA-256(token)).
func TestDPoPInterop(t *testing.T) {
	start := time.Now()
	srv := StartDPoPServer(t)
	set := fetchJWKS(t, srv.JWKSURI)

	first := srv.Request(t, http.MethodGet, "http://127.0.0.1:10000/api/items?page=2")
	second := srv.Request(t, http.MethodPost, "https://API.example:443/api/items")

	for _, r := range []DPoPRequest{first, second} {
		if r.Authorization != "DPoP "+r.AccessToken {
			t.Errorf("authorization %.20q…, want DPoP and the token", r.Authorization)
		}
		if !strings.EqualFold(r.TokenType, "DPoP") {
			t.Errorf("token_type %q, want DPoP", r.TokenType)
		}

		// The access token.
		header, claims := decode(t, r.AccessToken)
		if header["typ"] != "at+jwt" || header["alg"] != srv.Alg {
			t.Errorf("token header %v, want typ at+jwt, alg %s", header, srv.Alg)
		}
		if _, err := jws.Verify([]byte(r.AccessToken), jws.WithKeySet(set, jws.WithRequireKid(true))); err != nil {
			t.Errorf("token does not verify with the issuer's JWKS: %v", err)
		}
		if claims["iss"] != srv.Issuer || claims["aud"] != srv.Resource || claims["client_id"] != srv.ClientID {
			t.Errorf("token claims iss %v aud %v client_id %v; want %s, %s, %s", claims["iss"], claims["aud"], claims["client_id"], srv.Issuer, srv.Resource, srv.ClientID)
		}
		cnf, _ := claims["cnf"].(map[string]any)
		jkt, _ := cnf["jkt"].(string)
		if jkt == "" {
			t.Fatalf("token has no cnf.jkt: %v", claims)
		}

		// The proof.
		msg, err := jws.Parse([]byte(r.Proof))
		if err != nil {
			t.Fatalf("proof: %v", err)
		}
		ph := msg.Signatures()[0].ProtectedHeaders()
		if ph.Type() != "dpop+jwt" || ph.JWK() == nil {
			t.Fatalf("proof header typ %q jwk %v; want dpop+jwt with a jwk", ph.Type(), ph.JWK())
		}
		if _, err := jws.Verify([]byte(r.Proof), jws.WithKey(ph.Algorithm(), ph.JWK())); err != nil {
			t.Errorf("proof does not verify with its jwk: %v", err)
		}
		thumb, err := ph.JWK().Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.RawURLEncoding.EncodeToString(thumb); got != jkt {
			t.Errorf("proof jwk thumbprint %s, token cnf.jkt %s", got, jkt)
		}
		_, pc := decode(t, r.Proof)
		ath := sha256.Sum256([]byte(r.AccessToken))
		wantHTU := htu(t, r.URL)
		if pc["htm"] != r.Method || pc["htu"] != wantHTU || pc["ath"] != base64.RawURLEncoding.EncodeToString(ath[:]) {
			t.Errorf("proof claims htm %v htu %v ath %v; want %s, %s, the token's hash", pc["htm"], pc["htu"], pc["ath"], r.Method, wantHTU)
		}
		if jti, _ := pc["jti"].(string); jti == "" {
			t.Errorf("proof has no jti")
		}
		iat, _ := pc["iat"].(float64)
		if d := time.Since(time.Unix(int64(iat), 0)); d < -time.Minute || d > time.Minute {
			t.Errorf("proof iat %v is %v from now", iat, d)
		}
	}
	if first.AccessToken == second.AccessToken || first.Proof == second.Proof {
		t.Error("two requests gave the same token or proof")
	}
	t.Logf("interop round trip took %v", time.Since(start).Round(time.Millisecond))
}

// htu is the URL as RFC 9449 §4.2 puts it in a proof: no query or fragment;
// the client library also normalises scheme and host case and drops a
// default port, as WHATWG URLs do.
func htu(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && !(u.Scheme == "http" && p == "80") && !(u.Scheme == "https" && p == "443") {
		host += ":" + p
	}
	return strings.ToLower(u.Scheme) + "://" + host + u.EscapedPath()
}

func fetchJWKS(t *testing.T, url string) jwk.Set {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks: %d %v", resp.StatusCode, err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range set.Len() {
		if k, _ := set.Key(i); k.Algorithm().String() != jwa.ES256.String() {
			t.Errorf("jwks key %q alg %q, want ES256", k.KeyID(), k.Algorithm())
		}
	}
	return set
}

// decode returns a compact JWS's header and payload as JSON objects.
func decode(t *testing.T, compact string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", compact)
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

// TestDevIssuerAcceptsOAuth4WebAPIProofs: dev-issuer checks the DPoP proof of
// a real client library's token request and binds the token to its key.
func TestDevIssuerAcceptsOAuth4WebAPIProofs(t *testing.T) {
	var iss *devissuer.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { iss.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	var err error
	if iss, err = devissuer.New(devissuer.Options{Issuer: srv.URL + "/"}); err != nil {
		t.Fatal(err)
	}
	client := NewClient(t, srv.URL+"/", "demo-m2m", "demo-m2m-secret", devissuer.DemoAudience)
	r := client.Request(t, http.MethodGet, "http://127.0.0.1:10000/json")

	if !strings.EqualFold(r.TokenType, "DPoP") {
		t.Errorf("token_type %q, want DPoP", r.TokenType)
	}
	_, claims := decode(t, r.AccessToken)
	cnf, _ := claims["cnf"].(map[string]any)
	msg, err := jws.Parse([]byte(r.Proof))
	if err != nil {
		t.Fatal(err)
	}
	thumb, err := msg.Signatures()[0].ProtectedHeaders().JWK().Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.RawURLEncoding.EncodeToString(thumb); cnf["jkt"] != want {
		t.Errorf("cnf %v, want jkt %s (the client's proof key)", cnf, want)
	}
	if claims["aud"] != devissuer.DemoAudience || claims["azp"] != "demo-m2m" {
		t.Errorf("claims aud %v azp %v", claims["aud"], claims["azp"])
	}
}
