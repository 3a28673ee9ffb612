package jwks_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

func samePublic(t *testing.T, got crypto.PublicKey, want crypto.Signer) {
	t.Helper()
	if !want.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(got) {
		t.Errorf("public key differs from the issuer's")
	}
}

func TestFirstFetchAndKeyHit(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL(), Algorithms: []string{"RS256"}})

	k, err := h.p.Key(t.Context(), iss.KID())
	if err != nil {
		t.Fatalf("Key: %v", err)
	}
	if k.ID != iss.KID() || k.Algorithm != "RS256" {
		t.Errorf("Key = {ID: %q, Algorithm: %q}", k.ID, k.Algorithm)
	}
	samePublic(t, k.Public, iss.Key(iss.KID()))
	keys, err := h.p.Keys(t.Context())
	if err != nil || len(keys) != 1 || keys[0] != k {
		t.Errorf("Keys = %v, %v; want the one key", keys, err)
	}
	if got := iss.Requests(); got != 1 {
		t.Errorf("JWKS requests = %d, want 1", got)
	}
	st := h.p.Status()
	want := jwks.Status{
		Name: "test", Source: "uri", Location: iss.JWKSURL(), JWKSURI: iss.JWKSURL(),
		Keys:        []jwks.KeyInfo{{KID: iss.KID(), Alg: "RS256", Kty: "RSA", Use: "sig"}},
		FetchedAt:   h.clk.Now(),
		NextRefresh: h.clk.Now().Add(refresh),
		Ready:       true,
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
	if got := h.fetches(t, "success"); got != 1 {
		t.Errorf("success fetches = %v, want 1", got)
	}
	if got := h.metric(t, "jwt_authz_jwks_keys", map[string]string{"provider": "test"}); got != 1 {
		t.Errorf("keys gauge = %v, want 1", got)
	}
	if got := h.metric(t, "jwt_authz_jwks_last_success_timestamp_seconds", nil); got != float64(h.clk.Now().Unix()) {
		t.Errorf("last success = %v, want %v", got, h.clk.Now().Unix())
	}
}

// jwkJSON renders a public key as a JWK, then applies edits (nil deletes).
func jwkJSON(t *testing.T, pub crypto.PublicKey, kid, alg string, edits map[string]any) json.RawMessage {
	t.Helper()
	k, err := jwkstest.PublicJWK(pub, kid, alg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range edits {
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genKey(t *testing.T, alg string) crypto.Signer {
	t.Helper()
	k, err := jwkstest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOnlyUsableKeysAreKept(t *testing.T) {
	t.Parallel()
	rsaKey := genKey(t, "RS256")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := jwk.FromRaw([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	oct, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	keys := []json.RawMessage{
		jwkJSON(t, rsaKey.Public(), "good", "RS256", nil),
		jwkJSON(t, rsaKey.Public(), "enc", "RS256", map[string]any{"use": "enc"}),
		jwkJSON(t, genKey(t, "ES256").Public(), "es-not-allowed", "ES256", nil),
		jwkJSON(t, small.Public(), "small-rsa", "RS256", nil),
		jwkJSON(t, genKey(t, "ES256").Public(), "alg-for-another-kty", "RS256", nil),
		json.RawMessage(`{"kty":"EC","crv":"P-224","kid":"p224","x":"AAAA","y":"AAAA"}`),
		oct,
		json.RawMessage(`{"kty":"XYZ","kid":"unknown-kty"}`),
		jwkJSON(t, genKey(t, "EdDSA").Public(), "", "", map[string]any{"use": nil}),
	}
	doc, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, jwks.Options{Inline: string(doc), Algorithms: []string{"RS256", "EdDSA"}})
	want := []jwks.KeyInfo{
		{KID: "good", Alg: "RS256", Kty: "RSA", Use: "sig"},
		{KID: "", Kty: "OKP"},
	}
	if diff := cmp.Diff(want, h.p.Status().Keys); diff != "" {
		t.Errorf("usable keys (-want +got):\n%s", diff)
	}
	for _, kid := range []string{"enc", "es-not-allowed", "small-rsa", "alg-for-another-kty", "p224", "unknown-kty", ""} {
		if _, err := h.p.Key(t.Context(), kid); !errors.Is(err, authz.ErrUnknownKey) {
			t.Errorf("Key(%q) error = %v, want ErrUnknownKey", kid, err)
		}
	}
	all, err := h.p.Keys(t.Context())
	if err != nil || len(all) != 2 {
		t.Errorf("Keys = %d keys, %v; want 2", len(all), err)
	}
}

func TestRotationSingleFlightRefetch(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})

	next := iss.Rotate()
	// Within MinRefreshInterval of the last fetch a miss answers at once.
	if _, err := h.p.Key(t.Context(), next); !errors.Is(err, authz.ErrUnknownKey) {
		t.Fatalf("Key(new kid) right after a fetch: %v, want ErrUnknownKey", err)
	}
	h.advance(t, minRefresh)

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			k, err := h.p.Key(t.Context(), next)
			if err == nil && k.ID != next {
				err = fmt.Errorf("got kid %q", k.ID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Key(new kid): %v", err)
		}
	}
	if got := iss.Requests(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2 (start + one refetch)", got)
	}
	if got := h.metric(t, "jwt_authz_jwks_unknown_kid_refetches_total", nil); got != 1 {
		t.Errorf("unknown kid refetches = %v, want 1", got)
	}
}

func TestUnknownKidFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})

	const steps, perStep, workers = 10, 1000, 8
	step := 10 * time.Second
	var elapsed time.Duration
	for range steps {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var bad error
		for w := range workers {
			wg.Go(func() {
				for range perStep / workers {
					_, err := h.p.Key(t.Context(), rand.Text())
					if !errors.Is(err, authz.ErrUnknownKey) {
						mu.Lock()
						bad = fmt.Errorf("worker %d: %v", w, err)
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if bad != nil {
			t.Fatalf("random kid: %v, want ErrUnknownKey", bad)
		}
		h.advance(t, step)
		elapsed += step
	}
	limit := 1 + int64(elapsed/minRefresh)
	got := iss.Requests()
	if got > limit || got < 2 {
		t.Errorf("JWKS requests = %d after %v of random kids, want 2..%d", got, elapsed, limit)
	}
	t.Logf("%d calls, %d JWKS requests over %v", steps*perStep, got, elapsed)
}

func TestStaleIfError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		failure jwkstest.Failure
		errText string
		timeout time.Duration
	}{
		{name: "status 500", failure: jwkstest.Status500, errText: "unexpected status 500"},
		{name: "timeout", failure: jwkstest.Timeout, errText: "deadline exceeded", timeout: 400 * time.Millisecond},
		{name: "garbage", failure: jwkstest.Garbage, errText: "parse key set"},
		{name: "empty set", failure: jwkstest.EmptySet, errText: "no usable key"},
		{name: "not found", failure: jwkstest.NotFound, errText: "unexpected status 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iss := jwkstest.New(t, jwkstest.Options{})
			h := startReady(t, jwks.Options{URI: iss.JWKSURL(), FetchTimeout: tc.timeout})
			kid := iss.KID()

			iss.SetFailure(tc.failure)
			const rounds = 6 // 90 simulated minutes
			for i := range rounds {
				h.advance(t, refresh)
				if _, err := h.p.Key(t.Context(), kid); err != nil {
					t.Fatalf("round %d: Key: %v", i, err)
				}
				st := h.p.Status()
				if !st.Ready || !h.p.Ready() {
					t.Fatalf("round %d: not ready", i)
				}
				if !strings.Contains(st.LastError, tc.errText) || !strings.Contains(st.LastError, `"test"`) {
					t.Errorf("round %d: LastError = %q, want it to name the provider and %q", i, st.LastError, tc.errText)
				}
				if wait := st.NextRefresh.Sub(h.clk.Now()); wait < minRefresh || wait > refresh {
					t.Errorf("round %d: retry in %v, want within [%v, %v]", i, wait, minRefresh, refresh)
				}
			}
			if got := h.fetches(t, "error"); got != rounds {
				t.Errorf("error fetches = %v, want %d", got, rounds)
			}
			if !h.logs.Contains("level=WARN") && !h.logs.Contains("level=ERROR") {
				t.Error("failure not logged")
			}

			iss.SetFailure(jwkstest.None)
			h.advance(t, refresh)
			if st := h.p.Status(); st.LastError != "" {
				t.Errorf("LastError after recovery = %q", st.LastError)
			}
			if got := h.fetches(t, "success"); got != 2 {
				t.Errorf("success fetches = %v, want 2", got)
			}
		})
	}
}

func TestRetryBacksOff(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})
	iss.SetFailure(jwkstest.Status500)
	h.advance(t, refresh)
	var last time.Duration
	for i := range 8 {
		wait := h.p.Status().NextRefresh.Sub(h.clk.Now())
		if wait < minRefresh || wait > refresh || (i > 0 && wait < last/2) {
			t.Fatalf("retry %d in %v (previous %v), want growing within [%v, %v]", i, wait, last, minRefresh, refresh)
		}
		last = wait
		h.advance(t, wait)
	}
	if last < refresh/2 {
		t.Errorf("after 8 failures the retry is %v, want near %v", last, refresh)
	}
	if got := iss.Requests(); got != 10 {
		t.Errorf("JWKS requests = %d, want 10", got)
	}
}

func TestCacheControlSchedulesRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		cacheControl string
		want         time.Duration
	}{
		{name: "max-age shorter than min", cacheControl: "public, max-age=5", want: minRefresh},
		{name: "max-age between", cacheControl: "public, max-age=120", want: 2 * time.Minute},
		{name: "max-age longer than refresh", cacheControl: "max-age=86400", want: refresh},
		{name: "no-store", cacheControl: "no-store", want: refresh},
		{name: "no-cache no-store", cacheControl: "no-cache, no-store, max-age=60", want: refresh},
		{name: "none", want: refresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iss := jwkstest.New(t, jwkstest.Options{})
			iss.SetCacheControl(tc.cacheControl)
			h := startReady(t, jwks.Options{URI: iss.JWKSURL()})
			if got := h.p.Status().NextRefresh.Sub(h.clk.Now()); got != tc.want {
				t.Errorf("next refresh in %v, want %v", got, tc.want)
			}
			h.advance(t, tc.want-time.Second)
			if got := iss.Requests(); got != 1 {
				t.Errorf("JWKS requests before due = %d, want 1", got)
			}
			h.clk.Advance(time.Second)
			eventually(t, "the refresh", func() bool { return iss.Requests() == 2 })
		})
	}
}

func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{ETag: true, MaxAge: time.Minute})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})

	h.advance(t, time.Minute)
	if got := h.fetches(t, "not_modified"); got != 1 {
		t.Errorf("not_modified fetches = %v, want 1", got)
	}
	if _, err := h.p.Key(t.Context(), iss.KID()); err != nil {
		t.Errorf("Key after 304: %v", err)
	}
	if got := iss.Requests(); got != 2 {
		t.Errorf("JWKS requests = %d, want 2", got)
	}

	next := iss.Rotate()
	h.advance(t, time.Minute)
	if got := h.fetches(t, "success"); got != 2 {
		t.Errorf("success fetches = %v, want 2", got)
	}
	if _, err := h.p.Key(t.Context(), next); err != nil {
		t.Errorf("Key(rotated): %v", err)
	}
	if got := h.metric(t, "jwt_authz_jwks_unknown_kid_refetches_total", nil); got != 0 {
		t.Errorf("refetches = %v, want 0: the scheduled refresh found the key", got)
	}
}

func TestRevokedKidIsRemoved(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	old := iss.KID()
	next := iss.Rotate()
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})

	iss.Revoke(old)
	h.advance(t, refresh)
	if _, err := h.p.Key(t.Context(), old); !errors.Is(err, authz.ErrUnknownKey) {
		t.Errorf("Key(revoked) error = %v, want ErrUnknownKey", err)
	}
	if _, err := h.p.Key(t.Context(), next); err != nil {
		t.Errorf("Key(kept): %v", err)
	}
	select {
	case got := <-h.removed:
		if diff := cmp.Diff([]string{old}, got); diff != "" {
			t.Errorf("OnKeysRemoved (-want +got):\n%s", diff)
		}
	default:
		t.Error("OnKeysRemoved not called")
	}
}

func TestSetThatDropsEveryKidIsRefusedUntilConfirmed(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	old := iss.KID()
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})

	next := iss.Rotate()
	iss.Revoke(old)
	h.advance(t, refresh)
	if _, err := h.p.Key(t.Context(), old); err != nil {
		t.Fatalf("Key(old) after a wholesale replacement: %v", err)
	}
	if st := h.p.Status(); !strings.Contains(st.LastError, "drops every known key") {
		t.Errorf("LastError = %q", st.LastError)
	}
	if !h.logs.Contains("level=ERROR") {
		t.Error("refusal not logged at error level")
	}

	// The same replacement, served for a whole refresh interval, is an
	// emergency rotation: believe it.
	for h.p.Status().FetchedAt.Before(h.clk.Now()) && h.clk.Now().Sub(h.p.Status().FetchedAt) < 3*refresh {
		h.advance(t, h.p.Status().NextRefresh.Sub(h.clk.Now()))
		if _, err := h.p.Key(t.Context(), next); err == nil {
			break
		}
	}
	if _, err := h.p.Key(t.Context(), next); err != nil {
		t.Fatalf("Key(new) after the replacement held: %v", err)
	}
	if got := <-h.removed; !cmp.Equal(got, []string{old}) {
		t.Errorf("OnKeysRemoved = %v, want [%s]", got, old)
	}
}

func TestCacheFile(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cache := filepath.Join(t.TempDir(), "auth0.json")
	first := startReady(t, jwks.Options{URI: iss.JWKSURL(), CacheFile: cache})
	first.p.Close()
	var doc struct {
		Format, Provider, Source string
		JWKS                     json.RawMessage
	}
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Format != "jwt-authz-jwks-cache/v1" || doc.Provider != "test" || len(doc.JWKS) == 0 {
		t.Errorf("cache file = %s", b)
	}

	iss.SetFailure(jwkstest.Status500)

	t.Run("restart during an outage serves cached keys", func(t *testing.T) {
		h := start(t, jwks.Options{URI: iss.JWKSURL(), CacheFile: cache})
		if !h.p.Ready() {
			t.Fatal("not ready right after Start with a cache file")
		}
		h.settle(t)
		if _, err := h.p.Key(t.Context(), iss.KID()); err != nil {
			t.Errorf("Key: %v", err)
		}
		if got := h.fetches(t, "error"); got != 1 {
			t.Errorf("error fetches = %v, want 1", got)
		}
	})

	for _, tc := range []struct {
		name    string
		content string
		opts    jwks.Options
	}{
		{name: "corrupt", content: "{not json"},
		{name: "another provider", opts: jwks.Options{Name: "other"}},
		{name: "another source", opts: jwks.Options{URI: iss.JWKSURL() + "?v=2"}},
		{name: "no usable keys", content: `{"format":"jwt-authz-jwks-cache/v1","provider":"test","source":"uri:` + iss.JWKSURL() + `","jwks":{"keys":[]}}`},
	} {
		t.Run("ignored: "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache.json")
			content := []byte(tc.content)
			if tc.content == "" {
				content = b
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			opts := tc.opts
			if opts.URI == "" {
				opts.URI = iss.JWKSURL()
			}
			opts.CacheFile = path
			h := start(t, opts)
			if h.p.Ready() {
				t.Error("ready from an unusable cache file")
			}
			if !h.logs.Contains("jwks cache file ignored") {
				t.Error("no warning about the ignored cache file")
			}
		})
	}

	t.Run("no cache file: not ready until the endpoint returns", func(t *testing.T) {
		down := jwkstest.New(t, jwkstest.Options{})
		down.SetFailure(jwkstest.Status500)
		h := start(t, jwks.Options{URI: down.JWKSURL(), CacheFile: filepath.Join(t.TempDir(), "none.json")})
		h.settle(t)
		if _, err := h.p.Key(t.Context(), down.KID()); !errors.Is(err, authz.ErrNoKeys) {
			t.Errorf("Key error = %v, want ErrNoKeys", err)
		}
		if _, err := h.p.Keys(t.Context()); !errors.Is(err, authz.ErrNoKeys) {
			t.Errorf("Keys error = %v, want ErrNoKeys", err)
		}
		if st := h.p.Status(); st.Ready || st.LastError == "" {
			t.Errorf("Status = ready %v, LastError %q; want not ready with an error", st.Ready, st.LastError)
		}
		// Without keys, retries do not back off.
		for range 5 {
			if wait := h.p.Status().NextRefresh.Sub(h.clk.Now()); wait != minRefresh {
				t.Fatalf("retry in %v while not ready, want %v", wait, minRefresh)
			}
			h.advance(t, minRefresh)
		}
		down.SetFailure(jwkstest.None)
		h.clk.Advance(minRefresh)
		h.waitReady(t)
		if _, err := h.p.Key(t.Context(), down.KID()); err != nil {
			t.Errorf("Key after recovery: %v", err)
		}
	})
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	t.Run("happy path and rediscovery after 404", func(t *testing.T) {
		t.Parallel()
		iss := jwkstest.New(t, jwkstest.Options{})
		h := startReady(t, jwks.Options{Discovery: true, Issuer: iss.IssuerURL()})
		st := h.p.Status()
		if st.Source != "discovery" || st.Location != iss.IssuerURL() || st.JWKSURI != iss.JWKSURL() {
			t.Errorf("Status = %+v", st)
		}
		if _, err := h.p.Key(t.Context(), iss.KID()); err != nil {
			t.Errorf("Key: %v", err)
		}
		if got := iss.DiscoveryRequests(); got != 1 {
			t.Errorf("discovery requests = %d, want 1", got)
		}
		iss.SetFailure(jwkstest.NotFound)
		h.advance(t, minRefresh) // not due yet: nothing happens
		h.advance(t, refresh)
		iss.SetFailure(jwkstest.None)
		h.advance(t, h.p.Status().NextRefresh.Sub(h.clk.Now()))
		if got := iss.DiscoveryRequests(); got < 2 {
			t.Errorf("discovery requests = %d, want a rediscovery", got)
		}
	})
	t.Run("issuer without trailing slash", func(t *testing.T) {
		t.Parallel()
		iss := jwkstest.New(t, jwkstest.Options{})
		iss.SetDiscoveryIssuer(iss.URL())
		h := start(t, jwks.Options{Discovery: true, Issuer: iss.URL()})
		h.waitReady(t)
	})
	t.Run("mismatching issuer", func(t *testing.T) {
		t.Parallel()
		iss := jwkstest.New(t, jwkstest.Options{})
		iss.SetDiscoveryIssuer("https://attacker.example.com/")
		h := start(t, jwks.Options{Discovery: true, Issuer: iss.IssuerURL()})
		h.settle(t)
		st := h.p.Status()
		if st.Ready {
			t.Error("ready despite the issuer mismatch")
		}
		for _, want := range []string{"issuer mismatch", "https://attacker.example.com/", iss.IssuerURL()} {
			if !strings.Contains(st.LastError, want) {
				t.Errorf("LastError = %q, want it to contain %q", st.LastError, want)
			}
		}
		if got := iss.Requests(); got != 0 {
			t.Errorf("JWKS requests = %d, want none", got)
		}
	})
}

func TestFileSource(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, iss.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, jwks.Options{File: path})
	if !h.p.Ready() {
		t.Fatal("not ready after Start")
	}
	h.settle(t)
	next := iss.Rotate()
	if err := os.WriteFile(path, iss.PublicJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Key(t.Context(), next); !errors.Is(err, authz.ErrUnknownKey) {
		t.Errorf("Key(new) before MinRefreshInterval: %v, want ErrUnknownKey", err)
	}
	h.advance(t, minRefresh)
	if _, err := h.p.Key(t.Context(), next); err != nil {
		t.Errorf("Key(new) after the file changed: %v", err)
	}
	if st := h.p.Status(); st.Source != "file" || st.Location != path || len(st.Keys) != 2 {
		t.Errorf("Status = %+v", st)
	}
	// A broken edit keeps the last good keys.
	if err := os.WriteFile(path, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.advance(t, minRefresh)
	if _, err := h.p.Key(t.Context(), next); err != nil || h.p.Status().LastError == "" {
		t.Errorf("after a broken edit: Key error %v, LastError %q", err, h.p.Status().LastError)
	}
}

func TestInline(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{Alg: "ES256"})
	h := start(t, jwks.Options{Inline: string(iss.PublicJWKS())})
	if !h.p.Ready() {
		t.Fatal("inline set not ready after Start")
	}
	k, err := h.p.Key(t.Context(), iss.KID())
	if err != nil {
		t.Fatal(err)
	}
	samePublic(t, k.Public, iss.Key(iss.KID()))

	bad := start(t, jwks.Options{Inline: `{"keys": "nope"}`})
	if bad.p.Ready() || bad.p.Status().LastError == "" {
		t.Errorf("invalid inline set: ready %v, LastError %q", bad.p.Ready(), bad.p.Status().LastError)
	}
	if _, err := bad.p.Key(t.Context(), "x"); !errors.Is(err, authz.ErrNoKeys) {
		t.Errorf("Key error = %v, want ErrNoKeys", err)
	}
}

func TestHugeDocumentIsRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":["` + strings.Repeat("x", 2<<20) + `"]}`))
	}))
	t.Cleanup(srv.Close)
	h := start(t, jwks.Options{URI: srv.URL})
	h.settle(t)
	if st := h.p.Status(); st.Ready || !strings.Contains(st.LastError, "exceeds") {
		t.Errorf("Status = ready %v, LastError %q", st.Ready, st.LastError)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts jwks.Options
		want string
	}{
		{name: "no source", opts: jwks.Options{Name: "a"}, want: "exactly one of"},
		{name: "two sources", opts: jwks.Options{Name: "a", URI: "https://idp.example.com/jwks", File: "x"}, want: "exactly one of"},
		{name: "no name", opts: jwks.Options{URI: "https://idp.example.com/jwks"}, want: "name is required"},
		{name: "relative uri", opts: jwks.Options{Name: "a", URI: "/jwks"}, want: "uri:"},
		{name: "discovery without issuer", opts: jwks.Options{Name: "a", Discovery: true}, want: "issuer"},
		{name: "min above max", opts: jwks.Options{Name: "a", URI: "https://idp.example.com/jwks", MinRefreshInterval: time.Hour}, want: "must not exceed refresh_interval"},
		{name: "negative", opts: jwks.Options{Name: "a", URI: "https://idp.example.com/jwks", FetchTimeout: -1}, want: "fetch_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := jwks.New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMetricNamesAndForget(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})
	if got := h.fetches(t, "success"); got != 1 {
		t.Fatalf("success fetches = %v, want 1", got)
	}
	fams, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	want := []string{
		"jwt_authz_jwks_fetches_total",
		"jwt_authz_jwks_keys",
		"jwt_authz_jwks_last_success_timestamp_seconds",
		"jwt_authz_jwks_unknown_kid_refetches_total",
		"jwt_authz_provider_ready",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	h.p.Close()
	h.metrics.Forget("test")
	fams, err = h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			t.Errorf("series left after Forget: %s %v", f.GetName(), m.GetLabel())
		}
	}
	var nilMetrics *jwks.Metrics
	nilMetrics.Forget("test") // a nil *Metrics records nothing and forgets nothing
}

// Not parallel: AllocsPerRun counts the whole process.
func TestKeyHitAllocatesNothing(t *testing.T) {
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL()})
	ctx, kid := t.Context(), iss.KID()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := h.p.Key(ctx, kid); err != nil {
			t.Fatal(err)
		}
		if _, err := h.p.Keys(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Key+Keys hit: %v allocations, want 0", allocs)
	}
}

func TestKeyWaitIsBoundedByContext(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	h := startReady(t, jwks.Options{URI: iss.JWKSURL(), FetchTimeout: 5 * time.Second})
	iss.SetFailure(jwkstest.Timeout)
	h.clk.Advance(minRefresh)
	ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := h.p.Key(ctx, "not-there")
	if !errors.Is(err, authz.ErrUnknownKey) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Key error = %v, want ErrUnknownKey and the deadline", err)
	}
	if waited := time.Since(began); waited > 2*time.Second {
		t.Errorf("Key waited %v past its context", waited)
	}
	// Close ends the hanging fetch; goleak checks nothing is left.
}

func BenchmarkKeyHit(b *testing.B) {
	iss := jwkstest.New(b, jwkstest.Options{})
	p, err := jwks.New(jwks.Options{Name: "bench", URI: iss.JWKSURL()})
	if err != nil {
		b.Fatal(err)
	}
	p.Start(b.Context())
	b.Cleanup(p.Close)
	if err := p.WaitReady(b.Context()); err != nil {
		b.Fatal(err)
	}
	kid := iss.KID()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Key(context.Background(), kid); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
