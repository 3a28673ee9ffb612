package metriclist_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/internal/metriclist"
	"github.com/jwtauthz/jwt-authz/jwks"
)

// TestAllIsWhatThePackagesRegister: every family a real registry gathers
// from the packages' constructors is listed with its type, and nothing
// else is but ServeMetrics.
func TestAllIsWhatThePackagesRegister(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	authz.NewMetrics(reg).Checks("allow", "ok", "p").Inc()
	authz.NewCacheMetrics(reg)
	jwks.NewMetrics(reg)
	listed := map[string]string{}
	for _, m := range metriclist.All() {
		if _, dup := listed[m.Name]; dup {
			t.Errorf("%s listed twice", m.Name)
		}
		listed[m.Name] = m.Type
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if typ := strings.ToLower(mf.GetType().String()); listed[mf.GetName()] != typ {
			t.Errorf("%s (%s) gathered; listed as %q", mf.GetName(), typ, listed[mf.GetName()])
		}
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Fatalf("gathered %d series (%v)", n, err)
	}
	for _, m := range metriclist.ServeMetrics {
		if listed[m.Name] != m.Type {
			t.Errorf("serve metric %s missing from All", m.Name)
		}
	}
}

func TestSeries(t *testing.T) {
	t.Parallel()
	s := metriclist.Series()
	for name, want := range map[string]bool{
		"jwt_authz_checks_total":                  true,
		"jwt_authz_check_duration_seconds_bucket": true,
		"jwt_authz_check_duration_seconds_sum":    true,
		"jwt_authz_check_duration_seconds_count":  true,
		"jwt_authz_check_duration_seconds":        false, // a histogram's family name is no series
		"jwt_authz_jwks_keys":                     true,
		"jwt_authz_config_reloads_total":          true,
		"jwt_authz_build_info":                    true,
		"jwt_authz_nonexistent_total":             false,
	} {
		if s[name] != want {
			t.Errorf("Series()[%q] = %v, want %v", name, s[name], want)
		}
	}
}
