package authz

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"

	"filippo.io/edwards25519"
)

// MinRSABits is the smallest RSA modulus jwt-authz verifies with.
const MinRSABits = 2048

// StrongPublicKey reports whether pub is a key jwt-authz may verify with:
// RSA of at least MinRSABits with an odd exponent >= 3, ECDSA on P-256,
// P-384 or P-521 with the point on its curve, or Ed25519 with a canonical
// point of large order. The JWKS loader and the DPoP proof parser both ask
// it, so a key refused in a key set is refused in a proof.
func StrongPublicKey(pub crypto.PublicKey) bool {
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		// e = 1 makes every "signature" its own message; an even e is
		// no RSA key (it has no inverse mod phi).
		return pk.N != nil && pk.N.BitLen() >= MinRSABits && pk.E >= 3 && pk.E%2 == 1
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return false
		}
		_, err := pk.ECDH() // fails for a point off its curve
		return err == nil
	case ed25519.PublicKey:
		return strongEd25519(pk)
	}
	return false
}

// strongEd25519 reports whether pk is the canonical encoding of a point of
// large order. A small-order point (the identity, or any of the 8 torsion
// points) makes a "public key" for which a signature can be forged without
// any private key: with A = identity, R = identity and S = 0 verify any
// message under crypto/ed25519's cofactorless equation.
func strongEd25519(pk ed25519.PublicKey) bool {
	if len(pk) != ed25519.PublicKeySize {
		return false
	}
	p, err := new(edwards25519.Point).SetBytes(pk)
	if err != nil || !bytes.Equal(p.Bytes(), pk) { // not a point, or not its one spelling
		return false
	}
	return new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0
}
