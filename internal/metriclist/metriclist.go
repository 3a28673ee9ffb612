// Package metriclist owns the one list of the metrics jwt-authz exports:
// what the packages register (read from their constructors), then what
// cmd/jwt-authz serve registers itself. docs/reference.md's metrics table is
// written from it (internal/refdoc); the tests of the running server, the
// dashboards and the alerts check names against it.
//
// It imports only authz, jwks and Prometheus' client, so the deploy module's
// tests can use it without the server's adapters. Every function is pure.
package metriclist

import (
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks"
	"github.com/jwtauthz/jwt-authz/replay"
)

// recorder is a prometheus.Registerer that keeps what is registered.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// ServeMetrics are the metrics cmd/jwt-authz serve registers itself;
// its test checks them against a running server's /metrics.
var ServeMetrics = []Metric{
	{Name: "jwt_authz_config_reloads_total", Type: "counter", Labels: "`result`", Help: "Config reloads by result (success, error)."},
	{Name: "jwt_authz_build_info", Type: "gauge", Labels: "`version`, `goversion`", Help: "Build information; always 1."},
}

// Metric is one metric family: its name, type, labels (as docs/reference.md
// writes them) and help.
type Metric struct{ Name, Type, Labels, Help string }

var descRE = regexp.MustCompile(`fqName: "([^"]+)", help: "((?:[^"\\]|\\.)*)".*variableLabels: \{([^}]*)\}`)

// All lists the metrics the packages register, then ServeMetrics.
func All() []Metric {
	r := &recorder{}
	authz.NewMetrics(r)
	authz.NewCacheMetrics(r)
	jwks.NewMetrics(r)
	if _, err := replay.NewMemory(replay.MemoryOptions{Registerer: r}); err != nil {
		panic(err) // a recorder refuses nothing
	}
	var out []Metric
	for _, c := range r.cs {
		var typ string
		// Gauge first: a Gauge also has a Counter's methods.
		switch c.(type) {
		case *prometheus.GaugeVec, prometheus.Gauge:
			typ = "gauge"
		case *prometheus.CounterVec, prometheus.Counter:
			typ = "counter"
		case *prometheus.HistogramVec, prometheus.Histogram:
			typ = "histogram"
		default:
			typ = "untyped"
		}
		ch := make(chan *prometheus.Desc, 8)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				continue
			}
			labels := "—"
			if m[3] != "" {
				var ls []string
				for _, l := range strings.Split(m[3], ",") {
					ls = append(ls, "`"+strings.TrimSpace(l)+"`")
				}
				labels = strings.Join(ls, ", ")
			}
			out = append(out, Metric{Name: m[1], Type: typ, Labels: labels, Help: strings.ReplaceAll(m[2], `\"`, `"`)})
		}
	}
	return append(out, ServeMetrics...)
}

// Series are the names of every series jwt-authz exports: each metric of
// All, and for a histogram the _bucket, _sum and _count series it adds
// instead. Dashboards and alerts may name only these.
func Series() map[string]bool {
	out := map[string]bool{}
	for _, m := range All() {
		if m.Type != "histogram" {
			out[m.Name] = true
			continue
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			out[m.Name+suffix] = true
		}
	}
	return out
}
