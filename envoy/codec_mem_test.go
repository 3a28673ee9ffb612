package envoy

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestStoredAnswerFootprint measures what a token's stored answer adds to
// its cache entry: tokens are Checked once (verified and cached), then
// again (the answer is encoded and stored). With the shape of bench/mint's
// tokens the answer is 493 bytes (a 512-byte allocation) plus its list
// entry and send buffer (48 bytes each): the second pass must add no more
// than 640 bytes per token, and a third, sending stored answers, nothing.
func TestStoredAnswerFootprint(t *testing.T) {
	const n = 2000
	iss := jwkstest.New(t, jwkstest.Options{})
	keys := authz.StaticKeys{{ID: iss.KID(), Algorithm: "RS256", Public: iss.Key(iss.KID()).Public()}}
	a, err := authz.New(authz.Options{TokenCacheEntries: 2 * n, Logger: slog.New(slog.DiscardHandler),
		Providers: []authz.Provider{{Name: "tenant", Issuer: iss.IssuerURL(), Keys: keys,
			ClaimHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-jwt-sub"}, {Claim: "scope", Header: "x-jwt-scope"},
				{Claim: "azp", Header: "x-jwt-client-id"}, {Claim: "permissions", Header: "x-jwt-permissions"}}}},
		Rules: []authz.Rule{{Name: "api", Require: authz.Requirement{Scopes: []string{"read:target"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	cur := authz.NewCurrent(authz.CurrentOptions{})
	cur.Store(a)
	s := NewServer(Options{Authorizer: cur})
	wires := make([][]byte, n)
	for i := range wires {
		c := iss.Claims(fmt.Sprintf("svc-%07d@clients", i))
		c["azp"], c["scope"] = "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a", "read:target write:target read:users openid profile"
		c["permissions"] = []string{"read:target", "write:target", "read:users"}
		wires[i] = hotRequest(t, "Bearer "+iss.Sign(t, c))
	}
	ctx := context.Background()
	pass := func() {
		for _, w := range wires {
			in := &checkMsg{srv: s}
			if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(w)}, in); err != nil {
				t.Fatal(err)
			}
			resp, err := s.checkMsg(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := resp.(*encodedResponse); !ok {
				t.Fatalf("answer %T", resp)
			} else if testing.Verbose() && &w[0] == &wires[0][0] {
				t.Logf("answer %d bytes", len(e.b))
			}
			if _, ok := resp.(*encodedResponse); !ok {
				t.Fatalf("answer %T", resp)
			}
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	pass() // verified and cached
	before := heap()
	pass() // answers encoded and stored
	per := float64(int64(heap())-int64(before)) / n
	pass() // stored answers sent: nothing new is kept
	after := heap()
	t.Logf("stored answer per token: %.0f bytes", per)
	if per > 640 {
		t.Errorf("stored answer per token = %.0f bytes, want ≤ 640", per)
	}
	if grown := float64(int64(after)-int64(before))/n - per; grown > 16 {
		t.Errorf("a pass over stored answers kept %.0f more bytes per token", grown)
	}
	runtime.KeepAlive(wires)
	runtime.KeepAlive(a)
}
