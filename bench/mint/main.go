// Command mint prepares the load benchmark's inputs in a directory: an
// RSA-2048 key whose public half is a static JWKS file, a jwt-authz config
// that reads it (jwks: {file: ...}, no network), and token files, one
// token a line, for the scenarios of bench/loadtest.sh:
//
//	config.yaml   the cache holding -rss entries; config-nocache.yaml: none;
//	              config-distinct.yaml: 1 000 entries, so a round-robin
//	              over distinct.txt never hits
//	hot.txt       one valid token
//	distinct.txt  -distinct distinct valid tokens (RS256)
//	mix.txt       90% valid (from a pool of 100), 10% invalid (forged
//	              signature, expired, malformed, unknown kid), interleaved
//	rss.txt       -rss distinct valid EdDSA tokens, to fill the cache
//
// Tokens are signed with jwx, as jwkstest does; each is about 800 bytes.
package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

const (
	issuer   = "https://tenant.example.com/"
	audience = "urn:apigee:target:api"
)

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "output directory")
	distinct := fs.Int("distinct", 10000, "distinct RS256 tokens")
	rss := fs.Int("rss", 100000, "distinct EdDSA tokens for the memory scenario")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "mint: -dir is required")
		return 2
	}
	if err := mint(*dir, *distinct, *rss); err != nil {
		fmt.Fprintf(stderr, "mint: %v\n", err)
		return 1
	}
	return 0
}

func mint(dir string, distinct, rss int) error {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	set := jwk.NewSet()
	for _, k := range []struct {
		kid, alg string
		pub      crypto.PublicKey
	}{{"rs1", "RS256", &rk.PublicKey}, {"ed1", "EdDSA", ek.Public()}} {
		jk, err := jwk.FromRaw(k.pub)
		if err != nil {
			return err
		}
		_ = jk.Set(jwk.KeyIDKey, k.kid)
		_ = jk.Set(jwk.AlgorithmKey, k.alg)
		_ = jk.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(jk); err != nil {
			return err
		}
	}
	jb, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jb, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(config(filepath.Join(dir, "jwks.json"), max(rss, 1000))), 0o644); err != nil {
		return err
	}
	// The cache-miss scenario: every Check verifies.
	if err := os.WriteFile(filepath.Join(dir, "config-nocache.yaml"), []byte(config(filepath.Join(dir, "jwks.json"), 0)), 0o644); err != nil {
		return err
	}
	// Distinct tokens: every Check verifies, inserts and evicts.
	if err := os.WriteFile(filepath.Join(dir, "config-distinct.yaml"), []byte(config(filepath.Join(dir, "jwks.json"), 1000)), 0o644); err != nil {
		return err
	}
	now := time.Now()
	rs := func(i int) string { return sign(jwa.RS256, rk, "rs1", claims(now, i, time.Hour)) }
	ed := func(i int) string { return sign(jwa.EdDSA, ek, "ed1", claims(now, i, time.Hour)) }

	if err := writeLines(dir, "hot.txt", []string{rs(0)}); err != nil {
		return err
	}
	if err := writeLines(dir, "distinct.txt", parallel(distinct, rs)); err != nil {
		return err
	}
	pool := parallel(100, func(i int) string { return rs(1_000_000 + i) })
	var mix []string
	for i := range 1000 {
		if i%10 != 9 {
			mix = append(mix, pool[i%len(pool)])
			continue
		}
		good := pool[i%len(pool)]
		switch (i / 10) % 4 {
		case 0: // forged: another token's signature
			other := pool[(i+1)%len(pool)]
			mix = append(mix, good[:strings.LastIndexByte(good, '.')]+other[strings.LastIndexByte(other, '.'):])
		case 1:
			mix = append(mix, sign(jwa.RS256, rk, "rs1", claims(now.Add(-3*time.Hour), i, time.Hour)))
		case 2:
			mix = append(mix, "not-a-jwt."+good[:40])
		case 3:
			mix = append(mix, sign(jwa.RS256, rk, "nope", claims(now, i, time.Hour)))
		}
	}
	if err := writeLines(dir, "mix.txt", mix); err != nil {
		return err
	}
	return writeLines(dir, "rss.txt", parallel(rss, ed))
}

func config(jwksFile string, entries int) string {
	return `# Written by bench/mint for bench/loadtest.sh.
listen:
  grpc: "127.0.0.1:0"
  http: "127.0.0.1:0"
providers:
- name: tenant
  issuer: "` + issuer + `"
  audiences: ["` + audience + `"]
  algorithms: ["RS256", "EdDSA"]
  jwks:
    file: "` + jwksFile + `"
  required_claims: ["sub"]
  claim_headers:
  - {claim: "sub", header: "x-jwt-sub"}
  - {claim: "scope", header: "x-jwt-scope"}
  - {claim: "azp", header: "x-jwt-client-id"}
  - {claim: "permissions", header: "x-jwt-permissions"}
rules:
- name: health
  match: {path_prefix: "/healthz", methods: ["GET"]}
  allow_anonymous: true
- name: admin
  match: {path_prefix: "/admin"}
  require: {scopes: ["admin:write"]}
- name: api
  match: {path_prefix: "/"}
  require: {scopes: ["read:target"]}
default_decision: deny
deny_body: json
logging:
  level: warn
  decision_level: "off"
token_cache:
  max_entries: ` + fmt.Sprint(entries) + `
`
}

// claims are those of a typical machine-to-machine access token; i makes
// the token distinct.
func claims(now time.Time, i int, life time.Duration) map[string]any {
	return map[string]any{
		"iss":         issuer,
		"sub":         fmt.Sprintf("svc-%07d@clients", i),
		"aud":         []string{audience, "https://tenant.example.com/userinfo"},
		"iat":         now.Add(-time.Minute).Unix(),
		"exp":         now.Add(life).Unix(),
		"azp":         "k3yQm2Zp9VbX7nR4tL8wC1dF6gH0jS5a",
		"scope":       "read:target write:target read:users openid profile",
		"gty":         "client-credentials",
		"permissions": []string{"read:target", "write:target", "read:users"},
		"https://example.com/claims/org": map[string]any{
			"id": "org_4f8a2b1c9d7e6f50", "name": "Example Corporation", "tier": "enterprise",
		},
	}
}

func sign(alg jwa.SignatureAlgorithm, key crypto.Signer, kid string, c map[string]any) string {
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, kid)
	_ = h.Set(jws.TypeKey, "JWT")
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		panic(err)
	}
	return string(tok)
}

// parallel computes f(0..n-1) on every core.
func parallel(n int, f func(int) string) []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for g := range w {
		wg.Go(func() {
			for i := g; i < n; i += w {
				out[i] = f(i)
			}
		})
	}
	wg.Wait()
	return out
}

func writeLines(dir, name string, lines []string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
