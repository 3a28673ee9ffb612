package stack_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
	"github.com/jwtauthz/jwt-authz/stack"
)

// TestReadinessGatesOnlyTheFirstStart: /readyz answers 200 "ok" once every
// provider had keys; a reload that adds a provider without keys leaves the
// instance in service ("degraded", naming it) instead of taking it out;
// /debug/keys shows every key set, with keys where they are.
func TestReadinessGatesOnlyTheFirstStart(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	const provider = "- {name: %s, issuer: %q, audiences: [a], jwks: {uri: %q}}\n"
	good := fmt.Sprintf(provider, "a", iss.IssuerURL(), iss.JWKSURL())
	cfg, err := config.Parse([]byte("providers:\n" + good))
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.New(cfg, stack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	type readyz struct {
		Status   string `json:"status"`
		Ready    bool   `json:"ready"`
		NotReady []struct {
			Provider string `json:"provider"`
		} `json:"not_ready"`
	}
	get := func(h http.Handler, v any) int {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("content-type %q", ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		return rec.Code
	}
	var r readyz
	if code := get(st.ReadyHandler(), &r); code != 200 || r.Status != "ok" || !r.Ready || len(r.NotReady) != 0 {
		t.Fatalf("first start: %d %+v, want 200 ok", code, r)
	}

	// A provider whose keys cannot be fetched (nothing listens on port 1).
	added := fmt.Sprintf(provider, "b", "https://b.example/", "http://127.0.0.1:1/jwks.json")
	next, err := config.Parse([]byte("providers:\n" + good + added))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(next, "test"); err != nil {
		t.Fatal(err)
	}
	r = readyz{}
	if code := get(st.ReadyHandler(), &r); code != 200 || r.Status != "degraded" || !r.Ready ||
		len(r.NotReady) != 1 || r.NotReady[0].Provider != "b" {
		t.Fatalf("after adding b: %d %+v, want 200 degraded naming b", code, r)
	}
	if ready, names := st.Ready(); ready || len(names) != 1 || names[0] != "b" {
		t.Errorf("Ready() = %v %v, want false [b]", ready, names)
	}

	var keys struct {
		Providers []struct {
			Name  string            `json:"name"`
			Ready bool              `json:"ready"`
			Keys  []json.RawMessage `json:"keys"`
		} `json:"providers"`
	}
	get(st.KeysHandler(), &keys)
	if len(keys.Providers) != 2 || keys.Providers[0].Name != "a" || !keys.Providers[0].Ready || len(keys.Providers[0].Keys) == 0 ||
		keys.Providers[1].Name != "b" || keys.Providers[1].Ready {
		t.Errorf("/debug/keys: %+v", keys)
	}
}
