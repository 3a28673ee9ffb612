package authz_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestCachedTokenFootprint holds the verified-token cache to its memory
// budget: with Auth0-shaped tokens (four claim headers, an org object,
// permissions, five scopes) an entry must stay under 600 bytes of heap,
// so 100,000 cached tokens fit inside the 120 MiB RSS target; the same
// for tokens bound to a client certificate (cnf["x5t#S256"]). Tokens are
// Checked once here: an encoded answer is kept only from a token's second
// use (Answer), and its cost is measured by the envoy package.
func TestCachedTokenFootprint(t *testing.T) {
	t.Run("unbound", func(t *testing.T) {
		opts := benchOptions(t, 2*footprintTokens, nil)
		measureFootprint(t, opts, func(sub string) *authz.Request {
			return benchRequest("Bearer " + benchToken(t, "EdDSA", time.Now(), sub))
		})
	})
	t.Run("certificate-bound", func(t *testing.T) {
		opts := benchOptions(t, 2*footprintTokens, nil)
		opts.Providers[0].MTLS = authz.MTLSOptions{Mode: authz.SenderAllowed}
		client := newPropHolder(t)
		measureFootprint(t, opts, func(sub string) *authz.Request {
			c := benchClaims(time.Now(), sub)
			c["cnf"] = map[string]any{"x5t#S256": client.x5t}
			r := benchRequest("Bearer " + jwkstest.SignToken(t, "EdDSA", keys(t).signer("EdDSA"), map[string]any{"kid": "EdDSA"}, c))
			r.Certificate = client.certPE
			return r
		})
	})
}

const footprintTokens = 3000

// measureFootprint Checks footprintTokens distinct tokens (made by req) on
// a new Authorizer and holds the heap they keep to 600 bytes each.
func measureFootprint(t *testing.T, opts authz.Options, req func(sub string) *authz.Request) {
	a, err := authz.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]*authz.Request, footprintTokens)
	for i := range reqs {
		reqs[i] = req(fmt.Sprintf("client-%06d@clients", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	for _, r := range reqs {
		if d := a.Check(ctx, r); !d.Allow {
			t.Fatalf("denied: %s (%s)", d.Reason, d.Description)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := authz.CachedTokens(a); got != footprintTokens {
		t.Fatalf("cache holds %d, want %d", got, footprintTokens)
	}
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / footprintTokens
	t.Logf("heap per cached token: %.0f bytes", per)
	if per > 600 {
		t.Errorf("heap per cached token = %.0f bytes, want ≤ 600", per)
	}
	runtime.KeepAlive(reqs)
	runtime.KeepAlive(a)
}

// TestCacheHitAllocatesNothing holds the hot path to zero allocations: a
// token seen before is decided without touching the heap.
func TestCacheHitAllocatesNothing(t *testing.T) {
	a := newBenchAuthorizer(t, 10)
	r := benchRequest("Bearer " + benchToken(t, "RS256", time.Now(), "svc@clients"))
	ctx := context.Background()
	if d := a.Check(ctx, r); !d.Allow {
		t.Fatalf("denied: %s", d.Reason)
	}
	if n := testing.AllocsPerRun(100, func() { a.Check(ctx, r) }); n != 0 {
		t.Errorf("a cache hit allocates %v times, want 0", n)
	}
}
