package authz_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jwtauthz/jwt-authz/authz"
)

// exampleKey is a fixed Ed25519 key, so the examples' output is stable.
var exampleKey = ed25519.NewKeyFromSeed([]byte("jwt-authz example key, 32 bytes!"))

// exampleNow is the examples' fixed clock.
var exampleNow = time.Unix(1_800_000_000, 0)

// exampleToken signs an access token of the example issuer with scope: a
// compact JWS, EdDSA over base64url(header) "." base64url(claims).
func exampleToken(scope string) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "k1"})
	c, _ := json.Marshal(map[string]any{
		"iss": "https://tenant.example/", "aud": "urn:example:api", "sub": "svc@clients",
		"iat": exampleNow.Unix(), "exp": exampleNow.Add(time.Hour).Unix(), "scope": scope,
	})
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return input + "." + enc.EncodeToString(ed25519.Sign(exampleKey, []byte(input)))
}

// exampleAuthorizer is one provider on a static key, with a rule that
// wants admin:write under /admin and any valid token elsewhere.
func exampleAuthorizer() *authz.Authorizer {
	a, err := authz.New(authz.Options{
		Providers: []authz.Provider{{
			Name:         "tenant",
			Issuer:       "https://tenant.example/",
			Audiences:    []string{"urn:example:api"},
			Algorithms:   []string{"EdDSA"},
			Keys:         authz.StaticKeys{{ID: "k1", Algorithm: "EdDSA", Public: exampleKey.Public()}},
			ClaimHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-jwt-sub"}},
		}},
		Rules: []authz.Rule{
			{Name: "admin", Match: authz.Match{PathPrefix: "/admin"}, Require: authz.Requirement{Scopes: []string{"admin:write"}}},
			{Name: "api", Match: authz.Match{PathPrefix: "/"}},
		},
		Now: func() time.Time { return exampleNow },
	})
	if err != nil {
		panic(err)
	}
	return a
}

func ExampleNew() {
	a := exampleAuthorizer()
	tok := exampleToken("read:target")
	for _, path := range []string{"/orders", "/admin/users"} {
		d := a.Check(context.Background(), &authz.Request{
			Method: "GET", Path: path, Host: "api.example.com",
			Headers: map[string]string{"authorization": "Bearer " + tok},
		})
		fmt.Println(path, d.Allow, d.Status, d.Reason, d.Rule)
		for _, h := range d.Headers {
			fmt.Printf("  set %s: %s\n", h.Name, h.Value)
		}
		if challenge(d) != "" {
			fmt.Println("  www-authenticate:", challenge(d))
		}
	}
	// Output:
	// /orders true 200 ok api
	//   set x-jwt-sub: svc@clients
	// /admin/users false 403 insufficient_scope admin
	//   www-authenticate: Bearer realm="jwt-authz", error="insufficient_scope", scope="admin:write"
}

func ExampleNewCurrent() {
	cur := authz.NewCurrent(authz.CurrentOptions{})
	read := func(authorization string) func() (*authz.Request, authz.Refusal) {
		return func() (*authz.Request, authz.Refusal) {
			if strings.ContainsAny(authorization, "\r\n") {
				return nil, authz.Refuse(authz.ReasonBadRequest, "the request cannot be read")
			}
			return &authz.Request{Method: "GET", Path: "/orders", Host: "api.example.com",
				Headers: map[string]string{"authorization": authorization}}, authz.Refusal{}
		}
	}
	ctx := context.Background()
	tok := "Bearer " + exampleToken("read:target")

	d := cur.Check(ctx, read(tok)) // before the first config
	fmt.Println(d.Status, d.Reason)

	cur.Store(exampleAuthorizer()) // a config is in force; a reload stores again
	d = cur.Check(ctx, read(tok))
	fmt.Println(d.Status, d.Reason)
	d = cur.Check(ctx, read("Bearer x\r\ny"))
	fmt.Println(d.Status, d.Reason)
	// Output:
	// 503 keys_unavailable
	// 200 ok
	// 400 bad_request
}

func ExampleStaticKeys() {
	keys := authz.StaticKeys{{ID: "k1", Algorithm: "EdDSA", Public: exampleKey.Public()}}
	k, err := keys.Key(context.Background(), "k1")
	fmt.Println(k.Algorithm, err)
	_, err = keys.Key(context.Background(), "k2")
	fmt.Println(err)
	_, err = authz.StaticKeys{}.Keys(context.Background())
	fmt.Println(err)
	// Output:
	// EdDSA <nil>
	// authz: no usable key with that kid
	// authz: provider has no keys
}
