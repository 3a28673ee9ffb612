package authz

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics holds the decision metrics. Build it once per process with
// NewMetrics and share it across config reloads.
type Metrics struct {
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	allowDur prometheus.Observer
	denyDur  prometheus.Observer
}

// NewMetrics registers the decision metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		checks: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz",
			Name:      "checks_total",
			Help:      "Check decisions by decision, reason and provider.",
		}, []string{"decision", "reason", "provider"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "jwt_authz",
			Name:      "check_duration_seconds",
			Help:      "Time to decide a Check, by decision.",
			// From 10 µs (a cache hit) to 250 ms (past Envoy's default
			// 200 ms ext_authz timeout, so timeouts show).
			Buckets: []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25},
		}, []string{"decision"}),
	}
	m.allowDur = m.duration.WithLabelValues("allow")
	m.denyDur = m.duration.WithLabelValues("deny")
	return m
}

// Reasons whose series exist at zero from the start, so rate() and
// increase() in an alert see the first denial instead of a series that did
// not exist (alerts over a missing series stay silent). Per provider: the
// answers a token of that provider can get; with provider "none": the
// denials made before a token names a provider.
var (
	providerDenyReasons = []Reason{
		ReasonDisallowedAlgorithm, ReasonUnknownKey, ReasonInvalidSignature, ReasonExpired,
		ReasonNotYetValid, ReasonInvalidAudience, ReasonTokenTooOld, ReasonInvalidType,
		ReasonMissingClaim, ReasonInsufficientScope, ReasonClaimMismatch, ReasonKeysUnavailable,
		ReasonInvalidProof, ReasonSenderMismatch, ReasonMissingProof, ReasonUnboundToken,
	}
	noProviderDenyReasons = []Reason{
		ReasonMissingToken, ReasonMalformedToken, ReasonUnknownIssuer, ReasonNoMatchingRule, ReasonBadRequest,
	}
)

// initSeries makes the checks_total series of the providers exist at zero.
func (m *Metrics) initSeries(providers []string) {
	if m == nil {
		return
	}
	for _, r := range noProviderDenyReasons {
		m.checks.WithLabelValues("deny", string(r), "none")
	}
	for _, p := range providers {
		m.checks.WithLabelValues("allow", string(ReasonOK), p)
		for _, r := range providerDenyReasons {
			m.checks.WithLabelValues("deny", string(r), p)
		}
	}
}

func (m *Metrics) observe(d *Decision, took time.Duration) {
	if m == nil {
		return
	}
	provider := d.Provider
	if provider == "" {
		provider = "none"
	}
	label := d.DecisionLabel()
	m.checks.WithLabelValues(label, string(d.Reason), provider).Inc()
	if d.Allow {
		m.allowDur.Observe(took.Seconds())
	} else {
		m.denyDur.Observe(took.Seconds())
	}
}

// CacheMetrics holds the verified-token cache metrics.
type CacheMetrics struct {
	hits, misses prometheus.Counter
	entries      prometheus.Gauge
}

// NewCacheMetrics registers the token cache metrics on reg.
func NewCacheMetrics(reg prometheus.Registerer) *CacheMetrics {
	f := promauto.With(reg)
	lookups := f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "jwt_authz",
		Name:      "token_cache_lookups_total",
		Help:      "Verified-token cache lookups by result (hit, miss).",
	}, []string{"result"})
	return &CacheMetrics{
		hits:   lookups.WithLabelValues("hit"),
		misses: lookups.WithLabelValues("miss"),
		entries: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "jwt_authz",
			Name:      "token_cache_entries",
			Help:      "Verified tokens held in the cache.",
		}),
	}
}

// Checks returns the jwt_authz_checks_total counter for the labels (for
// tests and the soak driver).
func (m *Metrics) Checks(decision, reason, provider string) prometheus.Counter {
	return m.checks.WithLabelValues(decision, reason, provider)
}
