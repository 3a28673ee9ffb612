// Package prometheus holds the Prometheus configuration of jwt-authz; its
// test checks the alert rules.
package prometheus

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// ruleFile is Prometheus's rule file format (rulefmt), as far as it is
// used; strict decoding rejects any other or misspelt field.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// contractMetrics are the metric names of docs/reference.md ("Metrics").
var contractMetrics = map[string]bool{
	"jwt_authz_checks_total":                        true,
	"jwt_authz_check_duration_seconds_bucket":       true,
	"jwt_authz_jwks_fetches_total":                  true,
	"jwt_authz_jwks_unknown_kid_refetches_total":    true,
	"jwt_authz_jwks_last_success_timestamp_seconds": true,
	"jwt_authz_jwks_keys":                           true,
	"jwt_authz_token_cache_lookups_total":           true,
	"jwt_authz_token_cache_entries":                 true,
	"jwt_authz_config_reloads_total":                true,
	"jwt_authz_build_info":                          true,
	"jwt_authz_provider_ready":                      true,
}

var metricName = regexp.MustCompile(`\bjwt_authz_[a-z_]+`)

func strictYAML(b []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// TestAlertRules: the file has the contract's shape, every alert has a
// severity and a summary, refers only to metrics jwt-authz exports, and
// the alerts docs/scaling.md names are there.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := strictYAML(b, &f); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: rule without alert or expr: %+v", g.Name, r)
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				if !contractMetrics[m] {
					t.Errorf("%s: %s is not a jwt-authz metric", r.Alert, m)
				}
			}
		}
	}
	for _, want := range []string{
		"JwtAuthzJWKSFetchErrors", "JwtAuthzKeysStale", "JwtAuthzProviderNotReady",
		"JwtAuthzDenyRatioSpike", "JwtAuthzSlowChecks", "JwtAuthzConfigReloadErrors",
	} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestAlertRulesStrict is the negative test of the shape check.
func TestAlertRulesStrict(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{{"    for: 15m", "    for_: 15m"}, {"    expr:", "    Expr:"}} {
		bad := strings.Replace(string(b), tc[0], tc[1], 1)
		if bad == string(b) {
			t.Fatalf("alerts.yaml has no %q", tc[0])
		}
		if err := strictYAML([]byte(bad), &ruleFile{}); err == nil {
			t.Errorf("%q → %q decoded without error", tc[0], tc[1])
		}
	}
}

// TestPromtool checks the rules with Prometheus's own checker: PromQL
// syntax, templates, durations.
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install it (apt-get install -y prometheus) to check the PromQL of alerts.yaml")
	}
	out, err := exec.Command(promtool, "check", "rules", "alerts.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	bad := strings.Replace(mustRead(t, "alerts.yaml"), "> 2 * 900", "> 2 * 900)", 1)
	tmp := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(tmp, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", tmp).CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a broken expression:\n%s", out)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPromtoolProviderNotReady runs promtool's rule unit tests: a provider
// whose jwt_authz_provider_ready stays 0 fires JwtAuthzProviderNotReady
// after 5 minutes, one that recovers does not, and neither does a ready one.
func TestPromtoolProviderNotReady(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install it (apt-get install -y prometheus) to unit-test alerts.yaml")
	}
	dir := t.TempDir()
	rules, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/alerts.yaml", rules, 0o644); err != nil {
		t.Fatal(err)
	}
	const tests = `rule_files: [alerts.yaml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'jwt_authz_provider_ready{provider="down", instance="a"}'
    values: '0x10'
  - series: 'jwt_authz_provider_ready{provider="auth0", instance="a"}'
    values: '1x10'
  - series: 'jwt_authz_provider_ready{provider="blip", instance="a"}'
    values: '0 0 1x8'
  alert_rule_test:
  - eval_time: 3m
    alertname: JwtAuthzProviderNotReady
    exp_alerts: []
  - eval_time: 8m
    alertname: JwtAuthzProviderNotReady
    exp_alerts:
    - exp_labels: {severity: critical, provider: down, instance: a}
      exp_annotations:
        summary: "jwt-authz provider down on a has no keys; its tokens get 503"
        description: "See /readyz (status degraded) and /debug/keys for the last fetch error."
`
	if err := os.WriteFile(dir+"/tests.yaml", []byte(tests), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "tests.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
