package authz

import (
	"crypto/sha256"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPackedBindingMatchesClaims holds the packed binding (cnf, flags,
// boundJKT, jktIs, boundX5T, x5tIs) to the plain cnf.jkt and
// cnf["x5t#S256"] strings it replaced: for generated pairs of values
// (thumbprints, empty, one character short or long, characters outside
// base64url, non-canonical last characters, long junk), a token is bound
// exactly when the claim is set, and a presented thumbprint (of a proof
// key or a certificate: the base64url of 32 bytes) matches exactly when it
// equals the claim, before and after pack.
func TestPackedBindingMatchesClaims(t *testing.T) {
	t.Parallel()
	const seed = 20261202
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 43))
	thumb := func() string {
		var b [8]byte
		for i := range b {
			b[i] = byte(r.IntN(4)) // few distinct thumbprints: matches happen
		}
		s := sha256.Sum256(b[:])
		return b64.EncodeToString(s[:])
	}
	value := func() string {
		switch r.IntN(8) {
		case 0:
			return ""
		case 1:
			return thumb()[:42]
		case 2:
			return thumb() + "A"
		case 3:
			s := []byte(thumb())
			s[r.IntN(len(s))] = "!+/= \x00é"[r.IntN(7)]
			return string(s)
		case 4:
			s := []byte(thumb())
			s[len(s)-1] = "BCDEFGHIJKLMNOPRSTUVWXYZ"[r.IntN(24)] // low bits set: not canonical
			return string(s)
		case 5:
			return strings.Repeat("x", r.IntN(600))
		}
		return thumb()
	}
	for i := range 20000 {
		jkt, x5t := value(), value()
		var v verified
		v.flags = flagKid
		v.setCnf(jkt, x5t)
		for _, packed := range []bool{false, true} {
			if packed {
				v.pack()
			}
			if v.boundJKT() != (jkt != "") || v.boundX5T() != (x5t != "") {
				t.Fatalf("case %d (packed %v) jkt %q x5t %q: bound jkt %v x5t %v", i, packed, jkt, x5t, v.boundJKT(), v.boundX5T())
			}
			for _, p := range []string{thumb(), thumb(), jkt, x5t} {
				if raw, err := b64.DecodeString(p); err != nil || len(raw) != thumbprintSize {
					continue // not something a proof or certificate presents
				}
				if v.jktIs(p) != (jkt == p) || v.x5tIs(p) != (x5t == p) {
					t.Fatalf("case %d (packed %v) jkt %q x5t %q: presented %q matches jkt %v x5t %v", i, packed, jkt, x5t, p, v.jktIs(p), v.x5tIs(p))
				}
			}
			if v.flags&flagKid == 0 {
				t.Fatalf("case %d: setCnf cleared flagKid", i)
			}
		}
	}
}
