package config_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/jwtauthz/jwt-authz/config"
)

func ExampleParse() {
	cfg, err := config.Parse([]byte(`
providers:
- name: auth0
  issuer: "https://example.auth0.com/"
  audiences: ["urn:apigee:target:api"]
  jwks: {discovery: true}
rules:
- name: admin
  match: {path_prefix: "/admin"}
  require: {scopes: ["admin:write"]}
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.GetProviders()[0].GetName(), cfg.GetRules()[0].GetRequire().GetScopes())

	// Every problem at once, each at its field path.
	_, err = config.Parse([]byte(`
providers:
- name: Auth0
  issuer: "https://example.auth0.com/"
  jwks: {discovery: true, uri: "https://example.auth0.com/.well-known/jwks.json"}
`))
	fmt.Println(err)
	// Output:
	// auth0 [admin:write]
	// providers[0].jwks.uri: only one of discovery and uri may be set
	// providers[0].name: must match [a-z0-9_-]{1,32}, not "Auth0"
	// providers[0].audiences: is required, or a token for any API of this issuer passes (skip_audience_check: true accepts any audience on purpose)
}

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "jwt-authz-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(`
providers:
- name: auth0
  issuer: "https://example.auth0.com/"
  audiences: ["urn:apigee:target:api"]
  jwks: {uri: "https://example.auth0.com/.well-known/jwks.json"}
`), 0o600); err != nil {
		panic(err)
	}
	cfg, err := config.Load(path)
	fmt.Println(cfg.GetProviders()[0].GetJwks().GetUri(), err)
	// The options of the libraries that run it.
	fmt.Println(config.KeySetOptions(cfg.GetProviders()[0]).Name)
	// Output:
	// https://example.auth0.com/.well-known/jwks.json <nil>
	// auth0
}
