package replay

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the metrics; constants only, never request data.
const (
	storeMemory = "memory"
	storeRedis  = "redis"

	errorTimeout     = "timeout"     // no answer within the bound
	errorUnavailable = "unavailable" // refused connection, protocol or server error
	errorFull        = "full"        // the memory store is full of live keys

	resultNew   = "new"
	resultSeen  = "seen"
	resultError = "error"
)

// metrics are shared by the stores of one registry: a reload that builds a new
// store keeps counting on the same series.
type metrics struct {
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jwt_authz",
			Subsystem: "dpop",
			Name:      "replay_store_errors_total",
			Help:      "DPoP replay-store claims that could not be answered; the proof was refused (fail closed).",
		}, []string{"store", "error"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "jwt_authz",
			Subsystem: "dpop",
			Name:      "replay_store_duration_seconds",
			Help:      "Time of one claim on the shared DPoP replay store, by result.",
			Buckets:   []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.errors, err = register(reg, m.errors); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the collector already registered under
// the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}
