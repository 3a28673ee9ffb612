package authz_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks/jwkstest"
)

const propOtherIssuer = "https://other.example.com/"

// propSeed is the fixed seed of the property tests, logged so that a
// failure names the inputs it was drawn from; change it to explore.
const propSeed = 20261202

func propRand(t *testing.T) *rand.Rand {
	t.Helper()
	t.Logf("seed %d", propSeed)
	return rand.New(rand.NewPCG(propSeed, propSeed^0x9e3779b97f4a7c15))
}

func pick[T any](r *rand.Rand, list []T) T { return list[r.IntN(len(list))] }

func subset(r *rand.Rand, list []string) []string {
	var out []string
	for _, s := range list {
		if r.IntN(3) == 0 {
			out = append(out, s)
		}
	}
	return out
}

var propScopes = []string{"read", "write", "admin"}

// propTokens signs the tokens the monotone test draws from: both
// providers, every subset of the scopes, with and without the claim some
// rules ask for, an expired one and an unknown key.
func propTokens(t *testing.T) []string {
	t.Helper()
	k := keys(t)
	now := time.Now()
	sign := func(iss string, scopes []string, gty string, exp time.Time, kid string) string {
		c := map[string]any{"iss": iss, "sub": "svc@clients", "aud": benchAudience, "iat": now.Add(-time.Hour).Unix(),
			"exp": exp.Unix(), "scope": strings.Join(scopes, " "), "azp": "client-9"}
		if gty != "" {
			c["gty"] = gty
		}
		return jwkstest.SignToken(t, "EdDSA", k.ed, map[string]any{"kid": kid}, c)
	}
	var out []string
	for mask := range 1 << len(propScopes) {
		var sc []string
		for i, s := range propScopes {
			if mask&(1<<i) != 0 {
				sc = append(sc, s)
			}
		}
		out = append(out,
			sign(benchIssuer, sc, "client-credentials", now.Add(time.Hour), "EdDSA"),
			sign(propOtherIssuer, sc, "password", now.Add(time.Hour), "EdDSA"))
	}
	out = append(out,
		sign(benchIssuer, propScopes, "client-credentials", now.Add(-time.Hour), "EdDSA"),
		sign(benchIssuer, propScopes, "client-credentials", now.Add(time.Hour), "nope"),
		"not.a.token")
	return out
}

// propOptions draws a random authorizer: 1-4 rules with random matchers,
// anonymity, CORS, dry-run, scopes, providers and claims, and a random
// default decision.
func propOptions(t *testing.T, r *rand.Rand) authz.Options {
	t.Helper()
	o := benchOptions(t, 64, nil)
	o.Logger = nil
	o.Providers[0].Sources = []authz.TokenSource{{Header: "authorization", Prefix: "Bearer "}, {Query: "access_token"}}
	other := o.Providers[0]
	other.Name, other.Issuer = "other", propOtherIssuer
	other.ClaimHeaders = []authz.ClaimHeader{{Claim: "sub", Header: "x-other-sub"}}
	o.Providers = append(o.Providers, other)
	o.DefaultAllow = r.IntN(2) == 0
	o.Rules = nil
	for i := range 1 + r.IntN(4) {
		rl := authz.Rule{
			Name:               fmt.Sprintf("r%d", i),
			AllowAnonymous:     r.IntN(2) == 0,
			AllowCORSPreflight: r.IntN(3) == 0,
			DryRun:             r.IntN(5) == 0,
			Require: authz.Requirement{
				Scopes:    subset(r, propScopes),
				AnyScopes: subset(r, propScopes),
				Providers: subset(r, []string{"tenant", "other"}),
			},
		}
		switch r.IntN(4) {
		case 0:
			rl.Match.PathPrefix = pick(r, []string{"/", "/a", "/a/b", "/c"})
		case 1:
			rl.Match.PathExact = pick(r, []string{"/a", "/c/d"})
		case 2:
			rl.Match.PathRegex = `/a(/.*)?`
		}
		if r.IntN(3) == 0 {
			rl.Match.Methods = []string{pick(r, []string{"GET", "POST", "OPTIONS"})}
		}
		if r.IntN(4) == 0 {
			rl.Require.Claims = []authz.ClaimRequirement{{Name: "gty", Values: []authz.ClaimValue{"client-credentials"}}}
		}
		o.Rules = append(o.Rules, rl)
	}
	return o
}

// propContext draws context_extensions that select nothing (no "rule":
// naming a rule is a choice of route, not a tightening).
func propContext(r *rand.Rand) map[string]string {
	c := map[string]string{}
	if r.IntN(2) == 0 {
		c["scopes"] = strings.Join(subset(r, append(propScopes, " ", "other")), pick(r, []string{" ", "  ", "\t"}))
	}
	if r.IntN(2) == 0 {
		c["providers"] = strings.Join(subset(r, []string{"tenant", "other", "nope", ""}), pick(r, []string{",", ", "}))
	}
	if r.IntN(2) == 0 {
		c["allow_anonymous"] = pick(r, []string{"true", "false", "TRUE", "no", ""})
	}
	return c
}

// contextNeedsToken mirrors the documented rule: scopes, providers, or
// allow_anonymous other than "true" ask for a token.
func contextNeedsToken(c map[string]string) bool {
	_, prov := c["providers"]
	v, anon := c["allow_anonymous"]
	return len(strings.Fields(c["scopes"])) > 0 || prov || anon && !strings.EqualFold(v, "true")
}

// TestContextNeverWidens: for random rule sets, requests and tokens,
// adding context_extensions never turns a deny into an allow, and a
// context that asks for a token never lets a tokenless request through
// as anonymous (but for a CORS preflight, which only allow_anonymous
// other than "true" turns off).
func TestContextNeverWidens(t *testing.T) {
	t.Parallel()
	r := propRand(t)
	tokens := propTokens(t)
	n := 0
	for range 100 {
		a, err := authz.New(propOptions(t, r))
		if err != nil {
			t.Fatal(err)
		}
		for range 30 {
			method := pick(r, []string{"GET", "HEAD", "POST", "OPTIONS"})
			path := pick(r, []string{"/", "/a", "/a/b/c", "/c/d", "/x", "/a;p", "/A"})
			h := map[string]string{}
			if r.IntN(2) == 0 {
				h["origin"] = "https://app.example"
			}
			if r.IntN(2) == 0 {
				h["access-control-request-method"] = pick(r, []string{"GET", "PUT", "G T"})
			}
			tok := ""
			switch r.IntN(4) {
			case 0:
			case 1:
				h["authorization"] = "Basic eA=="
			case 2:
				tok = pick(r, tokens)
				h["authorization"] = "Bearer " + tok
			default:
				tok = pick(r, tokens)
				path += "?access_token=" + tok
			}
			req := &authz.Request{Method: method, Path: path, Host: "api.example.com", Headers: h}
			plain := a.Check(context.Background(), req)
			ctxReq := *req
			ctxReq.Context = propContext(r)
			withCtx := a.Check(context.Background(), &ctxReq)
			n++
			if withCtx.Allow && !plain.Allow {
				t.Fatalf("context %v widened %s %s (token %v): %s -> %s", ctxReq.Context, method, path, tok != "", plain.Reason, withCtx.Reason)
			}
			if (plain.Status == 401 || plain.Status == 403) && withCtx.Status != 401 && withCtx.Status != 403 {
				t.Fatalf("context %v weakened %s %s: %d %s -> %d %s", ctxReq.Context, method, path, plain.Status, plain.Reason, withCtx.Status, withCtx.Reason)
			}
			preflight := method == "OPTIONS" && h["origin"] != "" && (h["access-control-request-method"] == "GET" || h["access-control-request-method"] == "PUT")
			v, anonSet := ctxReq.Context["allow_anonymous"]
			preflightOff := anonSet && !strings.EqualFold(v, "true")
			if withCtx.Reason == authz.ReasonAnonymous && contextNeedsToken(ctxReq.Context) && !(preflight && !preflightOff) {
				t.Fatalf("context %v asks for a token, yet %s %s without one is anonymous", ctxReq.Context, method, path)
			}
		}
	}
	t.Logf("%d request pairs", n)
}

// wild draws a string meant to break a header, a metadata value or a log
// line: control characters, line separators, invalid UTF-8, values at and
// over 8 KiB, and ordinary text.
// Only one value of a token may be big (big is true): a token stays under
// MaxTokenBytes.
func wild(r *rand.Rand, big bool) string {
	parts := []string{"svc", "a\r\nx-evil: 1", "\x00", "\t", "\x7f", "\u0085", "\u2028", "\u2029", "zoë", "🙂",
		"\xff\xfe", "%0d%0a", `"`, "\\", "\x1b[31m"}
	if big {
		if r.IntN(2) == 0 {
			return strings.Repeat("a", 8<<10-r.IntN(3))
		}
		return strings.Repeat("b", 8<<10+1+r.IntN(1000))
	}
	var b strings.Builder
	for range 1 + r.IntN(4) {
		b.WriteString(pick(r, parts))
	}
	return b.String()
}

// headerSafe is the contract's header rule: no control character but a
// tab, at most 8 KiB.
func headerSafe(s string) bool {
	if len(s) > 8<<10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// textSafe is the stricter rule of metadata and log fields: valid UTF-8,
// no control character at all (C0, DEL, C1), no line separator.
func textSafe(s string) bool {
	if len(s) > 8<<10 || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) || c == '\u2028' || c == '\u2029' {
			return false
		}
	}
	return true
}

// TestOutputSanitised: whatever a token's claims and kid hold, no header
// value, dynamic-metadata value or decision-log field carries a control
// character or exceeds 8 KiB.
func TestOutputSanitised(t *testing.T) {
	t.Parallel()
	r := propRand(t)
	var logs bytes.Buffer
	o := benchOptions(t, 0, nil)
	o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Providers[0].ClaimHeaders = append(o.Providers[0].ClaimHeaders,
		authz.ClaimHeader{Claim: "https://example.com/x", Header: "x-x"},
		authz.ClaimHeader{Claim: "org.name", Header: "x-org", Nested: true})
	o.Rules = []authz.Rule{{Name: "any", Match: authz.Match{PathPrefix: "/"}}}
	a, err := authz.New(o)
	if err != nil {
		t.Fatal(err)
	}
	k := keys(t)
	now := time.Now()
	allowed := 0
	const tokens = 200
	for i := range tokens {
		big := r.IntN(8) // which value is big; 7 and up: none
		c := benchClaims(now, wild(r, big == 0))
		c["azp"] = wild(r, big == 1)
		c["scope"] = "read:target " + wild(r, big == 2)
		c["permissions"] = []string{wild(r, big == 3), wild(r, false)}
		c["https://example.com/x"] = wild(r, big == 4)
		c["org"] = map[string]any{"name": wild(r, big == 5)}
		kid := "EdDSA"
		if i%5 == 0 {
			kid = wild(r, big == 6) // unknown: the kid still reaches the log
		}
		tok := jwkstest.SignToken(t, "EdDSA", k.ed, map[string]any{"kid": kid}, c)
		d := a.Check(context.Background(), &authz.Request{Method: "GET", Path: "/x", Host: "h",
			Headers: map[string]string{"authorization": "Bearer " + tok}})
		if d.Allow {
			allowed++
		}
		for _, h := range d.Headers {
			if !headerSafe(h.Value) {
				t.Fatalf("header %s = %.60q", h.Name, h.Value)
			}
		}
		m := d.Metadata
		for name, v := range map[string]string{"provider": d.Provider, "rule": d.Rule, "issuer": m.Issuer,
			"subject": m.Subject, "client_id": m.ClientID, "scope": m.Scope} {
			if !textSafe(v) {
				t.Fatalf("metadata %s = %.60q", name, v)
			}
		}
	}
	if allowed < tokens/2 {
		t.Fatalf("only %d of %d tokens allowed: the generator no longer reaches the claim paths", allowed, tokens)
	}
	lines := 0
	sc := bufio.NewScanner(&logs)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Bytes(), err)
		}
		for key, v := range rec {
			if s, ok := v.(string); ok && !textSafe(s) {
				t.Fatalf("log field %s = %.60q", key, s)
			}
		}
	}
	if lines != tokens {
		t.Fatalf("%d log lines, want %d", lines, tokens)
	}
}
