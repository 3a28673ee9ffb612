package jwkstest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func kids(t *testing.T, doc []byte) []string {
	t.Helper()
	set, err := jwk.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k.KeyUsage() != "sig" || k.Algorithm().String() == "" {
			t.Errorf("key %q: use %q alg %q", k.KeyID(), k.KeyUsage(), k.Algorithm())
		}
		out = append(out, k.KeyID())
	}
	return out
}

func TestSignVerifiesWithPublishedKeys(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			iss := jwkstest.New(t, jwkstest.Options{Alg: alg})
			_, doc := get(t, iss.JWKSURL(), nil)
			set, err := jwk.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			tok := iss.Sign(t, iss.Claims("alice@clients"))
			parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithIssuer(iss.IssuerURL()))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if got, want := parsed.Subject(), "alice@clients"; got != want {
				t.Errorf("sub = %q, want %q", got, want)
			}
			msg, err := jws.Parse([]byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			h := msg.Signatures()[0].ProtectedHeaders()
			if h.KeyID() != iss.KID() || h.Type() != "JWT" || h.Algorithm().String() != alg {
				t.Errorf("header kid=%q typ=%q alg=%q", h.KeyID(), h.Type(), h.Algorithm())
			}
		})
	}
}

func TestSignWithHeaderOverrides(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	tok := iss.SignWith(t, iss.KID(), map[string]any{"kid": nil, "typ": "at+jwt", "jku": "http://127.0.0.1:1/x"}, iss.Claims("s"))
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.KeyID() != "" || h.Type() != "at+jwt" || h.JWKSetURL() != "http://127.0.0.1:1/x" {
		t.Errorf("header kid=%q typ=%q jku=%q", h.KeyID(), h.Type(), h.JWKSetURL())
	}
	lying := iss.SignWith(t, iss.KID(), map[string]any{"alg": "HS256"}, iss.Claims("s"))
	msg, err = jws.Parse([]byte(lying))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Signatures()[0].ProtectedHeaders().Algorithm().String(); got != "HS256" {
		t.Errorf("alg = %q, want HS256", got)
	}
}

func TestRotateRevokeAddKey(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	first := iss.KID()
	second := iss.Rotate()
	ec := iss.AddKey("ES256")
	if iss.KID() != second || first == second {
		t.Fatalf("KID() = %q after rotate from %q to %q", iss.KID(), first, second)
	}
	if diff := cmp.Diff([]string{first, second, ec}, kids(t, iss.PublicJWKS())); diff != "" {
		t.Errorf("kids (-want +got):\n%s", diff)
	}
	iss.Revoke(first)
	if diff := cmp.Diff([]string{second, ec}, kids(t, iss.PublicJWKS())); diff != "" {
		t.Errorf("kids after revoke (-want +got):\n%s", diff)
	}
	if iss.Key(first) == nil {
		t.Error("revoked key is gone")
	}
	_ = iss.SignWith(t, first, nil, iss.Claims("s"))
	other := jwkstest.New(t, jwkstest.Options{})
	if other.KID() == first || other.KID() == second {
		t.Error("two issuers share a kid")
	}
}

func TestCachingHeadersAndFailures(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{MaxAge: 90 * time.Second, ETag: true})
	resp, _ := get(t, iss.JWKSURL(), nil)
	if got, want := resp.Header.Get("Cache-Control"), "public, max-age=90"; got != want {
		t.Errorf("Cache-Control = %q, want %q", got, want)
	}
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp, _ := get(t, iss.JWKSURL(), map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d", resp.StatusCode)
	}
	if resp, _ := get(t, iss.JWKSURL(), map[string]string{"If-Modified-Since": lm}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since: status %d", resp.StatusCode)
	}
	iss.Rotate()
	if resp, _ := get(t, iss.JWKSURL(), map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusOK {
		t.Errorf("after rotate: status %d", resp.StatusCode)
	}
	if resp, _ := get(t, iss.JWKSURL(), map[string]string{"If-Modified-Since": lm}); resp.StatusCode != http.StatusOK {
		t.Errorf("after rotate, If-Modified-Since: status %d", resp.StatusCode)
	}

	iss.SetFailure(jwkstest.Status500)
	if resp, _ := get(t, iss.JWKSURL(), nil); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("Status500: %d", resp.StatusCode)
	}
	iss.SetFailure(jwkstest.Garbage)
	if _, b := get(t, iss.JWKSURL(), nil); string(b) != "not json{" {
		t.Errorf("Garbage: %q", b)
	}
	iss.SetFailure(jwkstest.EmptySet)
	if _, b := get(t, iss.JWKSURL(), nil); string(b) != `{"keys":[]}` {
		t.Errorf("EmptySet: %q", b)
	}
	if got := iss.Requests(); got != 8 {
		t.Errorf("Requests() = %d, want 8", got)
	}

	_, b := get(t, iss.URL()+jwkstest.DiscoveryPath, nil)
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(b, &disc); err != nil {
		t.Fatal(err)
	}
	if disc.Issuer != iss.IssuerURL() || disc.JWKSURI != iss.JWKSURL() || iss.DiscoveryRequests() != 1 {
		t.Errorf("discovery %+v, %d requests", disc, iss.DiscoveryRequests())
	}
}

func TestTimeoutEndsWithServer(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	iss.SetFailure(jwkstest.Timeout)
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if resp, err := client.Get(iss.JWKSURL()); err == nil {
		resp.Body.Close()
		t.Fatal("Timeout answered")
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	c := jwkstest.NewClock(time.Time{})
	start := c.Now()
	a := c.NewTimer(time.Minute)
	b := c.NewTimer(time.Hour)
	stopped := c.NewTimer(time.Second)
	if !stopped.Stop() {
		t.Error("Stop of a pending timer = false")
	}
	c.Advance(2 * time.Minute)
	select {
	case got := <-a.C():
		if want := start.Add(2 * time.Minute); !got.Equal(want) {
			t.Errorf("fired at %v, want %v", got, want)
		}
	default:
		t.Error("due timer did not fire")
	}
	select {
	case <-b.C():
		t.Error("timer fired early")
	default:
	}
	if c.Timers() != 1 {
		t.Errorf("Timers() = %d, want 1", c.Timers())
	}
	c.WaitTimers(t, 1)
}
