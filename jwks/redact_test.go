package jwks_test

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwt-authz/jwks"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

// TestRedactURIHidesEverySecret: over generated URIs with secrets in the
// user, the password, query values, bare query parts and the fragment —
// parsable or not — RedactURI's output contains no secret, and for a
// parsable URI keeps the scheme, host and path.
func TestRedactURIHidesEverySecret(t *testing.T) {
	t.Parallel()
	const seed = 7
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	word := func() string {
		const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$'()*+,;="
		b := make([]byte, 8+rng.IntN(10))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return "Z" + url.QueryEscape(string(b)) + "Z"
	}
	hosts := []string{"idp.example", "127.0.0.1:8081", "[::1]:9", "tenant.auth0.com", "10.0.0.1"}
	for i := range 2000 {
		var secrets []string
		secret := func() string { s := word(); secrets = append(secrets, s); return s }
		host := hosts[rng.IntN(len(hosts))]
		scheme := []string{"http", "https", "ftp", "HTTP"}[rng.IntN(4)]
		var b strings.Builder
		b.WriteString(scheme + "://")
		switch rng.IntN(4) {
		case 1:
			b.WriteString(secret() + "@")
		case 2:
			b.WriteString(secret() + ":" + secret() + "@")
		case 3:
			b.WriteString(":" + secret() + "@")
		}
		b.WriteString(host + "/.well-known/jwks.json")
		if rng.IntN(3) > 0 {
			b.WriteString("?")
			for j := range 1 + rng.IntN(3) {
				if j > 0 {
					b.WriteString("&")
				}
				if rng.IntN(4) == 0 {
					b.WriteString(secret())
				} else {
					b.WriteString([]string{"api_key", "token", "a", ""}[rng.IntN(4)] + "=" + secret())
				}
			}
		}
		if rng.IntN(4) == 0 {
			b.WriteString("#" + secret())
		}
		if rng.IntN(10) == 0 {
			b.WriteString("%zz") // no longer parsable
		}
		in := b.String()
		out := jwks.RedactURI(in)
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("case %d: RedactURI(%q) = %q shows %q", i, in, out, s)
			}
		}
		if u, err := url.Parse(in); err == nil {
			o, err := url.Parse(out)
			if err != nil {
				t.Fatalf("case %d: RedactURI(%q) = %q does not parse: %v", i, in, out, err)
			}
			if o.Scheme != u.Scheme || o.Host != u.Host || o.Path != u.Path {
				t.Fatalf("case %d: RedactURI(%q) = %q lost scheme, host or path", i, in, out)
			}
		}
	}
	for in, want := range map[string]string{
		"https://idp.example/.well-known/jwks.json":       "https://idp.example/.well-known/jwks.json",
		"https://u:p@idp.example/jwks?api_key=K&x=1#frag": "https://REDACTED@idp.example/jwks?api_key=REDACTED&x=REDACTED",
		"http://127.0.0.1:8081/jwks?K":                    "http://127.0.0.1:8081/jwks?REDACTED",
		"":                                                "",
		"keys/jwks.json":                                  "keys/jwks.json",
		"http://u:p@idp.example/%zz?k=v":                  "http://REDACTED@idp.example/%zz?REDACTED",
		"https://idp.example/?":                           "https://idp.example/",
		"http://127.0.0.1@evil.example/jwks.json?x=127.0.0.1": "http://REDACTED@evil.example/jwks.json?x=REDACTED",
	} {
		if got := jwks.RedactURI(in); got != want {
			t.Errorf("RedactURI(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIsLoopbackHost holds the loopback rule against net/netip over
// generated addresses and against look-alike names.
func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	const seed = 5
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for range 5000 {
		var a netip.Addr
		if rng.IntN(2) == 0 {
			b := [4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}
			if rng.IntN(3) == 0 {
				b[0] = 127
			}
			a = netip.AddrFrom4(b)
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			if rng.IntN(3) == 0 {
				b = [16]byte{15: 1} // ::1
			}
			a = netip.AddrFrom16(b)
		}
		want := a.Unmap().IsLoopback()
		if got := jwks.IsLoopbackHost(a.String()); got != want {
			t.Fatalf("IsLoopbackHost(%s) = %v, want %v", a, got, want)
		}
	}
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.255.255.254": true, "::1": true,
		"::ffff:127.0.0.1": true,
		"localhost.":       false, "localhost.evil.example": false, "127.0.0.1.nip.io": false, "evil-localhost": false,
		"0x7f.1": false, "2130706433": false, "0177.0.0.1": false, "[::1]": false, "::": false, "0.0.0.0": false,
		"128.0.0.1": false, "::2": false, "": false, "::1%lo": false,
	} {
		if got := jwks.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestPlainHTTPRefusedByNew: New refuses a plain-http uri or discovery
// issuer that is not loopback, unless AllowInsecureHTTP; the message
// carries no secret.
func TestPlainHTTPRefusedByNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts jwks.Options
		ok   bool
	}{
		{jwks.Options{Name: "a", URI: "http://u:Ssecret@idp.example/jwks?k=Ssecret2"}, false},
		{jwks.Options{Name: "a", URI: "http://idp.example/jwks", AllowInsecureHTTP: true}, true},
		{jwks.Options{Name: "a", URI: "http://127.0.0.1:1/jwks"}, true},
		{jwks.Options{Name: "a", URI: "https://idp.example/jwks"}, true},
		{jwks.Options{Name: "a", Issuer: "http://idp.example/", Discovery: true}, false},
		{jwks.Options{Name: "a", Issuer: "http://localhost:8081/", Discovery: true}, true},
		{jwks.Options{Name: "a", Issuer: "http://idp.example/", Discovery: true, AllowInsecureHTTP: true}, true},
	} {
		p, err := jwks.New(tc.opts)
		if (err == nil) != tc.ok {
			t.Errorf("New(%+v): err %v, want ok %v", tc.opts, err, tc.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "allow_insecure_http") || strings.Contains(err.Error(), "Ssecret")) {
			t.Errorf("New(%+v): %v", tc.opts, err)
		}
		if p != nil {
			p.Close()
		}
	}
}

// TestPreviousHandsOverKeys: a KeySet built with Previous of the same
// source starts ready with its keys and last-success time, without a
// fetch, even while the IdP is down; new tuning applies (a narrower
// algorithm allowlist filters the same document again). A different source
// starts empty.
func TestPreviousHandsOverKeys(t *testing.T) {
	t.Parallel()
	iss := jwkstest.New(t, jwkstest.Options{})
	es := iss.AddKey("ES256")
	old := startReady(t, jwks.Options{URI: iss.JWKSURL()})
	fetched := old.p.Status().FetchedAt
	iss.SetFailure(jwkstest.Status500)
	before := iss.Requests()

	next := start(t, jwks.Options{URI: iss.JWKSURL(), RefreshInterval: 10 * time.Minute, MinRefreshInterval: time.Second,
		Algorithms: []string{"RS256"}, Previous: old.p})
	if !next.p.Ready() {
		t.Fatal("same source, new tuning: not ready")
	}
	st := next.p.Status()
	if !st.FetchedAt.Equal(fetched) || len(st.Keys) != 1 || st.Keys[0].KID != iss.KID() {
		t.Errorf("status %+v, want the old fetched_at %v and only the RS256 key", st, fetched)
	}
	if _, err := next.p.Key(context.Background(), es); err == nil {
		t.Error("an ES256 key survived the RS256 allowlist")
	}
	if _, err := next.p.Key(context.Background(), iss.KID()); err != nil {
		t.Errorf("RS256 key: %v", err)
	}
	if got := next.metric(t, "jwt_authz_provider_ready", map[string]string{"provider": "test"}); got != 1 {
		t.Errorf("provider_ready = %v, want 1", got)
	}
	if iss.Requests() != before {
		t.Errorf("%d fetches for a handed-over set", iss.Requests()-before)
	}

	other := start(t, jwks.Options{URI: iss.JWKSURL() + "?v=2", Previous: old.p})
	if other.p.Ready() {
		t.Error("another source took the old keys")
	}
	if got := other.metric(t, "jwt_authz_provider_ready", map[string]string{"provider": "test"}); got != 0 {
		t.Errorf("provider_ready of a provider without keys = %v, want 0", got)
	}
}
