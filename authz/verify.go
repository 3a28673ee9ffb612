package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// verified is a token that passed every check of its provider: what the
// response and the rules need from it, computed once. It is what the
// token cache holds, and is immutable but for its place in the cache and
// its answers.
type verified struct {
	// cacheKey, prev, next, hit and inMain are the token's place in the
	// cache (TokenCache); the fields are ordered to pack the struct.
	cacheKey   [32]byte
	prev, next *verified
	p          *provider
	kid        string
	// key is the key that verified the token, alg (an index into
	// algNames) the token's algorithm and flagKid whether its header named
	// a kid: a cache hit is taken only while the provider's current key
	// set would pick the same key again (boundKeyHolds).
	key    *Key
	claims claims
	// scopes are the token's scopes from arrays and scp, joined with NUL;
	// when scopeInText, the fields of scope are scopes too (hasScope).
	scopes  string
	headers []Header  // claim headers to set
	remove  *[]string // configured headers not set; shared
	// subject, clientID and scope feed Metadata; provider and issuer come
	// from p. Kept apart so a cache entry stays small.
	subject, clientID, scope string
	exp                      int64 // the cache entry's end, Unix nanoseconds
	// cnf is the token's binding: the bytes of its cnf.jkt, then of its
	// cnf["x5t#S256"], as flags say (setCnf); read it with boundJKT,
	// jktIs, boundX5T and x5tIs.
	cnf string
	// answers are adapters' encoded allowed answers on this token (Answer).
	answers     answersOf
	hit         atomic.Bool
	inMain      bool
	scopeInText bool
	alg         uint8
	// flags are flagKid and the cnf bits; set by build and verifyFull,
	// immutable after (inMain, which the cache writes, is a byte apart).
	flags uint8
}

// metadata is the Envoy dynamic metadata of a decision on this token.
func (v *verified) metadata() Metadata {
	return Metadata{Issuer: v.p.Issuer, Subject: v.subject, ClientID: v.clientID, Scope: TextSafe(v.scope)}
}

// Bits of verified.flags.
const (
	flagKid    = 1 << iota // the token's header named a kid
	flagJKT                // the token has a cnf.jkt
	flagJKTRaw             // ... that is a thumbprint, its bytes in cnf
	flagX5T                // the token has a cnf["x5t#S256"]
	flagX5TRaw             // ... that is a thumbprint, its bytes in cnf
)

// thumbprintSize is the size of a SHA-256 thumbprint.
const thumbprintSize = sha256.Size

// setCnf records the token's binding; "" for a member the token lacks.
//
// A thumbprint is kept as its 32 bytes, not its 43 characters. A value
// that is not the canonical base64url of 32 bytes is kept as bound only:
// the thumbprint of a proof key or a certificate always is one, so such a
// value matches nothing presented, exactly as the value itself would.
func (v *verified) setCnf(jkt, x5t string) {
	v.cnf = ""
	v.flags &^= flagJKT | flagJKTRaw | flagX5T | flagX5TRaw
	add := func(s string, bound, raw uint8) {
		if s == "" {
			return
		}
		v.flags |= bound
		var b [thumbprintSize]byte
		if len(s) == b64.EncodedLen(thumbprintSize) {
			if n, err := b64.Decode(b[:], []byte(s)); err == nil && n == thumbprintSize {
				v.cnf += string(b[:])
				v.flags |= raw
			}
		}
	}
	add(jkt, flagJKT, flagJKTRaw)
	add(x5t, flagX5T, flagX5TRaw)
}

// boundJKT reports whether the token has a cnf.jkt.
func (v *verified) boundJKT() bool { return v.flags&flagJKT != 0 }

// boundX5T reports whether the token has a cnf["x5t#S256"].
func (v *verified) boundX5T() bool { return v.flags&flagX5T != 0 }

// jktIs reports whether the token's cnf.jkt is the thumbprint t
// (base64url); it does not allocate.
func (v *verified) jktIs(t string) bool {
	return v.flags&flagJKTRaw != 0 && thumbprintIs(v.cnf[:thumbprintSize], t)
}

// x5tIs reports whether the token's cnf["x5t#S256"] is the thumbprint t
// (base64url); it does not allocate.
func (v *verified) x5tIs(t string) bool {
	return v.flags&flagX5TRaw != 0 && thumbprintIs(v.cnf[len(v.cnf)-thumbprintSize:], t)
}

func thumbprintIs(raw, t string) bool {
	var enc [43]byte // b64.EncodedLen(thumbprintSize)
	if len(t) != len(enc) {
		return false
	}
	b64.Encode(enc[:], unsafe.Slice(unsafe.StringData(raw), len(raw)))
	return string(enc[:]) == t
}

// algNames are the algorithms verified, in order: a verified token keeps
// its algorithm as an index here (a byte, not a string).
var algNames = slices.Sorted(maps.Keys(algs))

func algIndex(alg string) uint8 { return uint8(slices.Index(algNames, alg)) }

// verify checks a token. It returns the verified token, or nil and a
// denial. The order of checks is deliberate: nothing the payload says
// beyond iss (which only picks the provider and so the keys) is believed
// before the signature is checked, so a forged token is always
// invalid_signature, never expired.
//
// cached reports a cache hit: the token was verified before.
func (a *Authorizer) verify(ctx context.Context, tok string) (v *verified, d Decision, cached bool) {
	var key [32]byte
	if a.cache != nil {
		key = tokenKey(tok)
		if v := a.cache.get(key, a.now()); v != nil {
			if boundKeyHolds(ctx, v) {
				return v, Decision{}, true
			}
			// The key that verified it was removed or replaced: the
			// entry is no longer what a full verification would say.
			a.cache.drop(key)
		}
	}
	v, d = a.verifyFull(ctx, tok)
	if v != nil && a.cache != nil {
		a.cache.put(key, v)
	}
	return v, d, false
}

// boundKeyHolds reports whether the provider's current key set still holds
// the key that verified v, found the way verifyFull would find it (by the
// token's kid, or as the first usable key that fits), so that a cache hit
// is never looser than a miss: a key removed, or replaced under the same
// kid, stops verifying its cached tokens at once. It does not allocate.
func boundKeyHolds(ctx context.Context, v *verified) bool {
	if v.flags&flagKid != 0 {
		k, err := v.p.Keys.Key(ctx, v.kid)
		return err == nil && sameKey(k, v.key) && keyFits(k, algNames[v.alg])
	}
	keys, err := v.p.Keys.Keys(ctx)
	if err != nil {
		return false
	}
	for _, k := range keys {
		if keyFits(k, algNames[v.alg]) && sameKey(k, v.key) {
			// A key of other material before it cannot verify the
			// signature; the same material under another kid first
			// would change the decision's kid.
			return k.ID == v.kid
		}
	}
	return false
}

func deny(r Reason, desc string) (*verified, Decision) {
	return nil, Decision{Reason: r, Description: desc}
}

func (a *Authorizer) verifyFull(ctx context.Context, tok string) (*verified, Decision) {
	c, r, why := parseCompact(tok)
	if c == nil {
		if r == ReasonMalformedToken {
			why = "the token is malformed: " + why
		}
		return deny(r, why)
	}
	alg := c.header.Alg
	cl, ok := decodeClaims(c.payload)
	if !ok {
		return deny(ReasonMalformedToken, "the token is malformed: payload is not a JSON object")
	}
	iss, isStr := cl["iss"].(string)
	if !isStr || iss == "" {
		return deny(ReasonUnknownIssuer, "the token has no issuer")
	}
	p := a.byIssuer[iss]
	if p == nil {
		return deny(ReasonUnknownIssuer, "the token's issuer is not accepted")
	}
	fail := func(r Reason, desc string) (*verified, Decision) {
		v, d := deny(r, desc)
		d.Provider = p.Name
		if c.header.Kid != nil {
			d.KeyID = *c.header.Kid
		}
		return v, d
	}
	if !p.algs[alg] {
		return fail(ReasonDisallowedAlgorithm, "the token's algorithm is not accepted")
	}

	kid := ""
	var used *Key
	if c.header.Kid != nil {
		kid = *c.header.Kid
		k, err := p.Keys.Key(ctx, kid)
		if r, desc := keyError(err); r != "" {
			return fail(r, desc)
		}
		if !keyFits(k, alg) {
			return fail(ReasonUnknownKey, "no usable key matches the token's key id")
		}
		if !verifySignature(alg, k, c.signing, c.sig) {
			return fail(ReasonInvalidSignature, "the token's signature is invalid")
		}
		used = k
	} else {
		keys, err := p.Keys.Keys(ctx)
		if r, desc := keyError(err); r != "" {
			return fail(r, desc)
		}
		for _, k := range keys {
			if keyFits(k, alg) && verifySignature(alg, k, c.signing, c.sig) {
				used, kid = k, k.ID
				break
			}
		}
		if used == nil {
			return fail(ReasonInvalidSignature, "the token's signature is invalid")
		}
	}

	if p.TokenType != "" && !typeMatches(c.header.Typ, p.TokenType) {
		return fail(ReasonInvalidType, "the token's type is not accepted")
	}
	now := a.now()
	skew := p.ClockSkew
	exp, hasExp, okExp := cl.numericDate("exp")
	nbf, hasNbf, okNbf := cl.numericDate("nbf")
	iat, hasIat, okIat := cl.numericDate("iat")
	if !okExp || !okNbf || !okIat {
		return fail(ReasonMalformedToken, "the token is malformed: a time claim is not a valid date")
	}
	if !hasExp {
		return fail(ReasonMissingClaim, "the token has no expiry")
	}
	expT := unixTime(exp)
	if !now.Before(expT.Add(skew)) {
		return fail(ReasonExpired, "the token has expired")
	}
	if hasNbf && now.Add(skew).Before(unixTime(nbf)) {
		return fail(ReasonNotYetValid, "the token is not valid yet")
	}
	if hasIat && now.Add(skew).Before(unixTime(iat)) {
		return fail(ReasonNotYetValid, "the token was issued in the future")
	}
	if len(p.Audiences) > 0 && !audienceOK(cl.audiences(), p.Audiences) {
		return fail(ReasonInvalidAudience, "the token's audience is not accepted")
	}
	if p.MaxLifetime > 0 {
		if !hasIat {
			return fail(ReasonMissingClaim, "the token has no issue time")
		}
		// In float seconds: exp and iat are below 2.6e11, so neither the
		// difference nor the bound can overflow (a Duration would).
		if exp-iat > p.MaxLifetime.Seconds() {
			return fail(ReasonTokenTooOld, "the token's lifetime is longer than accepted")
		}
	}
	for _, name := range p.RequiredClaims {
		if _, ok := cl.lookup(name, false); !ok {
			return fail(ReasonMissingClaim, "the token lacks the claim "+quoteName(name))
		}
	}
	v := a.build(p, used, kid, cl, c.rawPayload, expT)
	v.alg = algIndex(alg)
	if c.header.Kid != nil {
		v.flags |= flagKid
	}
	return v, Decision{}
}

// keyError maps a KeySource error to a reason; "" for none.
func keyError(err error) (Reason, string) {
	switch {
	case err == nil:
		return "", ""
	case errors.Is(err, ErrNoKeys):
		return ReasonKeysUnavailable, "the issuer's keys are not available yet"
	case errors.Is(err, ErrUnknownKey):
		return ReasonUnknownKey, "no usable key matches the token's key id"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Fail closed when the caller gave up waiting for a refetch.
		return ReasonUnknownKey, "no usable key matches the token's key id"
	}
	return ReasonInternalError, "the key set could not be read"
}

func typeMatches(typ, want string) bool {
	typ = strings.ToLower(typ)
	want = strings.ToLower(want)
	return typ == want || strings.TrimPrefix(typ, "application/") == strings.TrimPrefix(want, "application/")
}

func audienceOK(have, want []string) bool {
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
}

func unixTime(f float64) time.Time {
	if f > math.MaxInt64/2 {
		return time.Unix(math.MaxInt64/2, 0)
	}
	if f < math.MinInt64/2 {
		return time.Unix(math.MinInt64/2, 0)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// build precomputes everything a response needs from a verified token,
// and keeps only the claims the rules read.
func (a *Authorizer) build(p *provider, used *Key, kid string, cl claims, rawPayload string, exp time.Time) *verified {
	if used != nil && used.ID == kid {
		kid = used.ID // shared with the key, which the token keeps anyway
	}
	v := &verified{p: p, key: used, kid: kid, exp: exp.UnixNano()}
	v.scopes, v.scopeInText = cl.scopes()
	var hdrs [8]Header // collected here, kept at their exact size
	v.headers = hdrs[:0]
	var set [64]bool // by index into allHeaders; more headers fall back to a map
	var setMore map[string]bool
	mark := func(h string) bool {
		for i, e := range a.allHeaders {
			if e == h {
				if i < len(set) {
					if set[i] {
						return false
					}
					set[i] = true
					return true
				}
				break
			}
		}
		if setMore == nil {
			setMore = map[string]bool{}
		}
		if setMore[h] {
			return false
		}
		setMore[h] = true
		return true
	}
	isSet := func(i int, h string) bool {
		if i < len(set) {
			return set[i]
		}
		return setMore[h]
	}
	for _, ch := range p.ClaimHeaders {
		val, ok := cl.lookup(ch.Claim, ch.Nested)
		if !ok {
			continue
		}
		text, ok := claimText(val)
		if !ok || !headerSafe(text) || !mark(ch.Header) {
			continue
		}
		v.headers = append(v.headers, Header{Name: ch.Header, Value: text})
	}
	if h := p.PayloadHeader; h != "" && len(rawPayload) <= MaxHeaderValueBytes && mark(h) {
		// A copy: rawPayload points into the request's token string.
		v.headers = append(v.headers, Header{Name: h, Value: strings.Clone(rawPayload)})
	}
	v.headers = slices.Clone(v.headers)
	var key strings.Builder
	for i, h := range a.allHeaders {
		if isSet(i, h) {
			key.WriteByte('1')
		} else {
			key.WriteByte('0')
		}
	}
	if l, ok := a.removeLists.Load(key.String()); ok {
		v.remove = l.(*[]string)
	} else {
		var remove []string
		for i, h := range a.allHeaders {
			if !isSet(i, h) {
				remove = append(remove, h)
			}
		}
		v.remove = &remove
		a.removeLists.Store(key.String(), v.remove)
	}
	if len(a.ruleClaims) > 0 {
		v.claims = make(claims, len(a.ruleClaims))
		for name := range a.ruleClaims {
			if val, ok := cl[name]; ok {
				v.claims[name] = val
			}
		}
	}
	clientID := cl.str("azp")
	if clientID == "" {
		clientID = cl.str("client_id")
	}
	scope, _ := claimText(cl["scope"])
	if _, isArr := cl["scope"].([]any); isArr {
		scope = strings.ReplaceAll(scope, ",", " ")
	}
	// subject and client_id are sanitised once here, not on every Check:
	// they come from the token and only go to Envoy's metadata and text
	// access logs (TextSafe). scope is also matched against rules, so it
	// stays as sent and metadata sanitises it.
	v.subject, v.clientID, v.scope = TextSafe(cl.str("sub")), TextSafe(clientID), scope
	if cnf, ok := cl["cnf"].(map[string]any); ok {
		jkt, _ := cnf["jkt"].(string)
		x5t, _ := cnf["x5t#S256"].(string)
		v.setCnf(jkt, x5t)
	}
	v.pack()
	return v
}

// pack copies the strings a verified token keeps into one allocation:
// a cached token holds one block of text instead of a dozen small ones,
// each rounded up to its size class (TestCachedTokenFootprint). Strings
// that are the same string (a claim header carrying sub) stay shared.
func (v *verified) pack() {
	var buf [24]*string
	fields := append(buf[:0], &v.scopes, &v.subject, &v.clientID, &v.scope, &v.cnf)
	if v.key == nil || !sameString(v.kid, v.key.ID) {
		fields = append(fields, &v.kid)
	}
	for i := range v.headers {
		fields = append(fields, &v.headers[i].Value)
	}
	total := 0
	for i, f := range fields {
		if !sharedEarlier(fields[:i], *f) {
			total += len(*f)
		}
	}
	if total == 0 {
		return
	}
	block := make([]byte, 0, total)
	old := make([]string, len(fields))
	for i, f := range fields {
		old[i] = *f
		if j := indexSame(old[:i], *f); j >= 0 {
			*f = *fields[j]
			continue
		}
		start := len(block)
		block = append(block, *f...)
		*f = unsafe.String(unsafe.SliceData(block[start:]), len(*f))
	}
}

// sharedEarlier reports whether s is the same string (same bytes in
// memory) as one of fields.
func sharedEarlier(fields []*string, s string) bool {
	for _, f := range fields {
		if sameString(*f, s) {
			return true
		}
	}
	return false
}

func indexSame(list []string, s string) int {
	for i, e := range list {
		if sameString(e, s) {
			return i
		}
	}
	return -1
}

func sameString(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b))
}
