package stack

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestReloadKeepsKeysOfTheSameSource: while the IdP is down, a reload that
// changes any tuning of a key set (or the provider's name or issuer) but not
// its source hands the keys over: the new key set is ready at once, with the
// old last-success time. A reload that changes the source starts empty.
func TestReloadKeepsKeysOfTheSameSource(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	const base = "providers:\n- {name: %s, issuer: %q, audiences: [a], algorithms: [RS256, ES256], jwks: {uri: %q%s}}\n"
	s := &Stack{log: slog.New(slog.DiscardHandler), current: authz.NewCurrent(authz.CurrentOptions{})}
	build := func(doc string, prev *generation) *generation {
		t.Helper()
		cfg, err := config.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.build(cfg, prev)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.retire(g, nil) })
		return g
	}
	first := build(fmt.Sprintf(base, "auth0", iss.IssuerURL(), iss.JWKSURL(), ""), nil)
	old := first.keySets[0]
	if err := old.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	fetched := old.Status().FetchedAt
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
			ks := next.keySets[0]
			if ks == old {
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
