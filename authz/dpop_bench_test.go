package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

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
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	claims := benchClaims(time.Now(), "svc-orders@clients")
	claims["cnf"] = map[string]any{"jkt": base64.RawURLEncoding.EncodeToString(tp)}
	tok := jwkstest.SignToken(b, "ES256", keys(b).signer("ES256"), map[string]any{"kid": "ES256"}, claims)
	ath := sha256.Sum256([]byte(tok))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		b.Fatal(err)
	}
	base := benchRequest("DPoP " + tok)
	n := 0
	// One proof per Check (a jti is single-use), made in batches with the
	// timer stopped: few live proofs, so the collector's work is the
	// Check's own.
	batch := make([]*authz.Request, 256)
	fill := func() {
		for i := range batch {
			n++
			obj, err := signer.Sign(fmt.Appendf(nil, `{"jti":"bench-%d","htm":"GET","htu":"https://api.example.com/v1/orders/12345","iat":%d,"ath":%q}`,
				n, time.Now().Unix(), base64.RawURLEncoding.EncodeToString(ath[:])))
			if err != nil {
				b.Fatal(err)
			}
			p, _ := obj.CompactSerialize()
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
