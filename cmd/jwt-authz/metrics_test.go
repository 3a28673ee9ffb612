package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestMetricsExistAtZero: every labelled counter an alert of
// deploy/prometheus/alerts.yaml reads is exported at 0 before anything
// happened, so rate() and increase() see the first event (over a series
// that did not exist they are empty, and the alert never fires). Then the
// first refused reload moves error from 0 to 1.
func TestMetricsExistAtZero(t *testing.T) {
	iss := jwkstest.New(t, jwkstest.Options{})
	cfg := filepath.Join(t.TempDir(), "jwt-authz.yaml")
	writeConfig(t, cfg, serveYAML(iss, "read:target"))
	p := startServe(t, cfg)
	eventually(t, "readyz 200", func() bool { code, _ := p.get(t, "/readyz"); return code == 200 })

	_, metrics := p.get(t, "/metrics")
	zero := []string{
		`jwt_authz_config_reloads_total{result="error"} 0`,
		`jwt_authz_config_reloads_total{result="success"} 0`,
		`jwt_authz_jwks_fetches_total{provider="auth0",result="error"} 0`,
		`jwt_authz_jwks_fetches_total{provider="auth0",result="not_modified"} 0`,
		`jwt_authz_jwks_unknown_kid_refetches_total{provider="auth0"} 0`,
		`jwt_authz_checks_total{decision="allow",provider="auth0",reason="ok"} 0`,
		`jwt_authz_checks_total{decision="deny",provider="auth0",reason="keys_unavailable"} 0`,
		`jwt_authz_checks_total{decision="deny",provider="auth0",reason="expired"} 0`,
		`jwt_authz_checks_total{decision="deny",provider="auth0",reason="insufficient_scope"} 0`,
		`jwt_authz_checks_total{decision="deny",provider="none",reason="missing_token"} 0`,
		`jwt_authz_checks_total{decision="deny",provider="none",reason="unknown_issuer"} 0`,
		`jwt_authz_checks_total{decision="deny",provider="none",reason="bad_request"} 0`,
		`jwt_authz_token_cache_lookups_total{result="hit"} 0`,
		`jwt_authz_token_cache_lookups_total{result="miss"} 0`,
	}
	for _, want := range zero {
		if !hasLine(metrics, want) {
			t.Errorf("/metrics lacks the line %s", want)
		}
	}
	// Only reasons a token of the provider can get are attributed to it.
	if strings.Contains(metrics, `provider="auth0",reason="missing_token"`) {
		t.Error("missing_token is counted per provider; no token names none")
	}

	writeConfig(t, cfg, "providers: [{name: BAD}]\n")
	eventually(t, "first reload error counted", func() bool {
		_, m := p.get(t, "/metrics")
		return hasLine(m, `jwt_authz_config_reloads_total{result="error"} 1`)
	})
	_, metrics = p.get(t, "/metrics")
	if !hasLine(metrics, `jwt_authz_config_reloads_total{result="success"} 0`) {
		t.Error("a refused reload counted as a success")
	}
}

func hasLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}
