package config_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// refreshers counts running key-refresh loops.
func refreshers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "jwks.(*Provider).loop(")
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
	env := config.Env{Current: &atomic.Pointer[authz.Authorizer]{}, JWKSMetrics: jwks.NewMetrics(reg)}
	base := refreshers()
	cfg1, err := config.Parse([]byte(doc(true, "one")))
	if err != nil {
		t.Fatal(err)
	}
	rt1, err := config.Build(cfg1, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rt1.Providers {
		if err := p.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got := refreshers() - base; got != 2 {
		t.Fatalf("refreshers = %d, want 2", got)
	}
	fetchesA := a.Requests()

	cfg2, _ := config.Parse([]byte(doc(false, "two")))
	rt2, err := config.Build(cfg2, env, rt1)
	if err != nil {
		t.Fatal(err)
	}
	rt1.Retire(rt2)
	if rt2.Providers[0] != rt1.Providers[0] {
		t.Error("provider a was rebuilt though its key settings did not change")
	}
	if !rt2.Providers[0].Ready() || a.Requests() != fetchesA {
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
	rt2.Close()
	for refreshers() != base {
		if time.Now().After(deadline) {
			t.Fatalf("refreshers left after Close: %d", refreshers()-base)
		}
		time.Sleep(time.Millisecond)
	}
}
