package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
)

// Key is one usable verification key of a provider: a public key with the
// JWS algorithm it may verify. Keys are immutable once handed out.
type Key struct {
	// ID is the JWK kid; empty when the JWK has none.
	ID string
	// Algorithm is the JWK alg (RS256, ES256, EdDSA, ...). Empty when the
	// JWK has no alg: the key then verifies any allowed algorithm that fits
	// its type (RFC 7517 §4.4 makes alg optional).
	Algorithm string
	// Public is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
}

// sameKey reports whether a and b hold the same public key. A cached token
// is bound to its key's material, not to its kid: a key set refreshed with
// the same keys keeps its cached tokens, one that puts another key under
// the same kid does not. Comparing the material itself needs nothing
// precomputed and, unlike the keys' Equal methods (which copy big integers
// to compare them in constant time, needless for public values), does not
// allocate.
func sameKey(a, b *Key) bool {
	if a == b {
		return true
	}
	switch pa := a.Public.(type) {
	case *rsa.PublicKey:
		pb, ok := b.Public.(*rsa.PublicKey)
		return ok && pa.E == pb.E && pa.N.Cmp(pb.N) == 0
	case *ecdsa.PublicKey:
		pb, ok := b.Public.(*ecdsa.PublicKey)
		//lint:ignore SA1019 reading public coordinates to compare them; Bytes and Equal allocate on the cache-hit path
		return ok && pa.Curve == pb.Curve && pa.X.Cmp(pb.X) == 0 && pa.Y.Cmp(pb.Y) == 0
	case ed25519.PublicKey:
		pb, ok := b.Public.(ed25519.PublicKey)
		return ok && string(pa) == string(pb)
	}
	return false
}

// Errors a KeySource returns. Anything else is treated as internal_error.
var (
	// ErrNoKeys means the provider has never had a usable key set (cold
	// start with the IdP down): the answer is 503 keys_unavailable.
	ErrNoKeys = errors.New("authz: provider has no keys")
	// ErrUnknownKey means no usable key has the token's kid, after the
	// source's bounded refetch.
	ErrUnknownKey = errors.New("authz: no usable key with that kid")
)

// KeySource is what the authorizer needs from a provider's key set. The jwks
// package implements it; tests may use StaticKeys.
//
// Implementations must be safe for concurrent use and must never fetch keys
// from anything a token says.
type KeySource interface {
	// Key returns the usable key with this kid. On a miss the source may
	// refetch its key set once (single-flight, rate-limited) and block until
	// that fetch ends or ctx is done. It returns ErrNoKeys or ErrUnknownKey.
	Key(ctx context.Context, kid string) (*Key, error)
	// Keys returns every usable key, for tokens without a kid. It returns
	// ErrNoKeys when the provider has never had keys.
	Keys(ctx context.Context) ([]*Key, error)
}

// StaticKeys is a fixed KeySource.
type StaticKeys []*Key

// Key implements KeySource.
func (s StaticKeys) Key(_ context.Context, kid string) (*Key, error) {
	if len(s) == 0 {
		return nil, ErrNoKeys
	}
	for _, k := range s {
		if k.ID == kid {
			return k, nil
		}
	}
	return nil, ErrUnknownKey
}

// Keys implements KeySource.
func (s StaticKeys) Keys(context.Context) ([]*Key, error) {
	if len(s) == 0 {
		return nil, ErrNoKeys
	}
	return s, nil
}
