package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// swappableKeys is a KeySource whose key set a test replaces at will, as a
// JWKS refresh does: each generation is a new StaticKeys with new *Key
// values, as the jwks package builds them.
type swappableKeys struct {
	cur atomic.Pointer[authz.StaticKeys]
}

func (s *swappableKeys) set(ks authz.StaticKeys) { s.cur.Store(&ks) }

func (s *swappableKeys) Key(ctx context.Context, kid string) (*authz.Key, error) {
	return s.cur.Load().Key(ctx, kid)
}

func (s *swappableKeys) Keys(ctx context.Context) ([]*authz.Key, error) {
	return s.cur.Load().Keys(ctx)
}

// modelSlot is one key of the model key set: a kid ("" for none), the
// index of a signer in the pool and the JWK alg ("" for none).
type modelSlot struct {
	kid    string
	signer int
	alg    string
}

// modelPool is the keys a model test draws from: two of each algorithm, so
// that a kid can be given to another key of the same type.
type modelPool struct {
	signers []crypto.Signer
	algs    []string // the JWS alg of each signer
}

func newModelPool(tb testing.TB) *modelPool {
	tb.Helper()
	k := keys(tb)
	rsa2, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	ec2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	_, ed2, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return &modelPool{
		signers: []crypto.Signer{k.rsa, rsa2, k.ec, ec2, k.ed, ed2},
		algs:    []string{"RS256", "RS256", "ES256", "ES256", "EdDSA", "EdDSA"},
	}
}

// keySet builds a fresh generation of *Key values for the slots.
func (p *modelPool) keySet(slots []modelSlot) authz.StaticKeys {
	out := make(authz.StaticKeys, 0, len(slots))
	for _, s := range slots {
		out = append(out, &authz.Key{ID: s.kid, Algorithm: s.alg, Public: p.signers[s.signer].Public()})
	}
	return out
}

// TestCacheTransparency is the cache-invisibility invariant as a model
// test: for generated sequences of key-set changes (add, remove, replace a
// key under the same kid, swap a kid-less key, change a key's alg, reorder,
// empty set) and requests, an authorizer with the token cache gives every
// request the same reason, status and kid as one without it.
func TestCacheTransparency(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 0x5eed))
	pool := newModelPool(t)
	now := time.Now()
	kids := []string{"k1", "k2", "k3", ""}

	// Every token the sequences send: each signer under each kid header,
	// kid-less too, and a few that are bad anyway.
	var toks []string
	for i, sg := range pool.signers {
		for _, kid := range kids {
			h := map[string]any{"kid": kid}
			if kid == "" {
				h = map[string]any{}
			}
			cl := benchClaims(now, fmt.Sprintf("s%d-%s", i, kid))
			toks = append(toks, jwkstest.SignToken(t, pool.algs[i], sg, h, cl))
		}
	}
	expired := benchClaims(now.Add(-3*time.Hour), "old")
	toks = append(toks, jwkstest.SignToken(t, "RS256", pool.signers[0], map[string]any{"kid": "k1"}, expired))

	src := &swappableKeys{}
	reg := prometheus.NewRegistry()
	build := func(cache int, cm *authz.CacheMetrics) *authz.Authorizer {
		o := benchOptions(t, cache, func() time.Time { return now })
		o.Providers[0].Keys = src
		o.CacheMetrics = cm
		o.Metrics = nil
		a, err := authz.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cm := authz.NewCacheMetrics(reg)

	const sequences, steps = 30, 30
	for seq := range sequences {
		var slots []modelSlot
		for range 1 + rng.IntN(3) {
			slots = append(slots, modelSlot{kid: kids[rng.IntN(len(kids))], signer: rng.IntN(len(pool.signers))})
		}
		src.set(pool.keySet(slots))
		cached, plain := build(16, cm), build(0, nil)
		var trace []string
		for step := range steps {
			switch op := rng.IntN(10); {
			case op < 5: // a request
			case op == 5: // add a key
				slots = append(slots, modelSlot{kid: kids[rng.IntN(len(kids))], signer: rng.IntN(len(pool.signers))})
			case op == 6 && len(slots) > 0: // remove a key
				i := rng.IntN(len(slots))
				slots = append(slots[:i:i], slots[i+1:]...)
			case op == 7 && len(slots) > 0: // another key under the same kid (or kid-less swap)
				slots[rng.IntN(len(slots))].signer = rng.IntN(len(pool.signers))
			case op == 8 && len(slots) > 0: // the same key with another (or no) alg
				s := &slots[rng.IntN(len(slots))]
				s.alg = []string{"", pool.algs[s.signer], "RS256", "EdDSA"}[rng.IntN(4)]
			case op == 9: // reorder, or a refresh with the same keys
				rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
			}
			src.set(pool.keySet(slots)) // a new generation of *Key every step
			trace = append(trace, fmt.Sprint(slots))
			tok := toks[rng.IntN(len(toks))]
			for range 2 { // the second send is the likely cache hit
				r := benchRequest("Bearer " + tok)
				got, want := cached.Check(t.Context(), r), plain.Check(t.Context(), r)
				if got.Reason != want.Reason || got.Status != want.Status || got.KeyID != want.KeyID || got.Allow != want.Allow {
					t.Fatalf("sequence %d step %d: cache on %s/%d kid %q, cache off %s/%d kid %q\nkey sets:\n%s",
						seq, step, got.Reason, got.Status, got.KeyID, want.Reason, want.Status, want.KeyID, strings.Join(trace, "\n"))
				}
			}
		}
	}
	hits := cacheLookups(t, reg, "hit")
	t.Logf("%v cache hits, %v misses", hits, cacheLookups(t, reg, "miss"))
	if hits < 50 {
		t.Errorf("only %v cache hits: the model does not exercise the cache", hits)
	}
}

// cacheLookups reads jwt_authz_token_cache_lookups_total{result} from reg.
func cacheLookups(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "jwt_authz_token_cache_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestCacheHitAfterRefreshAllocatesNothing: after a refresh that serves the
// same keys as new values, a hit compares the key material and still
// allocates nothing.
func TestCacheHitAfterRefreshAllocatesNothing(t *testing.T) {
	k := keys(t)
	src := &swappableKeys{}
	src.set(k.staticKeys())
	o := benchOptions(t, 10, nil)
	o.Providers[0].Keys = src
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		r := benchRequest("Bearer " + benchToken(t, alg, time.Now(), "svc@clients"))
		if d := a.Check(ctx, r); !d.Allow {
			t.Fatalf("%s: denied: %s", alg, d.Reason)
		}
		src.set(k.staticKeys()) // the same keys, new *Key values
		if n := testing.AllocsPerRun(100, func() {
			if d := a.Check(ctx, r); !d.Allow {
				t.Fatalf("%s: denied after refresh: %s", alg, d.Reason)
			}
		}); n != 0 {
			t.Errorf("%s: a cache hit after a refresh allocates %v times, want 0", alg, n)
		}
	}
}
