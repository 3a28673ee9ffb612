package jwks

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	mrand "math/rand/v2"
	"testing"
	"time"

	"filippo.io/edwards25519"

	"github.com/jwtauthz/jwt-authz/authz"
)

// fieldP is 2^255 - 19, the field of Curve25519.
var fieldP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))

// lowOrderByX25519 is an oracle independent of edwards25519: the point
// with Edwards y maps to Montgomery u = (1+y)/(1-y), and X25519 with any
// clamped scalar (a multiple of 8) yields the all-zero secret, which
// crypto/ecdh refuses, exactly when the point has small order.
func lowOrderByX25519(t *testing.T, enc []byte) bool {
	t.Helper()
	le := make([]byte, 32)
	copy(le, enc)
	le[31] &= 0x7f
	be := make([]byte, 32)
	for i := range le {
		be[31-i] = le[i]
	}
	y := new(big.Int).SetBytes(be)
	y.Mod(y, fieldP)
	den := new(big.Int).Sub(big.NewInt(1), y)
	den.Mod(den, fieldP)
	if den.Sign() == 0 {
		return true // y = 1: the identity
	}
	u := new(big.Int).Add(big.NewInt(1), y)
	u.Mul(u, new(big.Int).ModInverse(den, fieldP))
	u.Mod(u, fieldP)
	ub := u.FillBytes(make([]byte, 32))
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		ub[i], ub[j] = ub[j], ub[i]
	}
	remote, err := ecdh.X25519().NewPublicKey(ub)
	if err != nil {
		t.Fatal(err)
	}
	local, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = local.ECDH(remote)
	return err != nil
}

// torsionPoints finds the eight points of small order as [L]P for random
// points P ([L]P = [L-1]P + P, since scalars are reduced mod L).
func torsionPoints(t *testing.T, rng *mrand.Rand) map[[32]byte]bool {
	t.Helper()
	lMinus1 := []byte{ // L - 1, little-endian
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(lMinus1)
	if err != nil {
		t.Fatal(err)
	}
	out := map[[32]byte]bool{}
	for tries := 0; len(out) < 8 && tries < 10000; tries++ {
		var b [32]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		p, err := new(edwards25519.Point).SetBytes(b[:])
		if err != nil {
			continue
		}
		tp := new(edwards25519.Point).ScalarMult(s, p)
		tp.Add(tp, p)
		out[[32]byte(tp.Bytes())] = true
	}
	if len(out) != 8 {
		t.Fatalf("found %d torsion points, want 8", len(out))
	}
	return out
}

// TestSmallOrderEd25519KeysRefused: every small-order point, in its
// canonical and its non-canonical spellings, is refused as a key, and the
// attack it allows is real: under the identity point, R = identity and
// S = 0 verify any message.
func TestSmallOrderEd25519KeysRefused(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 25519))

	identity := edwards25519.NewIdentityPoint().Bytes()
	forged := append(append([]byte{}, identity...), make([]byte, 32)...)
	if !ed25519.Verify(identity, []byte("any message"), forged) {
		t.Fatal("the forgery under the identity key does not verify: the premise of this test is wrong")
	}

	torsion := torsionPoints(t, rng)
	var bad [][]byte
	for enc := range torsion {
		if !lowOrderByX25519(t, enc[:]) {
			t.Fatalf("%x: X25519 says it is not of small order", enc)
		}
		bad = append(bad, append([]byte{}, enc[:]...))
		// The same point with the sign bit flipped: a non-canonical
		// spelling when x = 0, another point (also small) otherwise.
		flipped := append([]byte{}, enc[:]...)
		flipped[31] ^= 0x80
		bad = append(bad, flipped)
	}
	// y + p for the y < 19: non-canonical spellings of 0 and 1 among them.
	for y := range 19 {
		v := new(big.Int).Add(fieldP, big.NewInt(int64(y)))
		be := v.FillBytes(make([]byte, 32))
		le := make([]byte, 32)
		for i := range be {
			le[31-i] = be[i]
		}
		bad = append(bad, le)
	}
	for _, enc := range bad {
		if authz.PublicKeyFits(ed25519.PublicKey(enc), "EdDSA") || authz.PublicKeyFits(ed25519.PublicKey(enc), "") {
			t.Errorf("small-order or non-canonical Ed25519 key %x accepted", enc)
		}
	}

	// Generated keys, and points of mixed order (a key plus a torsion
	// point), are of large order: accepted, and X25519 agrees.
	var tp []*edwards25519.Point
	for enc := range torsion {
		p, _ := new(edwards25519.Point).SetBytes(enc[:])
		tp = append(tp, p)
	}
	for i := range 200 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		enc := []byte(pub)
		if i%2 == 1 {
			p, _ := new(edwards25519.Point).SetBytes(pub)
			enc = p.Add(p, tp[rng.IntN(len(tp))]).Bytes()
		}
		if lowOrderByX25519(t, enc) {
			t.Fatalf("%x: X25519 says a generated key has small order", enc)
		}
		if !authz.PublicKeyFits(ed25519.PublicKey(enc), "EdDSA") {
			t.Errorf("good Ed25519 key %x refused", enc)
		}
	}

	// Through the JWKS parser: the identity point as x is not kept.
	doc, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "identity", "x": base64.RawURLEncoding.EncodeToString(identity)},
	}})
	if s, err := parseKeySet(doc, nil); err == nil {
		t.Errorf("a key set of the identity point was kept: %+v", s.info)
	}
}

// TestWeakRSAExponentsRefused: an RSA key with e < 3 or an even e is
// refused, whatever its size; 3 and 65537 are taken; under 2048 bits is
// refused.
func TestWeakRSAExponentsRefused(t *testing.T) {
	t.Parallel()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		e    int
		want bool
	}{
		{-3, false}, {0, false}, {1, false}, {2, false}, {4, false}, {65536, false}, {1 << 30, false},
		{3, true}, {17, true}, {65537, true}, {1<<31 - 1, true},
	} {
		pub := &rsa.PublicKey{N: k.N, E: tc.e}
		for _, alg := range []string{"", "RS256", "PS256"} {
			if got := authz.PublicKeyFits(pub, alg); got != tc.want {
				t.Errorf("e=%d alg %q: usable %v, want %v", tc.e, alg, got, tc.want)
			}
		}
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if authz.PublicKeyFits(&small.PublicKey, "RS256") {
		t.Error("a 1024-bit RSA key was accepted")
	}
}
