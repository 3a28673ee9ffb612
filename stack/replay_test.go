package stack_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/stack"
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
	var st *stack.Stack
	load := func(yaml string) {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if st == nil {
			if st, err = stack.New(cfg, stack.Options{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(st.Close)
		} else if err := st.Reload(cfg, "test"); err != nil {
			t.Fatal(err)
		}
		if err := st.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	key := jwkstest.NewDPoPKey(t, "ES256")
	c := iss.Claims("c@clients")
	c["cnf"] = map[string]any{"jkt": key.JKT}
	tok := iss.Sign(t, c)
	proof := key.Proof(t, "GET", "https://api.example.com/x", tok, time.Now())
	check := func() authz.Reason {
		return st.Current().Load().Check(t.Context(), &authz.Request{Method: "GET", Path: "/x", Host: "api.example.com", Scheme: "https",
			Headers: map[string]string{"authorization": "DPoP " + tok, "dpop": proof}}).Reason
	}

	load(doc("one", 1000))
	if r := check(); r != authz.ReasonOK {
		t.Fatalf("first use: %s", r)
	}
	load(doc("two", 1000))
	if r := check(); r != authz.ReasonInvalidProof {
		t.Fatalf("after a reload that keeps the replay settings: %s, want invalid_proof", r)
	}
	load(doc("three", 2000))
	if r := check(); r != authz.ReasonOK {
		t.Fatalf("after a reload with new replay settings (a new, empty store): %s", r)
	}
}
