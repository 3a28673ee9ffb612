// Package devissuer is a local stand-in for an Auth0 tenant, for development and
// demos only: the client-credentials token endpoint (POST /oauth/token, Auth0's
// request and error shapes), tokens shaped like Auth0 machine-to-machine access
// tokens (or the RFC 9068 profile), a JWKS with the current and the next key,
// the discovery document, and key rotation for loopback callers (and networks
// the operator allows, as a compose network).
//
// It is never meant for production: client secrets are printed at start and
// keys are kept in plain files.
//
// Concurrency: an *Issuer is an http.Handler safe for concurrent use. The
// clients are immutable after New; the key ring is guarded by a mutex, held
// only to read or swap keys (never while signing or doing I/O other than the
// small key-file write of a rotation).
package devissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/jwtauthz/jwt-authz/replay"
)

// Profile selects the shape of issued tokens.
type Profile string

const (
	// ProfileAuth0 is Auth0's default access-token profile: typ JWT, azp.
	ProfileAuth0 Profile = "auth0"
	// ProfileRFC9068 is RFC 9068: typ at+jwt, client_id and jti instead of azp.
	ProfileRFC9068 Profile = "rfc9068"
)

// Defaults of Options.
const (
	DefaultTokenTTL   = 24 * time.Hour // Auth0's default for APIs
	DefaultJWKSMaxAge = 300 * time.Second
	rsaKeyBits        = 2048
)

// Options configure an Issuer.
type Options struct {
	// Issuer is the iss claim and the base of every URL in the discovery
	// document, e.g. "http://127.0.0.1:8081/". Required; it must be an
	// absolute http(s) URL ending in "/", as Auth0 issuers do.
	Issuer string
	// Clients that may get tokens. Nil means DemoClients().
	Clients []Client
	// Profile of issued tokens. Zero means ProfileAuth0.
	Profile Profile
	// TokenTTL is exp - iat and expires_in. Zero means DefaultTokenTTL.
	TokenTTL time.Duration
	// JWKSMaxAge is the max-age of the JWKS and discovery Cache-Control.
	// Zero means DefaultJWKSMaxAge.
	JWKSMaxAge time.Duration
	// KeyFile persists the key ring (JSON with PEM keys) so that a restart
	// keeps its kids; created when missing, rewritten on every rotation.
	// Empty means keys live in memory only.
	KeyFile string
	// GenerateKey makes a new signing key. Nil means RSA 2048 from crypto/rand.
	GenerateKey func() (*rsa.PrivateKey, error)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives one line per issued token, rotation and revocation.
	// Nil means no logs.
	Logger *slog.Logger
	// MTLSTokenEndpoint is the URL of POST /oauth/token on the mutual-TLS
	// listener (MTLSHandler), advertised as the discovery document's
	// mtls_endpoint_aliases (RFC 8705 §5). Empty means no such listener.
	MTLSTokenEndpoint string
	// AdminAllow lists the networks, besides loopback, whose callers may use
	// the admin endpoints (rotate, revoke, keys), e.g. a docker compose
	// network. Loopback callers are always allowed. Nil means loopback only.
	AdminAllow []netip.Prefix
}

// Issuer is the stand-in tenant; see the package comment.
type Issuer struct {
	issuer      string
	profile     Profile
	ttl         time.Duration
	maxAge      time.Duration
	keyFile     string
	generateKey func() (*rsa.PrivateKey, error)
	now         func() time.Time
	log         *slog.Logger
	clients     map[string]Client
	scopes      []string // every granted scope, for the discovery document
	adminAllow  []netip.Prefix
	tokenURL    string // normalised, as DPoP proofs' htu must name it
	mtlsURL     string // the token endpoint on the mTLS listener, if any
	proofs      *replay.Memory
	mux         *http.ServeMux
	mtlsMux     *http.ServeMux

	mu   sync.Mutex
	keys *keyRing
}

// New builds an Issuer, loading or creating the key ring.
func New(opts Options) (*Issuer, error) {
	if err := validateIssuer(opts.Issuer); err != nil {
		return nil, err
	}
	iss := &Issuer{
		issuer:      opts.Issuer,
		profile:     opts.Profile,
		ttl:         opts.TokenTTL,
		maxAge:      opts.JWKSMaxAge,
		keyFile:     opts.KeyFile,
		generateKey: opts.GenerateKey,
		now:         opts.Now,
		log:         opts.Logger,
		adminAllow:  slices.Clone(opts.AdminAllow),
	}
	if opts.MTLSTokenEndpoint != "" {
		if _, err := normalizeHTU(opts.MTLSTokenEndpoint); err != nil || !strings.HasPrefix(opts.MTLSTokenEndpoint, "https://") {
			return nil, fmt.Errorf("devissuer: mtls token endpoint %q: want an absolute https URL", opts.MTLSTokenEndpoint)
		}
		iss.mtlsURL = opts.MTLSTokenEndpoint
	}
	for _, p := range iss.adminAllow {
		if !p.IsValid() {
			return nil, fmt.Errorf("devissuer: admin allow %v: not a valid network", p)
		}
	}
	switch iss.profile {
	case "":
		iss.profile = ProfileAuth0
	case ProfileAuth0, ProfileRFC9068:
	default:
		return nil, fmt.Errorf("devissuer: profile %q: want %q or %q", opts.Profile, ProfileAuth0, ProfileRFC9068)
	}
	if iss.ttl < 0 || iss.maxAge < 0 {
		return nil, errors.New("devissuer: token ttl and jwks max-age must not be negative")
	}
	if iss.ttl == 0 {
		iss.ttl = DefaultTokenTTL
	}
	if iss.maxAge == 0 {
		iss.maxAge = DefaultJWKSMaxAge
	}
	if iss.generateKey == nil {
		iss.generateKey = func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, rsaKeyBits) }
	}
	if iss.now == nil {
		iss.now = time.Now
	}
	if iss.log == nil {
		iss.log = slog.New(slog.DiscardHandler)
	}
	clients := opts.Clients
	if clients == nil {
		clients = DemoClients()
	}
	if err := validateClients(clients); err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	iss.clients = make(map[string]Client, len(clients))
	for _, c := range clients {
		iss.clients[c.ClientID] = c
		for _, g := range c.Grants {
			iss.scopes = append(iss.scopes, g.Scopes...)
		}
	}
	slices.Sort(iss.scopes)
	iss.scopes = slices.Compact(iss.scopes)

	if err := iss.initKeys(); err != nil {
		return nil, err
	}
	iss.tokenURL, _ = normalizeHTU(iss.issuer + "oauth/token") // validateIssuer passed
	// Seen proofs, until they are too old anyway. Nobody registers metrics
	// of a dev tool.
	proofs, err := replay.NewMemory(replay.MemoryOptions{Now: iss.now})
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	iss.proofs = proofs

	iss.mux = http.NewServeMux()
	iss.mux.HandleFunc("POST /oauth/token", iss.handleToken)
	iss.mux.HandleFunc("GET /.well-known/jwks.json", iss.handleJWKS)
	iss.mux.HandleFunc("GET /.well-known/openid-configuration", iss.handleDiscovery)
	iss.mux.HandleFunc("POST /admin/rotate", iss.adminCallersOnly(iss.handleRotate))
	iss.mux.HandleFunc("POST /admin/revoke", iss.adminCallersOnly(iss.handleRevoke))
	iss.mux.HandleFunc("GET /admin/keys", iss.adminCallersOnly(iss.handleKeys))
	iss.mtlsMux = http.NewServeMux()
	iss.mtlsMux.HandleFunc("POST /oauth/token", iss.handleTokenMTLS)
	return iss, nil
}

func validateIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("devissuer: issuer %q: want an absolute http(s) URL", s)
	}
	if !strings.HasSuffix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("devissuer: issuer %q: must end in \"/\" with no query, like an Auth0 issuer", s)
	}
	return nil
}

func (iss *Issuer) initKeys() error {
	subject := "dev-issuer " + iss.issuer
	if iss.keyFile != "" {
		ring, ok, err := loadKeyFile(iss.keyFile, subject)
		if err != nil {
			return err
		}
		if ok {
			iss.keys = ring
			return nil
		}
	}
	current, err := iss.newKey()
	if err != nil {
		return err
	}
	next, err := iss.newKey()
	if err != nil {
		return err
	}
	iss.keys = &keyRing{current: current, next: next}
	if iss.keyFile != "" {
		return saveKeyFile(iss.keyFile, iss.keys)
	}
	return nil
}

func (iss *Issuer) newKey() (*signingKey, error) {
	raw, err := iss.generateKey()
	if err != nil {
		return nil, fmt.Errorf("devissuer: generate key: %w", err)
	}
	return newSigningKey(raw, nil, "dev-issuer "+iss.issuer)
}

// ServeHTTP implements http.Handler.
func (iss *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iss.mux.ServeHTTP(w, r)
}

// KeyState is the answer of the admin endpoints.
type KeyState struct {
	Current   string   `json:"current"`
	Next      string   `json:"next"`
	Published []string `json:"published"`
}

// Keys returns the kids of the key ring.
func (iss *Issuer) Keys() KeyState {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.stateLocked()
}

func (iss *Issuer) stateLocked() KeyState {
	s := KeyState{Current: iss.keys.current.kid, Next: iss.keys.next.kid}
	for _, k := range iss.keys.published() {
		s.Published = append(s.Published, k.kid)
	}
	return s
}

// Rotate makes the next key the signing key and publishes a new next key. The
// previous signing key stays published until Revoke.
func (iss *Issuer) Rotate() (KeyState, error) {
	// Generating a key takes a while; do it before taking the lock.
	fresh, err := iss.newKey()
	if err != nil {
		return KeyState{}, err
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	ring := &keyRing{
		current: iss.keys.next,
		next:    fresh,
		retired: append([]*signingKey{iss.keys.current}, iss.keys.retired...),
	}
	if iss.keyFile != "" {
		if err := saveKeyFile(iss.keyFile, ring); err != nil {
			return KeyState{}, err
		}
	}
	iss.keys = ring
	return iss.stateLocked(), nil
}

// Errors of Revoke.
var (
	ErrUnknownKey = errors.New("devissuer: no published key has this kid")
	ErrKeyInUse   = errors.New("devissuer: key is the current signing key")
	ErrKeyIsNext  = errors.New("devissuer: key is the next signing key")
)

// Revoke stops publishing a retired key.
func (iss *Issuer) Revoke(kid string) (KeyState, error) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	switch kid {
	case iss.keys.current.kid:
		return KeyState{}, ErrKeyInUse
	case iss.keys.next.kid:
		return KeyState{}, ErrKeyIsNext
	}
	i := slices.IndexFunc(iss.keys.retired, func(k *signingKey) bool { return k.kid == kid })
	if i < 0 {
		return KeyState{}, ErrUnknownKey
	}
	ring := &keyRing{
		current: iss.keys.current,
		next:    iss.keys.next,
		retired: slices.Delete(slices.Clone(iss.keys.retired), i, i+1),
	}
	if iss.keyFile != "" {
		if err := saveKeyFile(iss.keyFile, ring); err != nil {
			return KeyState{}, err
		}
	}
	iss.keys = ring
	return iss.stateLocked(), nil
}

func (iss *Issuer) signingKey() *signingKey {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.keys.current
}

func (iss *Issuer) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	iss.mu.Lock()
	keys := iss.keys.published()
	iss.mu.Unlock()
	set := jwk.NewSet()
	for _, k := range keys {
		if err := set.AddKey(k.public); err != nil {
			iss.log.Error("jwks add key", "kid", k.kid, "error", err)
			writeError(w, http.StatusInternalServerError, "server_error", "could not build the key set")
			return
		}
	}
	w.Header().Set("Cache-Control", iss.cacheControl())
	writeJSON(w, http.StatusOK, set)
}

func (iss *Issuer) cacheControl() string {
	return "public, max-age=" + strconv.FormatInt(int64(iss.maxAge/time.Second), 10)
}

// discovery is the subset of OpenID Provider Metadata (OIDC Discovery §3) that
// makes sense for a token-only issuer, in Auth0's spelling.
type discovery struct {
	Issuer                            string   `json:"issuer"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	// RFC 9449 §5.1.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported"`
	// RFC 8705 §3.3, §5: only with an mTLS listener.
	TLSClientCertificateBoundAccessTokens bool              `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	MTLSEndpointAliases                   map[string]string `json:"mtls_endpoint_aliases,omitempty"`
}

func (iss *Issuer) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	claims := []string{"iss", "sub", "aud", "iat", "exp", "scope", "gty", "permissions", "cnf"}
	if iss.profile == ProfileRFC9068 {
		claims = append(claims, "client_id", "jti")
	} else {
		claims = append(claims, "azp")
	}
	var aliases map[string]string
	if iss.mtlsURL != "" {
		aliases = map[string]string{"token_endpoint": iss.mtlsURL}
	}
	w.Header().Set("Cache-Control", iss.cacheControl())
	writeJSON(w, http.StatusOK, discovery{
		Issuer:                                iss.issuer,
		TokenEndpoint:                         iss.issuer + "oauth/token",
		JWKSURI:                               iss.issuer + ".well-known/jwks.json",
		GrantTypesSupported:                   []string{grantClientCredentials},
		ResponseTypesSupported:                []string{"token"},
		SubjectTypesSupported:                 []string{"public"},
		IDTokenSigningAlgValuesSupported:      []string{"RS256"},
		TokenEndpointAuthMethodsSupported:     []string{"client_secret_post", "client_secret_basic"},
		ScopesSupported:                       iss.scopes,
		ClaimsSupported:                       claims,
		DPoPSigningAlgValuesSupported:         DPoPAlgorithms,
		TLSClientCertificateBoundAccessTokens: aliases != nil,
		MTLSEndpointAliases:                   aliases,
	})
}

// adminCallersOnly admits the admin callers: loopback ones (127.0.0.0/8,
// ::1) and those in Options.AdminAllow; it refuses the others. It trusts the
// connection's address only: forwarding headers are ignored, since anyone
// can send them.
func (iss *Issuer) adminCallersOnly(next http.HandlerFunc) http.HandlerFunc {
	msg := "admin endpoints answer loopback callers only"
	if len(iss.adminAllow) > 0 {
		msg = "admin endpoints answer loopback callers and allowed networks only"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !adminAllowed(r.RemoteAddr, iss.adminAllow) {
			writeError(w, http.StatusForbidden, "access_denied", msg)
			return
		}
		next(w, r)
	}
}

func adminAllowed(remoteAddr string, allow []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	// An IPv4 caller on a dual-stack listener shows as ::ffff:a.b.c.d.
	addr = addr.Unmap().WithZone("")
	if addr.IsLoopback() {
		return true
	}
	for _, p := range allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParseAdminAllow parses a comma-separated list of networks (CIDR, or a single
// address) for Options.AdminAllow, e.g. "172.16.0.0/12,10.0.0.0/8". Spaces
// around entries are ignored; an empty string gives nil (loopback only).
// Host bits are cleared: "10.1.2.3/8" is 10.0.0.0/8.
func ParseAdminAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if !strings.Contains(entry, "/") {
			addr, err := netip.ParseAddr(entry)
			if err != nil || addr.Zone() != "" {
				return nil, fmt.Errorf("devissuer: admin allow %q: want a CIDR like 172.16.0.0/12 or an address", entry)
			}
			addr = addr.Unmap()
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return nil, fmt.Errorf("devissuer: admin allow %q: want a CIDR like 172.16.0.0/12 or an address", entry)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (iss *Issuer) handleRotate(w http.ResponseWriter, _ *http.Request) {
	state, err := iss.Rotate()
	if err != nil {
		iss.log.Error("rotate keys", "error", err)
		writeError(w, http.StatusInternalServerError, "server_error", "rotation failed")
		return
	}
	iss.log.Info("keys rotated", "current_kid", state.Current, "next_kid", state.Next)
	writeJSON(w, http.StatusOK, state)
}

func (iss *Issuer) handleRevoke(w http.ResponseWriter, r *http.Request) {
	kid := r.URL.Query().Get("kid")
	if kid == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "Missing required parameter: kid")
		return
	}
	state, err := iss.Revoke(kid)
	switch {
	case errors.Is(err, ErrUnknownKey):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no published key has kid %q", kid))
		return
	case errors.Is(err, ErrKeyInUse):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("key %q signs tokens now; rotate first", kid))
		return
	case errors.Is(err, ErrKeyIsNext):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("key %q is the next signing key; rotate twice first", kid))
		return
	case err != nil:
		iss.log.Error("revoke key", "error", err)
		writeError(w, http.StatusInternalServerError, "server_error", "revocation failed")
		return
	}
	iss.log.Info("key revoked", "kid", kid)
	writeJSON(w, http.StatusOK, state)
}

func (iss *Issuer) handleKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, iss.Keys())
}

// oauthError is the RFC 6749 §5.2 error body Auth0 answers with.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, oauthError{Error: code, ErrorDescription: description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
