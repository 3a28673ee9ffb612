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

// TestReloadKeepsKeysOfTheSameSource: while the IdP is down, a reload that
// changes any tuning of a key set (or the provider's name or issuer) but not
// its source hands the keys over: the new key set is ready at once, with the
// old last-success time. A reload that changes the source starts empty.
func TestReloadKeepsKeysOfTheSameSource(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	const base = "providers:\n- {name: %s, issuer: %q, audiences: [a], algorithms: [RS256, ES256], jwks: {uri: %q%s}}\n"
	env := config.Env{Current: &atomic.Pointer[authz.Authorizer]{}, JWKSMetrics: jwks.NewMetrics(prometheus.NewRegistry())}
	build := func(doc string, prev *config.Runtime) *config.Runtime {
		t.Helper()
		cfg, err := config.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		rt, err := config.Build(cfg, env, prev)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rt.Close)
		return rt
	}
	first := build(fmt.Sprintf(base, "auth0", iss.IssuerURL(), iss.JWKSURL(), ""), nil)
	if err := first.Providers[0].WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	fetched := first.Providers[0].Status().FetchedAt
	iss.SetFailure(jwkstest.Status500)
	for _, tc := range []struct {
		name, provider, issuer, uri, extra string
		keep                               bool
	}{
		{name: "refresh_interval", extra: `, refresh_interval: "60s"`, keep: true},
		{name: "min_refresh_interval", extra: `, min_refresh_interval: "1s"`, keep: true},
		{name: "fetch_timeout", extra: `, fetch_timeout: "2s"`, keep: true},
		{name: "cache_file", extra: fmt.Sprintf(`, cache_file: %q`, t.TempDir()+"/c.json"), keep: true},
		{name: "allow_insecure_http", extra: `, allow_insecure_http: true`, keep: true},
		{name: "all tuning", extra: `, refresh_interval: "60s", min_refresh_interval: "1s", fetch_timeout: "2s"`, keep: true},
		{name: "provider renamed", provider: "renamed", keep: true},
		{name: "issuer changed", issuer: "https://moved.example/", keep: true},
		{name: "uri changed", uri: iss.JWKSURL() + "?v=2"},
		{name: "uri host spelled otherwise", uri: strings.Replace(iss.JWKSURL(), "127.0.0.1", "localhost", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, issuer, uri := "auth0", iss.IssuerURL(), iss.JWKSURL()
			if tc.provider != "" {
				name = tc.provider
			}
			if tc.issuer != "" {
				issuer = tc.issuer
			}
			if tc.uri != "" {
				uri = tc.uri
			}
			next := build(fmt.Sprintf(base, name, issuer, uri, tc.extra), first)
			ks := next.Providers[0]
			if ks == first.Providers[0] {
				t.Fatal("the old key set was reused as is; a new one with the new settings was expected")
			}
			if ks.Ready() != tc.keep {
				t.Fatalf("ready = %v, want %v (%s)", ks.Ready(), tc.keep, ks.Status().LastError)
			}
			if tc.keep && !ks.Status().FetchedAt.Equal(fetched) {
				t.Errorf("fetched_at = %v, want the old %v", ks.Status().FetchedAt, fetched)
			}
		})
	}
}
