package authz_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/replay"
)

// BenchmarkCheckDPoPHit is a DPoP request whose ES256 token is in the
// cache: the proof (parse, ES256 signature with its own jwk, claims, htu,
// thumbprint) and its replay claim in the memory store are the work. Run
// it beside BenchmarkBareES256: the target is one ES256 verification plus
// 15%.
func BenchmarkCheckDPoPHit(b *testing.B) {
	store, err := replay.NewMemory(replay.MemoryOptions{MaxEntries: 1 << 22})
	if err != nil {
		b.Fatal(err)
	}
	opts := benchOptions(b, 1000, nil)
	opts.Providers[0].DPoP = authz.DPoPOptions{Mode: authz.SenderAllowed, Replay: store}
	a, err := authz.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	key := jwkstest.NewDPoPKey(b, "ES256")
	claims := benchClaims(time.Now(), "svc-orders@clients")
	claims["cnf"] = map[string]any{"jkt": key.JKT}
	tok := jwkstest.SignToken(b, "ES256", keys(b).signer("ES256"), map[string]any{"kid": "ES256"}, claims)
	base := benchRequest("DPoP " + tok)
	// One proof per Check (a jti is single-use), made in batches with the
	// timer stopped: few live proofs, so the collector's work is the
	// Check's own.
	batch := make([]*authz.Request, 256)
	fill := func() {
		for i := range batch {
			p := key.Proof(b, "GET", "https://api.example.com/v1/orders/12345", tok, time.Now())
			r := *base
			r.Scheme = "https"
			r.Headers = maps.Clone(base.Headers)
			r.Headers["dpop"] = p
			batch[i] = &r
		}
	}
	ctx := context.Background()
	fill()
	if d := a.Check(ctx, batch[0]); d.Reason != authz.ReasonOK { // fills the cache
		b.Fatalf("reason %q (%s)", d.Reason, d.Description)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i % len(batch)
		if j == 0 {
			b.StopTimer()
			fill()
			b.StartTimer()
		}
		if d := a.Check(ctx, batch[j]); !d.Allow {
			b.Fatalf("denied: %s (%s)", d.Reason, d.Description)
		}
	}
}
