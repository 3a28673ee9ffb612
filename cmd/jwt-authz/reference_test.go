package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/internal/metriclist"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestReferenceListsEveryMetric scrapes a running server after an allowed
// and a denied Check and a refused reload: every jwt_authz_* family it
// exposes is in docs/reference.md's metrics table (metriclist.All), with
// the same type.
func TestReferenceListsEveryMetric(t *testing.T) {
	iss := jwkstest.New(t, jwkstest.Options{})
	s, cfg := serveReady(t, iss, "")
	s.check(t, "-token", iss.Sign(t, iss.Claims("c@clients")), "-path", "/echo")
	s.check(t, "-path", "/echo")
	writeConfig(t, cfg, "providers: [{name: BAD}]\n")
	eventually(t, "reload refused", func() bool {
		_, m := s.get(t, "/metrics")
		return strings.Contains(m, "jwt_authz_config_reloads_total")
	})
	documented := map[string]string{}
	for _, m := range metriclist.All() {
		documented[m.Name] = m.Type
	}
	_, body := s.get(t, "/metrics")
	typeRE := regexp.MustCompile(`(?m)^# TYPE (jwt_authz_\w+) (\w+)$`)
	found := typeRE.FindAllStringSubmatch(body, -1)
	if len(found) < 8 {
		t.Fatalf("only %d jwt_authz families scraped:\n%s", len(found), body)
	}
	for _, f := range found {
		if typ, ok := documented[f[1]]; !ok || typ != f[2] {
			t.Errorf("/metrics has %s (%s); docs/reference.md lists it as %q (add it to metriclist.ServeMetrics or its package, then go test ./internal/refdoc -update)", f[1], f[2], typ)
		}
	}
}
