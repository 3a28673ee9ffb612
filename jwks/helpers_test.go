package jwks_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/jwtauthz/jwt-authz/internal/logbuf"
	"github.com/jwtauthz/jwt-authz/jwks"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	minRefresh = 30 * time.Second
	refresh    = 15 * time.Minute
)

// harness is one provider under test with its clock, metrics and logs.
type harness struct {
	p       *jwks.KeySet
	clk     *jwkstest.Clock
	reg     *prometheus.Registry
	metrics *jwks.Metrics
	logs    *logbuf.Buffer
	removed chan []string
}

// start builds and starts a provider on a fake clock; opts.Name, intervals,
// clock, metrics, logger and OnKeysRemoved get test defaults when unset.
func start(t *testing.T, opts jwks.Options) *harness {
	t.Helper()
	h := &harness{
		clk:     jwkstest.NewClock(time.Time{}),
		reg:     prometheus.NewRegistry(),
		logs:    &logbuf.Buffer{},
		removed: make(chan []string, 16),
	}
	if opts.Name == "" {
		opts.Name = "test"
	}
	if opts.MinRefreshInterval == 0 {
		opts.MinRefreshInterval = minRefresh
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = refresh
	}
	if opts.FetchTimeout == 0 {
		opts.FetchTimeout = 2 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = h.clk
	}
	if opts.Metrics == nil {
		opts.Metrics = jwks.NewMetrics(h.reg)
	}
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.OnKeysRemoved == nil {
		opts.OnKeysRemoved = func(kids []string) { h.removed <- kids }
	}
	h.metrics = opts.Metrics
	p, err := jwks.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.p = p
	p.Start(t.Context())
	t.Cleanup(p.Close)
	return h
}

// startReady starts a provider and waits for its first key set and for its
// scheduler to come to rest.
func startReady(t *testing.T, opts jwks.Options) *harness {
	t.Helper()
	h := start(t, opts)
	h.waitReady(t)
	h.settle(t)
	return h
}

// settle waits until the provider's scheduler sleeps on its timer.
func (h *harness) settle(t *testing.T) {
	t.Helper()
	h.clk.WaitTimers(t, 1)
}

// advance moves the clock and waits for the provider to settle again.
func (h *harness) advance(t *testing.T, d time.Duration) {
	t.Helper()
	h.clk.Advance(d)
	h.settle(t)
}

func (h *harness) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := contextWithTimeout(t, 10*time.Second)
	defer cancel()
	if err := h.p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// metric returns the value of the series of name with these labels, 0 when
// absent.
func (h *harness) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return gather(t, h.reg, name, labels)
}

func (h *harness) fetches(t *testing.T, result string) float64 {
	t.Helper()
	return h.metric(t, "jwt_authz_jwks_fetches_total", map[string]string{"provider": "test", "result": result})
}

func gather(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}
