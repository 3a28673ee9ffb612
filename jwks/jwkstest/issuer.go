// Package jwkstest provides an OAuth2 issuer on httptest for tests, like
// net/http/httptest does for servers: it publishes a JWKS and an OpenID
// discovery document on 127.0.0.1, signs tokens, rotates and revokes keys,
// and fails on demand. It also provides Clock, a fake jwks.Clock.
//
// Every method of Issuer is safe for concurrent use.
package jwkstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Paths the Issuer serves.
const (
	JWKSPath      = "/.well-known/jwks.json"
	DiscoveryPath = "/.well-known/openid-configuration"
)

// Default claim values of Issuer.Claims.
const (
	Audience = "urn:apigee:target:api"
	Scope    = "read:target"
	ClientID = "client-1"
)

// Options configure an Issuer. The zero value is an RS256 issuer without
// caching headers.
type Options struct {
	// Alg is the signing algorithm of generated keys: RS256 (default),
	// PS256, ES256, ES384, ES512 or EdDSA.
	Alg string
	// MaxAge is the Cache-Control max-age of the JWKS response; 0 sends no
	// Cache-Control header.
	MaxAge time.Duration
	// ETag serves ETag and Last-Modified, and answers 304 to a matching
	// conditional request.
	ETag bool
}

// Failure is how the JWKS endpoint misbehaves.
type Failure int

// Failures of the JWKS endpoint.
const (
	// None serves the key set.
	None Failure = iota
	// Status500 answers 500 Internal Server Error.
	Status500
	// Timeout blocks until the request's context is done or the server
	// closes.
	Timeout
	// Garbage answers 200 with a body that is not JSON.
	Garbage
	// EmptySet answers 200 {"keys":[]}.
	EmptySet
	// NotFound answers 404.
	NotFound
)

type issuerKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

// Issuer is a test OAuth2 issuer: JWKS, discovery and token signing.
type Issuer struct {
	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	requests          atomic.Int64
	discoveryRequests atomic.Int64

	mu              sync.Mutex
	alg             string
	keys            map[string]*issuerKey // every key ever made, revoked ones too
	published       []string              // kids in the JWKS, in order
	current         string
	failure         Failure
	cacheControl    string
	etag            bool
	version         int
	modified        time.Time
	discoveryIssuer string
}

// New starts an Issuer on 127.0.0.1 with one current key. It is closed in
// t.Cleanup.
func New(t testing.TB, opts Options) *Issuer {
	t.Helper()
	if opts.Alg == "" {
		opts.Alg = "RS256"
	}
	i := &Issuer{
		closing: make(chan struct{}),
		alg:     opts.Alg,
		keys:    map[string]*issuerKey{},
		etag:    opts.ETag,
	}
	if opts.MaxAge > 0 {
		i.cacheControl = "public, max-age=" + strconv.FormatInt(int64(opts.MaxAge/time.Second), 10)
	}
	priv, err := GenerateKey(opts.Alg)
	if err != nil {
		t.Fatalf("jwkstest: %v", err)
	}
	i.mu.Lock()
	i.current = i.addKeyLocked(priv, opts.Alg)
	i.mu.Unlock()

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, i.serveJWKS)
	mux.HandleFunc("GET "+DiscoveryPath, i.serveDiscovery)
	i.srv = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(i.Close)
	return i
}

// Close stops the server: later requests are refused. A blocked Timeout
// handler returns. It is idempotent.
func (i *Issuer) Close() {
	i.once.Do(func() {
		close(i.closing)
		i.srv.Close()
	})
}

// URL is the server's base URL, without a trailing slash.
func (i *Issuer) URL() string { return i.srv.URL }

// IssuerURL is URL()+"/", the iss of its tokens (Auth0 style).
func (i *Issuer) IssuerURL() string { return i.srv.URL + "/" }

// JWKSURL is the URL of the key set.
func (i *Issuer) JWKSURL() string { return i.srv.URL + JWKSPath }

// KID is the kid of the current signing key.
func (i *Issuer) KID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current
}

// Rotate makes a new key of the issuer's algorithm current and returns its
// kid. The previous key stays published until Revoke.
func (i *Issuer) Rotate() string {
	i.mu.Lock()
	alg := i.alg
	i.mu.Unlock()
	priv := mustGenerate(alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.current = i.addKeyLocked(priv, alg)
	return i.current
}

// AddKey publishes an extra key of alg that does not become current, and
// returns its kid.
func (i *Issuer) AddKey(alg string) string {
	priv := mustGenerate(alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.addKeyLocked(priv, alg)
}

// mustGenerate panics on an unsupported alg: a mistake in the test itself.
func mustGenerate(alg string) crypto.Signer {
	priv, err := GenerateKey(alg)
	if err != nil {
		panic(err)
	}
	return priv
}

// Revoke unpublishes kid. SignWith can still sign with it.
func (i *Issuer) Revoke(kid string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n, k := range i.published {
		if k == kid {
			i.published = append(i.published[:n:n], i.published[n+1:]...)
			i.changedLocked()
			return
		}
	}
}

// SetFailure changes how the JWKS endpoint answers.
func (i *Issuer) SetFailure(f Failure) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.failure = f
}

// SetCacheControl sets the raw Cache-Control header of JWKS responses (for
// example "no-cache, no-store"); empty sends none.
func (i *Issuer) SetCacheControl(v string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cacheControl = v
}

// SetDiscoveryIssuer makes the discovery document claim another issuer;
// empty restores IssuerURL().
func (i *Issuer) SetDiscoveryIssuer(iss string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.discoveryIssuer = iss
}

// Requests counts JWKS requests, whatever their outcome.
func (i *Issuer) Requests() int64 { return i.requests.Load() }

// DiscoveryRequests counts discovery requests.
func (i *Issuer) DiscoveryRequests() int64 { return i.discoveryRequests.Load() }

// PublicJWKS is the key set document as served when nothing fails.
func (i *Issuer) PublicJWKS() []byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.documentLocked()
}

// Key returns the private key of kid, published or revoked, or nil.
func (i *Issuer) Key(kid string) crypto.Signer {
	i.mu.Lock()
	defer i.mu.Unlock()
	if k, ok := i.keys[kid]; ok {
		return k.priv
	}
	return nil
}

// Claims are the claims of an Auth0 client-credentials access token for sub,
// valid for an hour from now.
func (i *Issuer) Claims(sub string) map[string]any {
	now := time.Now().Unix()
	return map[string]any{
		"iss":   i.IssuerURL(),
		"sub":   sub,
		"aud":   Audience,
		"iat":   now,
		"exp":   now + 3600,
		"scope": Scope,
		"gty":   "client-credentials",
		"azp":   ClientID,
	}
}

// Sign signs claims with the current key; the header is {alg, typ: JWT, kid}.
func (i *Issuer) Sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.SignWith(t, i.KID(), nil, claims)
}

// SignWith signs claims with the key kid (published or revoked). header
// entries override or add to {alg, typ: JWT, kid}; a nil value deletes the
// entry (for example "kid": nil).
func (i *Issuer) SignWith(t testing.TB, kid string, header map[string]any, claims map[string]any) string {
	t.Helper()
	i.mu.Lock()
	k, ok := i.keys[kid]
	i.mu.Unlock()
	if !ok {
		t.Fatalf("jwkstest: no key with kid %q", kid)
		return ""
	}
	h := map[string]any{"kid": k.kid}
	for name, v := range header {
		h[name] = v
	}
	return SignToken(t, k.alg, k.priv, h, claims)
}

func (i *Issuer) addKeyLocked(priv crypto.Signer, alg string) string {
	kid := rand.Text()
	i.keys[kid] = &issuerKey{kid: kid, alg: alg, priv: priv}
	i.published = append(i.published, kid)
	i.changedLocked()
	return kid
}

func (i *Issuer) changedLocked() {
	i.version++
	// Last-Modified has a resolution of one second: keep it strictly
	// increasing so If-Modified-Since never hides a change.
	m := time.Now().Truncate(time.Second)
	if !m.After(i.modified) {
		m = i.modified.Add(time.Second)
	}
	i.modified = m
}

func (i *Issuer) documentLocked() []byte {
	set := jwk.NewSet()
	for _, kid := range i.published {
		k := i.keys[kid]
		pub, err := PublicJWK(k.priv.Public(), kid, k.alg)
		if err != nil {
			panic(err)
		}
		if err := set.AddKey(pub); err != nil {
			panic(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.requests.Add(1)
	i.mu.Lock()
	failure := i.failure
	cc := i.cacheControl
	etag := ""
	var modified time.Time
	if i.etag {
		etag = fmt.Sprintf(`"v%d"`, i.version)
		modified = i.modified
	}
	doc := i.documentLocked()
	i.mu.Unlock()

	switch failure {
	case Status500:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case NotFound:
		http.NotFound(w, r)
		return
	case Timeout:
		select {
		case <-r.Context().Done():
		case <-i.closing:
		}
		return
	case Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("not json{"))
		return
	case EmptySet:
		doc = []byte(`{"keys":[]}`)
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
		w.Header().Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
		if notModified(r, etag, modified) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

// notModified follows RFC 9110 §13.2.2: If-None-Match wins over
// If-Modified-Since.
func notModified(r *http.Request, etag string, modified time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		return inm == etag
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && !modified.After(t)
	}
	return false
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	i.discoveryRequests.Add(1)
	i.mu.Lock()
	iss := i.discoveryIssuer
	i.mu.Unlock()
	if iss == "" {
		iss = i.IssuerURL()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              i.JWKSURL(),
		"token_endpoint":                        i.URL() + "/oauth/token",
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

// GenerateKey makes a private key for alg: RSA 2048 for RS*/PS*, the
// matching NIST curve for ES*, Ed25519 for EdDSA.
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("jwkstest: unsupported algorithm %q", alg)
}

// PublicJWK is the JWK of a public key with kid, alg and use: sig. An empty
// kid or alg is left out.
func PublicJWK(pub crypto.PublicKey, kid, alg string) (jwk.Key, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return nil, err
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			return nil, err
		}
	}
	if alg != "" {
		if err := k.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg)); err != nil {
			return nil, err
		}
	}
	if err := k.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, err
	}
	return k, nil
}
