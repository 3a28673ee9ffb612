// Package prometheus holds the Prometheus configuration of jwt-authz: the
// alert rules (alerts.yaml), their promtool unit tests (alerts_test.yaml)
// and the compose demo's prometheus.yml; its test checks the rules.
package prometheus

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/deploy/internal/k8sobj"
	"github.com/jwtauthz/jwt-authz/internal/metriclist"
)

// exportedMetrics are the series jwt-authz exports (docs/reference.md's metrics table).
var exportedMetrics = metriclist.Series()

var metricName = regexp.MustCompile(`\bjwt_authz_[a-z_]+`)

// TestAlertRules: the file has rulefmt's shape, every alert has a
// severity and a summary, refers only to metrics jwt-authz exports, and
// the alerts docs/scaling.md names are there.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f k8sobj.RuleGroups
	if err := k8sobj.StrictYAML(b, &f); err != nil {
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
				if !exportedMetrics[m] {
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
		if err := k8sobj.StrictYAML([]byte(bad), &k8sobj.RuleGroups{}); err == nil {
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

// ruleTests is promtool's rule unit test file, as far as alerts_test.yaml
// uses it.
type ruleTests struct {
	RuleFiles          []string `json:"rule_files"`
	EvaluationInterval string   `json:"evaluation_interval"`
	Tests              []struct {
		Name        string `json:"name"`
		Interval    string `json:"interval"`
		InputSeries []struct {
			Series string `json:"series"`
			Values string `json:"values"`
		} `json:"input_series"`
		AlertRuleTests []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestAlertUnitTests runs `promtool test rules alerts_test.yaml`: every
// alert fires on its failure (the first refused reload included) and stays
// quiet on its healthy twin. Every alert of alerts.yaml must have a case
// where it fires and one where it does not.
func TestAlertUnitTests(t *testing.T) {
	t.Parallel()
	var rt ruleTests
	if err := k8sobj.StrictYAML([]byte(mustRead(t, "alerts_test.yaml")), &rt); err != nil {
		t.Fatalf("alerts_test.yaml: %v", err)
	}
	var rules k8sobj.RuleGroups
	if err := k8sobj.StrictYAML([]byte(mustRead(t, "alerts.yaml")), &rules); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alerts_test.yaml: %s needs a case where it fires (%v) and one where it does not (%v)", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install it (apt-get install -y prometheus) to run the alert unit tests")
	}
	out, err := exec.Command(promtool, "test", "rules", "alerts_test.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// The negative: a wrong expectation fails, so the run above checked
	// something (on the first case alone; the day of series is slow).
	dir := t.TempDir()
	first, _, _ := strings.Cut(mustRead(t, "alerts_test.yaml"), "\n# Why the series must exist at 0")
	bad := strings.Replace(first, "refused a new config", "accepted a new config", 1)
	if err := os.WriteFile(dir+"/alerts.yaml", []byte(mustRead(t, "alerts.yaml")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/alerts_test.yaml", []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "JwtAuthzConfigReloadErrors") {
		t.Errorf("promtool accepted a wrong expectation (%v):\n%s", err, out)
	}
}
