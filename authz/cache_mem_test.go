package authz_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestCachedTokenFootprint holds the verified-token cache to its memory
// budget: with Auth0-shaped tokens (four claim headers, an org object,
// permissions, five scopes) an entry must stay under 600 bytes of heap,
// so 100,000 cached tokens fit inside the 120 MiB RSS target. Tokens are
// Checked once here: an encoded answer is kept only from a token's second
// use (Answer), and its cost is measured by the envoy package.
func TestCachedTokenFootprint(t *testing.T) {
	const n = 3000
	a := newBenchAuthorizer(t, 2*n)
	now := time.Now()
	toks := make([]string, n)
	for i := range toks {
		toks[i] = benchToken(t, "EdDSA", now, fmt.Sprintf("client-%06d@clients", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	for _, tok := range toks {
		if d := a.Check(ctx, benchRequest("Bearer "+tok)); !d.Allow {
			t.Fatalf("denied: %s", d.Reason)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := a.Cache().Len(); got != n {
		t.Fatalf("cache holds %d, want %d", got, n)
	}
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("heap per cached token: %.0f bytes", per)
	if per > 600 {
		t.Errorf("heap per cached token = %.0f bytes, want ≤ 600", per)
	}
	runtime.KeepAlive(toks)
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
