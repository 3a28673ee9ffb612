package jwks

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/jwtauthz/jwt-authz/authz"
)

var errNoUsableKeys = errors.New("key set has no usable key")

// KeyInfo describes one usable key, public parameters only.
type KeyInfo struct {
	KID string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
}

// keySet is one immutable generation of a provider's usable keys.
type generation struct {
	keys  []*authz.Key
	byKID map[string]*authz.Key // kid-less keys are in keys only
	info  []KeyInfo
	// fromCache marks a set read from the cache file: the first good fetch
	// replaces it whatever it holds.
	fromCache bool
}

// kids are the non-empty kids of the set, in document order.
func (s *generation) kids() []string {
	out := make([]string, 0, len(s.info))
	for _, i := range s.info {
		if i.KID != "" {
			out = append(out, i.KID)
		}
	}
	return out
}

// parseKeySet parses a JWKS document and keeps its usable keys. Keys jwx
// cannot parse (unknown kty, for one) are ignored, as RFC 7517 §5 asks.
func parseKeySet(doc []byte, algorithms []string) (*generation, error) {
	set, err := jwk.Parse(doc, jwk.WithIgnoreParseError(true))
	if err != nil {
		return nil, fmt.Errorf("parse key set: %w", err)
	}
	s := &generation{byKID: map[string]*authz.Key{}}
	for i := range set.Len() {
		k, _ := set.Key(i)
		key, info, ok := usableKey(k, algorithms)
		if !ok {
			continue
		}
		s.keys = append(s.keys, key)
		s.info = append(s.info, info)
		if _, dup := s.byKID[key.ID]; key.ID != "" && !dup {
			s.byKID[key.ID] = key
		}
	}
	if len(s.keys) == 0 {
		return nil, errNoUsableKeys
	}
	return s, nil
}

// usableKey turns a JWK into a verification key, or says it is not one.
func usableKey(k jwk.Key, algorithms []string) (*authz.Key, KeyInfo, bool) {
	use := k.KeyUsage()
	if use != "" && use != jwk.ForSignature.String() {
		return nil, KeyInfo{}, false
	}
	alg := k.Algorithm().String()
	if alg != "" && len(algorithms) > 0 && !slices.Contains(algorithms, alg) {
		return nil, KeyInfo{}, false
	}
	// A private JWK in a public set is a publisher's mistake; its public
	// half still verifies.
	pub, err := k.PublicKey()
	if err != nil {
		return nil, KeyInfo{}, false
	}
	var raw any
	if err := pub.Raw(&raw); err != nil {
		return nil, KeyInfo{}, false
	}
	if !keyFits(raw, alg) {
		return nil, KeyInfo{}, false
	}
	return &authz.Key{ID: k.KeyID(), Algorithm: alg, Public: raw},
		KeyInfo{KID: k.KeyID(), Alg: alg, Kty: k.KeyType().String(), Use: use}, true
}

// keyFits accepts a key that authz.StrongPublicKey accepts, only with an
// alg (when set) that can use it.
func keyFits(raw any, alg string) bool {
	if !authz.StrongPublicKey(raw) {
		return false
	}
	switch pk := raw.(type) {
	case *rsa.PublicKey:
		return alg == "" || strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		want := map[elliptic.Curve]string{elliptic.P256(): "ES256", elliptic.P384(): "ES384", elliptic.P521(): "ES512"}[pk.Curve]
		return want != "" && (alg == "" || alg == want)
	case ed25519.PublicKey:
		return alg == "" || alg == "EdDSA" || alg == "Ed25519"
	}
	return false
}

// keysRemoved lists the kids of old that next lacks.
func keysRemoved(old, next *generation) []string {
	if old == nil {
		return nil
	}
	var out []string
	for _, kid := range old.kids() {
		if _, ok := next.byKID[kid]; !ok {
			out = append(out, kid)
		}
	}
	return out
}

// replacesAll reports whether next keeps none of old's kids. A set without
// kids cannot be compared and never counts as replaced.
func replacesAll(old, next *generation) bool {
	kids := old.kids()
	return len(kids) > 0 && len(keysRemoved(old, next)) == len(kids)
}

// suspect remembers a key set that replaced every known kid, so that the
// same set served for a whole refresh interval is finally believed (an
// emergency rotation at the IdP) instead of refused forever.
type suspect struct {
	kids  string
	since time.Time
}

func setID(s *generation) string { return strings.Join(s.kids(), "\x00") }
