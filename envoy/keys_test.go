package envoy_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/internal/stacktest"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// keysStack runs provider auth0 for iss with the key tests' refresh
// settings and a token cache; extra adds to its jwks mapping.
func keysStack(t *testing.T, iss *jwkstest.Issuer, clk *jwkstest.Clock, extra string, noWait bool) *stacktest.Stack {
	t.Helper()
	o := stacktest.Options{NoWait: noWait}
	if clk != nil { // a nil *Clock in the interface would not be nil
		o.Clock = clk
	}
	jwks := `refresh_interval: "900s", min_refresh_interval: "30s", fetch_timeout: "1s"` + extra
	return stacktest.Start(t, "providers:\n"+stacktest.Provider("auth0", iss, jwks)+"token_cache: {max_entries: 1000}\n", o)
}

func reasonOf(t *testing.T, s *stacktest.Stack, tok string) string {
	t.Helper()
	return s.Check(t, stacktest.Req{Token: tok}).GetDynamicMetadata().GetFields()["reason"].GetStringValue()
}

// TestRotationThenBurst: the issuer rotates (the last fetch is older than
// min_refresh_interval) and 200 Checks with the new kid arrive at once: all
// allowed, exactly one extra JWKS fetch.
func TestRotationThenBurst(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	clk := jwkstest.NewClock(time.Now())
	s := keysStack(t, iss, clk, "", false)
	before := iss.Requests()
	iss.Rotate()
	clk.Advance(31 * time.Second)
	tok := iss.Sign(t, iss.Claims("s"))
	var wg sync.WaitGroup
	reasons := make([]string, 200)
	for i := range reasons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.Client.Check(t.Context(), stacktest.Req{Token: tok}.CheckRequest())
			if err != nil {
				reasons[i] = err.Error()
				return
			}
			reasons[i] = resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
		}()
	}
	wg.Wait()
	for i, r := range reasons {
		if r != "ok" {
			t.Fatalf("Check %d: %s", i, r)
		}
	}
	if got := iss.Requests() - before; got != 1 {
		t.Errorf("extra JWKS fetches = %d, want 1", got)
	}
}

// TestUnknownKidFlood: 10,000 Checks with random kids are all denied
// unknown_key, and fetches stay within 1 + elapsed/min_refresh_interval.
func TestUnknownKidFlood(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	clk := jwkstest.NewClock(time.Now())
	s := keysStack(t, iss, clk, "", false)
	before := iss.Requests()
	claims := iss.Claims("s")
	// Sign a few hundred forgeries (signing is the slow part) and send each
	// many times with different clock positions.
	toks := make([]string, 50)
	for i := range toks {
		toks[i] = iss.SignWith(t, iss.KID(), map[string]any{"kid": rand.Text()}, claims)
	}
	elapsed := time.Duration(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for round := range 100 {
		if round%10 == 0 {
			clk.Advance(10 * time.Second)
			elapsed += 10 * time.Second
		}
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					resp, err := s.Client.Check(t.Context(), stacktest.Req{Token: toks[(w*25+i+round)%len(toks)]}.CheckRequest())
					if err != nil || resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue() != "unknown_key" {
						mu.Lock()
						bad++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
	}
	if bad != 0 {
		t.Errorf("%d of 10000 Checks were not unknown_key", bad)
	}
	limit := 1 + int64(elapsed/(30*time.Second))
	if got := iss.Requests() - before; got > limit {
		t.Errorf("JWKS fetches = %d over %s, want ≤ %d", got, elapsed, limit)
	}
	if got := s.Count("deny", "unknown_key", "auth0"); got != 10000 {
		t.Errorf("unknown_key count = %v", got)
	}
}

// TestIdPFailuresInvisible: the JWKS endpoint fails in each of its ways
// for a long simulated time; valid tokens keep being allowed, readiness
// stays up and the error metric rises.
func TestIdPFailuresInvisible(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	clk := jwkstest.NewClock(time.Now())
	s := keysStack(t, iss, clk, "", false)
	tok := iss.Sign(t, iss.Claims("s"))
	for _, f := range []jwkstest.Failure{jwkstest.Status500, jwkstest.Timeout, jwkstest.Garbage, jwkstest.EmptySet, jwkstest.NotFound} {
		iss.SetFailure(f)
		for range 8 { // 8 × 15 min of failing refreshes
			before := iss.Requests()
			clk.WaitTimers(t, 1)
			clk.Advance(15 * time.Minute)
			deadline := time.Now().Add(5 * time.Second)
			for iss.Requests() == before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // poll for the refresh the clock fired
			}
			if r := reasonOf(t, s, tok); r != "ok" && r != "" {
				t.Fatalf("failure %d: valid token got %s", f, r)
			}
		}
		if ready, _ := s.Runtime.Ready(); !ready {
			t.Fatalf("failure %d: provider not ready", f)
		}
	}
	errs := gathered(t, s, "jwt_authz_jwks_fetches_total", map[string]string{"provider": "auth0", "result": "error"})
	if errs < 10 {
		t.Errorf("jwks_fetches_total{error} = %v, want it to rise", errs)
	}
}

// gathered reads one sample of the stack's registry; -1 when absent.
func gathered(t *testing.T, s *stacktest.Stack, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestColdStartWithAndWithoutCacheFile: a restart while the IdP is down
// serves from cache_file; without one the provider answers 503
// keys_unavailable, is not ready, and becomes ready when the IdP returns.
func TestColdStartWithAndWithoutCacheFile(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	cache := filepath.Join(t.TempDir(), "auth0.jwks.json")
	tok := iss.Sign(t, iss.Claims("s"))
	// First life: the IdP is up; the cache file is written.
	first := keysStack(t, iss, nil, fmt.Sprintf(", cache_file: %q", cache), false)
	if r := reasonOf(t, first, tok); r != "ok" {
		t.Fatalf("first life: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(cache); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cache file never written")
		}
		time.Sleep(5 * time.Millisecond) // poll for the file
	}
	first.Runtime.Close()

	iss.SetFailure(jwkstest.Status500)
	second := keysStack(t, iss, nil, fmt.Sprintf(", cache_file: %q", cache), false) // waits until ready
	if r := reasonOf(t, second, tok); r != "ok" {
		t.Errorf("restart with cache_file during an outage: %s", r)
	}

	clk := jwkstest.NewClock(time.Now())
	cold := keysStack(t, iss, clk, "", true)
	resp := cold.Check(t, stacktest.Req{Token: tok})
	assertDecision(t, resp, want{reason: "keys_unavailable", http: 503, grpc: 14})
	if ready, names := cold.Runtime.Ready(); ready || len(names) != 1 || names[0] != "auth0" {
		t.Errorf("Ready() = %v %v, want false [auth0]", ready, names)
	}
	iss.SetFailure(jwkstest.None)
	deadline = time.Now().Add(10 * time.Second)
	for ready, _ := cold.Runtime.Ready(); !ready; ready, _ = cold.Runtime.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("not ready after the IdP returned")
		}
		clk.Advance(30 * time.Second) // the retry of a provider without keys
		time.Sleep(5 * time.Millisecond)
	}
	if r := reasonOf(t, cold, tok); r != "ok" {
		t.Errorf("after the IdP returned: %s", r)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	iss.SetDiscoveryIssuer("https://impostor.example/")
	s := stacktest.Start(t, fmt.Sprintf(`
providers:
- name: auth0
  issuer: %q
  audiences: ["urn:apigee:target:api"]
  jwks: {discovery: true}
`, iss.IssuerURL()), stacktest.Options{NoWait: true})
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(last, "impostor") {
		if time.Now().After(deadline) {
			t.Fatalf("no clear error; last error %q", last)
		}
		time.Sleep(5 * time.Millisecond) // poll for the first discovery
		last = s.Runtime.KeySets()[0].Status().LastError
	}
	if !strings.Contains(last, iss.IssuerURL()) {
		t.Errorf("error does not name the configured issuer: %q", last)
	}
	assertDecision(t, s.Check(t, stacktest.Req{Token: iss.Sign(t, iss.Claims("s"))}), want{reason: "keys_unavailable", http: 503, grpc: 14})
	if iss.Requests() != 0 {
		t.Errorf("JWKS fetched %d times from a refused discovery document", iss.Requests())
	}
}

// TestRemovedKeyLeavesTokenCache: a key removed from an otherwise good set
// stops verifying at once, cached tokens included.
func TestRemovedKeyLeavesTokenCache(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	clk := jwkstest.NewClock(time.Now())
	s := keysStack(t, iss, clk, "", false)
	old := iss.KID()
	tok := iss.Sign(t, iss.Claims("s"))
	for range 2 {
		if r := reasonOf(t, s, tok); r != "ok" {
			t.Fatalf("before: %s", r)
		}
	}
	if hits := gathered(t, s, "jwt_authz_token_cache_lookups_total", map[string]string{"result": "hit"}); hits < 1 {
		t.Fatalf("token not served from the cache (hits %v)", hits)
	}
	refresh := func() {
		before := iss.Requests()
		clk.WaitTimers(t, 1)
		clk.Advance(15 * time.Minute)
		deadline := time.Now().Add(5 * time.Second)
		for iss.Requests() == before || s.Runtime.KeySets()[0].Status().FetchedAt.Before(clk.Now().Add(-time.Minute)) {
			if time.Now().After(deadline) {
				t.Fatal("refresh did not happen")
			}
			time.Sleep(time.Millisecond) // poll for the fired refresh
		}
	}
	iss.AddKey("RS256")
	refresh()
	iss.Revoke(old)
	refresh()
	deadline := time.Now().Add(5 * time.Second)
	for reasonOf(t, s, tok) != "unknown_key" {
		if time.Now().After(deadline) {
			t.Fatalf("token of a removed key still allowed: %s", reasonOf(t, s, tok))
		}
		time.Sleep(time.Millisecond)
	}
}
