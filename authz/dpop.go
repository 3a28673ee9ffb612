package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Sender-constrained tokens, DPoP part (RFC 9449): the proof a client sends
// beside a DPoP-bound token, parsed with the token's own strict JOSE parser
// (parseCompact, decodeClaims), checked against the request, and bound to
// the token's cnf.jkt.

// SenderMode says whether a provider accepts, requires or ignores one kind
// of sender-constrained token.
type SenderMode int

// Sender modes (the config's dpop.mode and mtls.mode).
const (
	// SenderDisabled: the scheme is not accepted and the binding is not
	// checked. The zero value.
	SenderDisabled SenderMode = iota
	// SenderAllowed: a bound token must prove possession; unbound tokens
	// pass.
	SenderAllowed
	// SenderRequired: every token of the provider must be bound and proven.
	SenderRequired
)

// Defaults of DPoPOptions.
const (
	DefaultDPoPIATOffset = 300 * time.Second
	DefaultDPoPIATLeeway = 30 * time.Second
	// MaxProofBytes bounds the DPoP header; a longer proof is invalid.
	MaxProofBytes = 8 << 10
	// MaxJTIBytes bounds a proof's jti.
	MaxJTIBytes = 512
)

// DefaultDPoPAlgorithms are the proof algorithms accepted when a provider
// names none. Ed25519 is RFC 9864's fully-specified name for EdDSA over
// Ed25519.
var DefaultDPoPAlgorithms = []string{"ES256", "PS256", "RS256", "EdDSA", "Ed25519"}

// ReplayStore remembers DPoP proof identifiers (package replay implements
// it). Claim reports whether key is new, recording it until expiry; an
// error means the proof is refused.
type ReplayStore interface {
	Claim(ctx context.Context, key string, expiry time.Time) (bool, error)
}

// DPoPOptions configure a provider's DPoP checks.
type DPoPOptions struct {
	// Mode; the zero value is SenderDisabled (the config's default is
	// allowed).
	Mode SenderMode
	// IATOffset is how old a proof may be; zero means DefaultDPoPIATOffset.
	IATOffset time.Duration
	// IATLeeway widens the window on both sides; zero means
	// DefaultDPoPIATLeeway.
	IATLeeway time.Duration
	// Algorithms accepted for proofs; empty means DefaultDPoPAlgorithms.
	Algorithms []string
	// Replay remembers proof jtis; required unless Mode is disabled.
	Replay ReplayStore
	// TrustForwarded builds the expected htu from x-forwarded-proto and
	// x-forwarded-host instead of the request's scheme and host.
	TrustForwarded bool
}

// dpopAlgs maps a proof alg to the verification spec it uses.
var dpopAlgs = map[string]string{
	"ES256": "ES256", "ES384": "ES384", "ES512": "ES512",
	"RS256": "RS256", "RS384": "RS384", "RS512": "RS512",
	"PS256": "PS256", "PS384": "PS384", "PS512": "PS512",
	"EdDSA": "EdDSA", "Ed25519": "EdDSA",
}

// SupportedProofAlgorithm reports whether alg may sign a DPoP proof: an
// asymmetric JWS algorithm (never none, never HS*).
func SupportedProofAlgorithm(alg string) bool {
	_, ok := dpopAlgs[alg]
	return ok
}

// privateMembers are JWK members that only a private key has (RFC 7518
// §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// proof is a DPoP proof that passed every check of its own: its key's
// thumbprint, jti and iat.
type proof struct {
	jkt string
	jti string
	iat float64
}

// checkProof reads and checks the request's DPoP proof for token tok of
// provider p. It returns the proof, or the reason and description of a
// denial (invalid_proof, or missing_proof when there is none).
func (a *Authorizer) checkProof(r *Request, p *provider, tok string) (proof, Reason, string) {
	raw, ok := r.Headers["dpop"]
	if !ok {
		return proof{}, ReasonMissingProof, "the DPoP token came without a DPoP proof"
	}
	if r.Repeated["dpop"] > 1 || strings.IndexByte(raw, ',') >= 0 {
		return proof{}, ReasonInvalidProof, "more than one DPoP proof"
	}
	pf, why := parseProof(raw, p.dpopAlgs, &a.proofKeys)
	if why != "" {
		return proof{}, ReasonInvalidProof, "the DPoP proof " + why
	}
	if pf.htm != r.Method {
		return proof{}, ReasonInvalidProof, "the DPoP proof is for another method"
	}
	want, ok := a.requestURL(r, p.DPoP.TrustForwarded)
	if !ok {
		return proof{}, ReasonInvalidProof, "the request URL cannot be read"
	}
	got, ok := pf.htu, true
	if got != want { // most clients write the URL as it is normalised
		got, ok = normalizeHTU(pf.htu)
	}
	if !ok || got != want {
		return proof{}, ReasonInvalidProof, "the DPoP proof is for another URL"
	}
	now := a.now()
	iat := unixTime(pf.iat)
	if iat.After(now.Add(p.DPoP.IATLeeway)) {
		return proof{}, ReasonInvalidProof, "the DPoP proof was made in the future"
	}
	if iat.Before(now.Add(-p.DPoP.IATOffset - p.DPoP.IATLeeway)) {
		return proof{}, ReasonInvalidProof, "the DPoP proof is too old"
	}
	if pf.ath != accessTokenHash(tok) {
		return proof{}, ReasonInvalidProof, "the DPoP proof is for another access token"
	}
	return proof{jkt: pf.jkt, jti: pf.jti, iat: pf.iat}, "", ""
}

// claimProof records the proof's jti (keyed by provider and thumbprint)
// until the last moment the proof could be accepted. It runs after every
// other check of the proof and its token, so only proofs of valid tokens
// take room.
func (a *Authorizer) claimProof(ctx context.Context, p *provider, pf proof) (Reason, string) {
	expiry := unixTime(pf.iat).Add(p.DPoP.IATOffset + p.DPoP.IATLeeway + time.Second)
	fresh, err := p.DPoP.Replay.Claim(ctx, p.Name+" "+pf.jkt+" "+pf.jti, expiry)
	switch {
	case err != nil:
		return ReasonInvalidProof, "the DPoP proof could not be checked for replay"
	case !fresh:
		return ReasonInvalidProof, "the DPoP proof was already used"
	}
	return "", ""
}

// accessTokenHash is the ath of a token: base64url(SHA-256(token)).
func accessTokenHash(tok string) string {
	sum := tokenKey(tok)
	return b64.EncodeToString(sum[:])
}

// parsedProof is what parseProof reads from a proof.
type parsedProof struct {
	jkt, jti, htm, htu, ath string
	iat                     float64
}

// parseProof parses a DPoP proof JWS with the token's parser (exact-case
// members, no duplicates, canonical base64url, one JSON object per part,
// no none, no crit), checks its header (typ, alg from algs, a public jwk
// that fits the alg and is strong) and its signature with that jwk, and
// reads its claims. It returns a description ("is ...") on failure.
func parseProof(raw string, algs map[string]bool, known *jwkCache) (parsedProof, string) {
	var out parsedProof
	if raw == "" {
		return out, "is empty"
	}
	if len(raw) > MaxProofBytes {
		return out, "is too large"
	}
	c, _, why := parseCompact(raw)
	if c == nil {
		return out, "is malformed: " + why
	}
	if !strings.EqualFold(c.header.Typ, "dpop+jwt") {
		return out, "has the wrong typ"
	}
	spec, ok := dpopAlgs[c.header.Alg]
	if !ok || !algs[c.header.Alg] {
		return out, "has an algorithm that is not accepted"
	}
	if c.header.JWK == nil {
		return out, "has no jwk"
	}
	pub, jkt, cached := known.get(c.header.JWK)
	if !cached {
		var why string
		if pub, jkt, why = parseProofJWK(c.header.JWK); why != "" {
			return out, why
		}
	}
	k := &Key{Public: pub}
	if !keyFits(k, spec) {
		return out, "has a jwk that does not fit its algorithm"
	}
	if !verifySignature(spec, k, c.signing, c.sig) {
		return out, "has an invalid signature"
	}
	if !cached {
		known.put(c.header.JWK, pub, jkt)
	}
	// The payload is held to decodeClaims' rules (one JSON object, no
	// member twice), then only the five members a proof needs are read,
	// by their exact names.
	if oneObject(c.payload) != nil {
		return out, "is malformed: payload is not a JSON object"
	}
	var m proofMembers
	m.read(c.payload)
	if !headerString(m["jti"], &out.jti) || out.jti == "" || len(out.jti) > MaxJTIBytes {
		return out, "has no usable jti"
	}
	if !headerString(m["htm"], &out.htm) || out.htm == "" {
		return out, "has no htm"
	}
	if !headerString(m["htu"], &out.htu) || out.htu == "" {
		return out, "has no htu"
	}
	iatRaw := m["iat"]
	if len(iatRaw) == 0 || !(iatRaw[0] == '-' || '0' <= iatRaw[0] && iatRaw[0] <= '9') {
		return out, "has no valid iat"
	}
	iat, _, okIat := claims{"iat": json.Number(iatRaw)}.numericDate("iat")
	if !okIat {
		return out, "has no valid iat"
	}
	out.iat = iat
	if !headerString(m["ath"], &out.ath) || out.ath == "" {
		return out, "has no ath"
	}
	out.jkt = jkt
	return out, ""
}

// parseProofJWK reads the proof's public key and its RFC 7638 SHA-256
// thumbprint. Members are strings in canonical base64url where they are
// numbers; a private member, an unknown kty or curve, or a weak key is
// refused.
func parseProofJWK(raw json.RawMessage) (crypto.PublicKey, string, string) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, "", "has a jwk that is not an object"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, "", "has a jwk that is not an object"
	}
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			return nil, "", "has a private key in its jwk"
		}
	}
	str := func(name string) (string, bool) {
		var s string
		return s, headerString(m[name], &s) && s != ""
	}
	num := func(name string) ([]byte, bool) {
		s, ok := str(name)
		if !ok {
			return nil, false
		}
		b, err := decodePart(s)
		return b, err == nil && len(b) > 0
	}
	kty, _ := str("kty")
	var pub crypto.PublicKey
	var members, vals []string // RFC 7638 §3.2: required members, sorted; their values
	switch kty {
	case "EC":
		crv, _ := str("crv")
		curve, size := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[crv], 0
		if curve == nil {
			return nil, "", "has a jwk with an unsupported curve"
		}
		size = (curve.Params().BitSize + 7) / 8
		x, okX := num("x")
		y, okY := num("y")
		if !okX || !okY || len(x) != size || len(y) != size {
			return nil, "", "has a jwk with bad coordinates"
		}
		pt := append(append([]byte{4}, x...), y...)
		pk, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
		if err != nil {
			return nil, "", "has a jwk whose point is not on its curve"
		}
		pub = pk
		xs, _ := str("x")
		ys, _ := str("y")
		members, vals = []string{"crv", "kty", "x", "y"}, []string{crv, kty, xs, ys}
	case "RSA":
		n, okN := num("n")
		e, okE := num("e")
		if !okN || !okE || n[0] == 0 || e[0] == 0 || len(e) > 4 {
			return nil, "", "has a jwk with bad RSA parameters"
		}
		ei := 0
		for _, c := range e {
			ei = ei<<8 | int(c)
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ei}
		es, _ := str("e")
		ns, _ := str("n")
		members, vals = []string{"e", "kty", "n"}, []string{es, kty, ns}
	case "OKP":
		if crv, _ := str("crv"); crv != "Ed25519" {
			return nil, "", "has a jwk with an unsupported curve"
		}
		x, ok := num("x")
		if !ok || len(x) != ed25519.PublicKeySize {
			return nil, "", "has a jwk with a bad public key"
		}
		pub = ed25519.PublicKey(x)
		xs, _ := str("x")
		members, vals = []string{"crv", "kty", "x"}, []string{"Ed25519", kty, xs}
	default:
		return nil, "", "has a jwk of an unsupported type"
	}
	// An EC point was checked to be on its curve as it was parsed.
	if _, isEC := pub.(*ecdsa.PublicKey); !isEC && !StrongPublicKey(pub) {
		return nil, "", "has a weak jwk"
	}
	return pub, thumbprint(members, vals), ""
}

// thumbprint is the RFC 7638 SHA-256 thumbprint, base64url: the required
// members in lexicographic order, no whitespace. vals are the members'
// values in that order, checked before to be base64url or a kty/crv name,
// so they need no JSON escaping.
func thumbprint(members, vals []string) string {
	var buf [1024]byte
	b := append(buf[:0], '{')
	for i, name := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":"`...)
		b = append(b, vals[i]...)
		b = append(b, '"')
	}
	b = append(b, '}')
	sum := sha256.Sum256(b)
	return b64.EncodeToString(sum[:])
}

// proofMembers are the raw values of a proof payload's members by name.
type proofMembers map[string][]byte

// proofClaimNames are the members a proof's payload is read for.
var proofClaimNames = [...]string{"jti", "htm", "htu", "iat", "ath"}

// read collects the top-level members of b named in proofClaimNames,
// compared byte for byte (a name written with escapes is another name
// here, and so absent: no issuer of proofs escapes these). b is one JSON
// object that oneObject accepted, so the scan needs no error handling: it
// follows strings and nesting only. It allocates for the five names at
// most, where json.Unmarshal would allocate for every member.
func (m *proofMembers) read(b []byte) {
	*m = make(proofMembers, len(proofClaimNames))
	i := skipSpace(b, 0) + 1 // past '{'
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return // '}' of an empty object
		}
		end := stringEnd(b, i)
		name := b[i+1 : end]
		i = skipSpace(b, end+1) + 1 // past ':'
		i = skipSpace(b, i)
		start := i
		i = valueEnd(b, i)
		for _, want := range proofClaimNames {
			if string(name) == want {
				(*m)[want] = b[start:i]
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i++
	}
}

// valueEnd returns the index just after the JSON value starting at b[i],
// in valid JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i) + 1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && strings.IndexByte(",}] \t\r\n", b[i]) < 0 {
		i++
	}
	return i
}

// jwkCache remembers the proof keys that verified a proof, by their JSON:
// a client signs every proof with the same key, and parsing it, checking
// its strength and hashing its thumbprint again would cost a third of a
// proof's work. Bounded: when full it starts over, so a flood of keys
// costs speed, never memory or correctness (an entry is what parsing the
// same bytes again would give).
type jwkCache struct {
	mu sync.RWMutex
	m  map[string]jwkEntry
}

type jwkEntry struct {
	pub crypto.PublicKey
	jkt string
}

const maxCachedJWKs = 1024

func (c *jwkCache) get(raw []byte) (crypto.PublicKey, string, bool) {
	if c == nil {
		return nil, "", false
	}
	c.mu.RLock()
	e, ok := c.m[string(raw)]
	c.mu.RUnlock()
	return e.pub, e.jkt, ok
}

func (c *jwkCache) put(raw []byte, pub crypto.PublicKey, jkt string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedJWKs {
		c.m = make(map[string]jwkEntry)
	}
	c.m[string(raw)] = jwkEntry{pub: pub, jkt: jkt}
	c.mu.Unlock()
}

// requestURL is the URL a proof's htu must name: scheme and host from the
// request (or from x-forwarded-proto/-host when trusted), the path as
// sent without query and fragment, normalised as normalizeHTU does.
func (a *Authorizer) requestURL(r *Request, forwarded bool) (string, bool) {
	scheme, host := r.Scheme, r.Host
	if host == "" {
		host = r.Headers[":authority"]
	}
	if forwarded {
		fp, okP := r.Headers["x-forwarded-proto"]
		fh, okH := r.Headers["x-forwarded-host"]
		if !okP || !okH || r.Repeated["x-forwarded-proto"] > 1 || r.Repeated["x-forwarded-host"] > 1 ||
			strings.IndexByte(fp, ',') >= 0 || strings.IndexByte(fh, ',') >= 0 {
			return "", false
		}
		scheme, host = strings.TrimSpace(fp), strings.TrimSpace(fh)
	}
	if scheme == "" {
		scheme = r.Headers[":scheme"]
	}
	path := r.Path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if !strings.HasPrefix(path, "/") {
		return "", false
	}
	return joinURL(scheme, host, path)
}

// normalizeHTU normalises a proof's htu (RFC 3986 §6.2.2 and §6.2.3):
// scheme and host lower-cased, the scheme's default port dropped, an empty
// path as "/", percent-encoding with upper-case hex and unreserved
// characters decoded; query and fragment dropped (RFC 9449 §4.3). Dot
// segments are not resolved: the path is compared as sent, so a proof
// for "/a/../b" does not serve "/b". Userinfo is refused.
func normalizeHTU(htu string) (string, bool) {
	u, err := url.Parse(htu)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return joinURL(u.Scheme, u.Host, path)
}

// joinURL builds the normalised form of scheme://host/path.
func joinURL(scheme, host, path string) (string, bool) {
	scheme = strings.ToLower(scheme)
	var def string
	switch scheme {
	case "https":
		def = "443"
	case "http":
		def = "80"
	default:
		return "", false
	}
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", false
		}
		name, port = host[:end+1], strings.TrimPrefix(host[end+1:], ":")
		if port == "" && len(host) > end+1 && host[end+1] != ':' {
			return "", false
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i+1:]
	}
	if !validPort(":"+port) && port != "" {
		return "", false
	}
	n, ok := readHost(name)
	if !ok || n == "" {
		return "", false
	}
	if port == def {
		port = ""
	}
	if port != "" {
		n += ":" + port
	}
	return scheme + "://" + n + normalizeEscapes(path), true
}

// normalizeEscapes upper-cases percent-encoding hex and decodes encoded
// unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2); nothing else.
func normalizeEscapes(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
