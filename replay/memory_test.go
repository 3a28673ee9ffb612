package replay

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

func newMemory(t *testing.T, opts MemoryOptions) *Memory {
	t.Helper()
	m, err := NewMemory(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// model is the obviously-correct store the property test compares Memory
// with: a map from key to expiry, scanned in full.
type model struct {
	max     int
	expires map[string]time.Time
}

func (m *model) claim(key string, expiry, now time.Time) (bool, error) {
	if key == "" || len(key) > MaxKeyBytes {
		return false, ErrInvalidKey
	}
	if !expiry.After(now) {
		return false, ErrExpired
	}
	live := 0
	for _, e := range m.expires {
		if e.After(now) {
			live++
		}
	}
	if e, ok := m.expires[key]; ok && e.After(now) {
		return false, nil
	}
	if live >= m.max {
		return false, ErrFull
	}
	m.expires[key] = expiry
	return true, nil
}

// TestMemoryMatchesModel drives Memory and the model with the same generated
// sequences of claims and clock steps: every answer must agree, a live key is
// never answered "new" twice, and the store never holds more than MaxEntries.
func TestMemoryMatchesModel(t *testing.T) {
	t.Parallel()
	const seed uint64 = 20261202 // fixed: a failure replays; change it to explore
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for run := range 300 {
		max := 1 + rng.IntN(8)
		clock := jwkstest.NewClock(time.Time{})
		mem := newMemory(t, MemoryOptions{MaxEntries: max, Now: clock.Now})
		mod := &model{max: max, expires: map[string]time.Time{}}
		keys := 2 + rng.IntN(12)
		for step := range 200 {
			if rng.IntN(4) == 0 {
				clock.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
			}
			now := clock.Now()
			key := "jti-" + strconv.Itoa(rng.IntN(keys))
			switch rng.IntN(40) {
			case 0:
				key = ""
			case 1:
				key = strings.Repeat("x", MaxKeyBytes+rng.IntN(3))
			}
			// Expiries from the past to ten seconds ahead, on whole
			// milliseconds and sometimes exactly now.
			expiry := now.Add(time.Duration(rng.IntN(12000)-2000) * time.Millisecond)
			got, gotErr := mem.Claim(t.Context(), key, expiry)
			want, wantErr := mod.claim(key, expiry, now)
			if got != want || !errors.Is(gotErr, wantErr) || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("seed %d run %d step %d: Claim(%.12q, now%+v) = %v, %v; model %v, %v",
					seed, run, step, key, expiry.Sub(now), got, gotErr, want, wantErr)
			}
			if n := mem.Len(); n > max {
				t.Fatalf("seed %d run %d step %d: Len() = %d > MaxEntries %d", seed, run, step, n, max)
			}
		}
	}
}

func TestMemoryFullRefusesNewKeysAndKeepsLiveOnes(t *testing.T) {
	t.Parallel()
	clock := jwkstest.NewClock(time.Time{})
	reg := prometheus.NewRegistry()
	mem := newMemory(t, MemoryOptions{MaxEntries: 2, Now: clock.Now, Registerer: reg})
	ctx := t.Context()
	t0 := clock.Now()
	mustClaim(t, mem, "a", t0.Add(10*time.Second), true)
	mustClaim(t, mem, "b", t0.Add(20*time.Second), true)

	if ok, err := mem.Claim(ctx, "c", t0.Add(5*time.Second)); ok || !errors.Is(err, ErrFull) {
		t.Fatalf("third key in a full store: got %v, %v; want false, ErrFull", ok, err)
	}
	// The live keys are still remembered: neither replay passes.
	mustClaim(t, mem, "a", t0.Add(10*time.Second), false)
	mustClaim(t, mem, "b", t0.Add(20*time.Second), false)

	clock.Advance(10 * time.Second) // a's expiry: a is gone, room for c
	mustClaim(t, mem, "c", clock.Now().Add(time.Second), true)
	mustClaim(t, mem, "b", t0.Add(20*time.Second), false)
	if n := mem.Len(); n != 2 {
		t.Fatalf("Len() = %d, want 2", n)
	}

	wantErrorMetric(t, reg, `jwt_authz_dpop_replay_store_errors_total{error="full",store="memory"} 1`)
}

func TestMemoryExpiredKeyIsNewAgain(t *testing.T) {
	t.Parallel()
	clock := jwkstest.NewClock(time.Time{})
	mem := newMemory(t, MemoryOptions{Now: clock.Now})
	exp := clock.Now().Add(330 * time.Second)
	mustClaim(t, mem, "k", exp, true)
	clock.Advance(329 * time.Second)
	mustClaim(t, mem, "k", exp, false)
	clock.Advance(time.Second) // now == expiry: the window is over
	mustClaim(t, mem, "k", clock.Now().Add(time.Second), true)
	if n := mem.Len(); n != 1 {
		t.Fatalf("Len() = %d, want 1 (the expired entry evicted)", n)
	}
}

func TestMemoryRefusesBadInput(t *testing.T) {
	t.Parallel()
	clock := jwkstest.NewClock(time.Time{})
	mem := newMemory(t, MemoryOptions{Now: clock.Now})
	now := clock.Now()
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		key    string
		expiry time.Time
		want   error
	}{
		{name: "empty key", ctx: t.Context(), key: "", expiry: now.Add(time.Second), want: ErrInvalidKey},
		{name: "key too long", ctx: t.Context(), key: strings.Repeat("j", MaxKeyBytes+1), expiry: now.Add(time.Second), want: ErrInvalidKey},
		{name: "expiry now", ctx: t.Context(), key: "k", expiry: now, want: ErrExpired},
		{name: "expiry past", ctx: t.Context(), key: "k", expiry: now.Add(-time.Hour), want: ErrExpired},
		{name: "context done", ctx: canceled, key: "k", expiry: now.Add(time.Second), want: context.Canceled},
	} {
		ok, err := mem.Claim(tc.ctx, tc.key, tc.expiry)
		if ok || !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, %v; want false, %v", tc.name, ok, err, tc.want)
		}
	}
	// The longest allowed key works, and nothing above was recorded.
	mustClaim(t, mem, strings.Repeat("j", MaxKeyBytes), now.Add(time.Second), true)
	mustClaim(t, mem, "k", now.Add(time.Second), true)
}

// TestMemoryConcurrentClaims: of many goroutines claiming the same keys at
// once, exactly one wins each key (run with -race).
func TestMemoryConcurrentClaims(t *testing.T) {
	t.Parallel()
	mem := newMemory(t, MemoryOptions{MaxEntries: 1000})
	claimConcurrently(t, []Store{mem}, 32, 50)
}

// claimConcurrently has goroutines claim the same keys at once, spread over
// the stores (replicas of one shared store, or one store), and checks that
// exactly one claim of each key answered new.
func claimConcurrently(t *testing.T, stores []Store, goroutines, keys int) {
	t.Helper()
	exp := time.Now().Add(time.Minute)
	wins := make([]atomic.Int32, keys)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for k := range keys {
				ok, err := stores[g%len(stores)].Claim(t.Context(), "jti-"+strconv.Itoa(k), exp)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					wins[k].Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for k := range keys {
		if n := wins[k].Load(); n != 1 {
			t.Errorf("key %d: %d claims answered new, want exactly 1", k, n)
		}
	}
}

// wantErrorMetric compares jwt_authz_dpop_replay_store_errors_total,
// scraped as text, with the given sample lines.
func wantErrorMetric(t *testing.T, reg *prometheus.Registry, samples ...string) {
	t.Helper()
	want := `# HELP jwt_authz_dpop_replay_store_errors_total DPoP replay-store claims that could not be answered; the proof was refused (fail closed).
# TYPE jwt_authz_dpop_replay_store_errors_total counter
` + strings.Join(samples, "\n") + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "jwt_authz_dpop_replay_store_errors_total"); err != nil {
		t.Fatal(err)
	}
}

func TestMemorySharesMetricsAcrossStores(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	// A reload builds a new store on the same registry.
	for range 2 {
		mem := newMemory(t, MemoryOptions{MaxEntries: 1, Registerer: reg})
		mustClaim(t, mem, "a", time.Now().Add(time.Minute), true)
		if _, err := mem.Claim(t.Context(), "b", time.Now().Add(time.Minute)); !errors.Is(err, ErrFull) {
			t.Fatalf("got %v, want ErrFull", err)
		}
	}
	if got := testutil.ToFloat64(mustCounter(t, reg)); got != 2 {
		t.Fatalf("full errors = %v, want 2", got)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m.errors.WithLabelValues(storeMemory, errorFull)
}

func mustClaim(t *testing.T, s Store, key string, expiry time.Time, want bool) {
	t.Helper()
	got, err := s.Claim(t.Context(), key, expiry)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Claim(%q) = %v, want %v", key, got, want)
	}
}
