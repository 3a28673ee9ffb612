package jwks_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/jwtauthz/jwt-authz/jwks"
)

// exampleJWKS publishes one fixed Ed25519 key as kid k1, and a key for
// encryption that a KeySet never uses to verify.
func exampleJWKS() string {
	pub := ed25519.NewKeyFromSeed([]byte("jwt-authz example key, 32 bytes!")).Public().(ed25519.PublicKey)
	x := base64.RawURLEncoding.EncodeToString(pub)
	return `{"keys":[
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"k1","alg":"EdDSA","use":"sig"},
		{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"enc","use":"enc"}]}`
}

func ExampleNew() {
	// A URI or Discovery source fetches over HTTP and refreshes in the
	// background; Inline and File need no network.
	ks, err := jwks.New(jwks.Options{Name: "tenant", Issuer: "https://tenant.example/", Inline: exampleJWKS()})
	if err != nil {
		panic(err)
	}
	defer ks.Close()
	ks.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ks.WaitReady(ctx); err != nil {
		panic(err)
	}
	k, err := ks.Key(ctx, "k1") // the authz.KeySource an authz.Provider verifies with
	fmt.Println(ks.Name(), k.ID, k.Algorithm, err)
	_, err = ks.Key(ctx, "enc")
	fmt.Println(err)
	for _, ki := range ks.Status().Keys {
		fmt.Println(ki.KID, ki.Kty, ki.Use)
	}
	// Output:
	// tenant k1 EdDSA <nil>
	// authz: no usable key with that kid
	// k1 OKP sig
}

func ExampleOptions_Validate() {
	err := jwks.Options{Name: "tenant", URI: "https://tenant.example/jwks.json", Inline: exampleJWKS()}.Validate()
	fmt.Println(err)
	// Output:
	// exactly one of uri, discovery, file, inline must be set
}
