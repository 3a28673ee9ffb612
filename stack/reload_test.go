package stack_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/stack"
)

// refreshers counts running key-refresh loops.
func refreshers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "jwks.(*KeySet).loop(")
}

// TestReloadKeepsAndRetiresKeySets: a provider whose key settings stay is
// reused with its keys; one that goes has its refresher stopped, and its
// JWKS series leave the registry.
func TestReloadKeepsAndRetiresKeySets(t *testing.T) {
	a := jwkstest.New(t, jwkstest.Options{})
	b := jwkstest.New(t, jwkstest.Options{})
	doc := func(withB bool, realm string) string {
		s := fmt.Sprintf("realm: %q\nproviders:\n- {name: a, issuer: %q, audiences: [\"urn:apigee:target:api\"], jwks: {uri: %q}}\n", realm, a.IssuerURL(), a.JWKSURL())
		if withB {
			s += fmt.Sprintf("- {name: b, issuer: %q, audiences: [\"urn:apigee:target:api\"], jwks: {uri: %q}}\n", b.IssuerURL(), b.JWKSURL())
		}
		return s
	}
	reg := prometheus.NewRegistry()
	base := refreshers()
	cfg1, err := config.Parse([]byte(doc(true, "one")))
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.New(cfg1, stack.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := refreshers() - base; got != 2 {
		t.Fatalf("refreshers = %d, want 2", got)
	}
	fetchesA := a.Requests()
	first := st.KeySets()
	oldAuthorizer := st.Current().Load()

	cfg2, _ := config.Parse([]byte(doc(false, "two")))
	if err := st.Reload(cfg2, "test"); err != nil {
		t.Fatal(err)
	}
	if st.Current().Load() == oldAuthorizer || st.Config() != cfg2 {
		t.Error("the reloaded config is not in force")
	}
	if got := reloads(t, reg, "success"); got != 1 {
		t.Errorf("config_reloads_total{result=success} = %v, want 1", got)
	}
	if st.KeySets()[0] != first[0] {
		t.Error("provider a was rebuilt though its key settings did not change")
	}
	if !st.KeySets()[0].Ready() || a.Requests() != fetchesA {
		t.Error("the reused provider lost its keys or fetched again")
	}
	deadline := time.Now().Add(5 * time.Second)
	for refreshers()-base != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("refreshers = %d after retiring b, want 1", refreshers()-base)
		}
		time.Sleep(time.Millisecond) // poll for the loop to return
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "provider" && l.GetValue() == "b" {
					t.Errorf("%s still has a series for the removed provider b", mf.GetName())
				}
			}
		}
	}
	st.Close()
	for refreshers() != base {
		if time.Now().After(deadline) {
			t.Fatalf("refreshers left after Close: %d", refreshers()-base)
		}
		time.Sleep(time.Millisecond)
	}
}

// reloads is jwt_authz_config_reloads_total{result} in reg.
func reloads(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "jwt_authz_config_reloads_total" && m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
