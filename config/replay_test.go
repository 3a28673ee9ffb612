package config_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestReloadKeepsReplayStore: a reload that keeps a provider's replay
// settings keeps its DPoP replay store, so a proof used before the reload
// is still refused after it; changing the settings starts a new store.
func TestReloadKeepsReplayStore(t *testing.T) {
	iss := jwkstest.New(t, jwkstest.Options{})
	doc := func(realm string, entries int) string {
		return fmt.Sprintf("realm: %q\nproviders:\n- {name: a, issuer: %q, audiences: [\"urn:apigee:target:api\"], jwks: {uri: %q}, dpop: {replay_cache_entries: %d}}\n",
			realm, iss.IssuerURL(), iss.JWKSURL(), entries)
	}
	env := config.Env{Current: &atomic.Pointer[authz.Authorizer]{}}
	build := func(prev *config.Runtime, yaml string) *config.Runtime {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		rt, err := config.Build(cfg, env, prev)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rt.Providers {
			if err := p.WaitReady(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if prev != nil {
			prev.Retire(rt)
		}
		return rt
	}
	key := jwkstest.NewDPoPKey(t, "ES256")
	c := iss.Claims("c@clients")
	c["cnf"] = map[string]any{"jkt": key.JKT}
	tok := iss.Sign(t, c)
	proof := key.Proof(t, "GET", "https://api.example.com/x", tok, time.Now())
	check := func(rt *config.Runtime) authz.Reason {
		return rt.Authorizer.Check(t.Context(), &authz.Request{Method: "GET", Path: "/x", Host: "api.example.com", Scheme: "https",
			Headers: map[string]string{"authorization": "DPoP " + tok, "dpop": proof}}).Reason
	}

	rt1 := build(nil, doc("one", 1000))
	if r := check(rt1); r != authz.ReasonOK {
		t.Fatalf("first use: %s", r)
	}
	rt2 := build(rt1, doc("two", 1000))
	if r := check(rt2); r != authz.ReasonInvalidProof {
		t.Fatalf("after a reload that keeps the replay settings: %s, want invalid_proof", r)
	}
	rt3 := build(rt2, doc("three", 2000))
	t.Cleanup(rt3.Close)
	if r := check(rt3); r != authz.ReasonOK {
		t.Fatalf("after a reload with new replay settings (a new, empty store): %s", r)
	}
}
