package jwks

import "github.com/prometheus/client_golang/prometheus"

// Results of a fetch, the values of the result label.
const (
	resultSuccess     = "success"
	resultError       = "error"
	resultNotModified = "not_modified"
)

// Metrics are the key-set metrics of every provider. Build them once per
// process with NewMetrics and share them across providers and config
// reloads. A nil *Metrics records nothing.
type Metrics struct {
	fetches     *prometheus.CounterVec
	refetches   *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	keys        *prometheus.GaugeVec
	ready       *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz",
			Subsystem: "jwks",
			Name:      "fetches_total",
			Help:      "Key set fetches by provider and result (success, error, not_modified).",
		}, []string{"provider", "result"}),
		refetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz",
			Subsystem: "jwks",
			Name:      "unknown_kid_refetches_total",
			Help:      "Key set fetches started because a token named an unknown kid.",
		}, []string{"provider"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "jwt_authz",
			Subsystem: "jwks",
			Name:      "last_success_timestamp_seconds",
			Help:      "Unix time of the provider's last successful key set fetch (200 or 304).",
		}, []string{"provider"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "jwt_authz",
			Subsystem: "jwks",
			Name:      "keys",
			Help:      "Usable keys in the provider's current key set.",
		}, []string{"provider"}),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "jwt_authz",
			Name:      "provider_ready",
			Help:      "1 when the provider has a usable key set, 0 while its tokens are answered 503 keys_unavailable.",
		}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.fetches, m.refetches, m.lastSuccess, m.keys, m.ready)
	}
	return m
}

// Forget deletes every series of provider, for a provider that left the
// configuration.
func (m *Metrics) Forget(provider string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"provider": provider}
	m.fetches.DeletePartialMatch(l)
	m.refetches.DeletePartialMatch(l)
	m.lastSuccess.DeletePartialMatch(l)
	m.keys.DeletePartialMatch(l)
	m.ready.DeletePartialMatch(l)
}

// init makes a provider's series exist at zero, so rate() sees the first
// increment, and sets its readiness.
func (m *Metrics) init(provider string, ready bool) {
	if m == nil {
		return
	}
	m.setReady(provider, ready)
	for _, r := range []string{resultSuccess, resultError, resultNotModified} {
		m.fetches.WithLabelValues(provider, r)
	}
	m.refetches.WithLabelValues(provider)
}

func (m *Metrics) fetched(provider, result string, unix float64) {
	if m == nil {
		return
	}
	m.fetches.WithLabelValues(provider, result).Inc()
	if result != resultError {
		m.lastSuccess.WithLabelValues(provider).Set(unix)
	}
}

func (m *Metrics) refetched(provider string) {
	if m == nil {
		return
	}
	m.refetches.WithLabelValues(provider).Inc()
}

func (m *Metrics) setKeys(provider string, n int) {
	if m == nil {
		return
	}
	m.keys.WithLabelValues(provider).Set(float64(n))
}

func (m *Metrics) setReady(provider string, ready bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ready {
		v = 1
	}
	m.ready.WithLabelValues(provider).Set(v)
}
