// Package authz owns the authorization decision: finding the bearer token
// in a request, verifying it against its provider's keys, applying the
// matching rule's requirements, and producing a Decision with one Reason
// from a closed set.
//
// It knows nothing of gRPC, Envoy or HTTP servers: adapters translate their
// input into a Request and render the Decision. Keys come through the
// KeySource interface (implemented by package jwks).
//
// Concurrency: an Authorizer is immutable after New and safe for concurrent
// use; a config reload builds a new one. The only shared mutable state on
// the Check path is the verified-token cache, which is internally locked,
// and the metrics.
package authz

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Provider describes one token issuer.
type Provider struct {
	// Name matches ProviderNamePattern; a metric label.
	Name string
	// Issuer is compared byte for byte with iss.
	Issuer string
	// Audiences: aud must contain one of them. Empty: aud is not checked.
	Audiences []string
	// Algorithms is the allowlist; empty means [DefaultAlgorithm] (see
	// Algorithms).
	Algorithms []string
	// Keys verifies the provider's tokens; nothing else does.
	Keys KeySource
	// ClockSkew is the leeway for exp, nbf and iat.
	ClockSkew time.Duration
	// MaxLifetime, when > 0, bounds exp - iat.
	MaxLifetime time.Duration
	// RequiredClaims must be present.
	RequiredClaims []string
	// TokenType, when set, is required in the typ header (case-insensitive;
	// "at+jwt" also accepts "application/at+jwt").
	TokenType string
	// Sources lists where the provider's tokens may be; empty means
	// DefaultSources.
	Sources []TokenSource
	// ClaimHeaders copy verified claims to upstream headers.
	ClaimHeaders []ClaimHeader
	// PayloadHeader, when set, carries the base64url payload upstream.
	PayloadHeader string
	// DropToken removes the token from the upstream request (the config's
	// forward_token: false). The zero value forwards it.
	DropToken bool
	// DPoP checks DPoP-bound tokens (RFC 9449); the zero value disables
	// the DPoP scheme.
	DPoP DPoPOptions
	// MTLS checks certificate-bound tokens (RFC 8705); the zero value
	// disables it.
	MTLS MTLSOptions
}

// ClaimHeader copies a claim to a header.
type ClaimHeader struct {
	Claim  string
	Header string // lower-case
	Nested bool
}

// Options configures an Authorizer. The zero value of each field is
// documented; Providers must not be empty.
type Options struct {
	// Realm of WWW-Authenticate challenges; "" means "jwt-authz".
	Realm     string
	Providers []Provider
	// Rules in order; none means one rule requiring a valid token.
	Rules []Rule
	// DefaultAllow: when no rule matches, allow instead of 403.
	DefaultAllow bool
	DenyBody     BodyFormat
	// Paths says how request paths are read; the zero value refuses ";"
	// parameters and matches case-sensitively.
	Paths PathOptions
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics records checks; nil records nothing.
	Metrics *Metrics
	// Logger receives the decision log; nil logs nothing.
	Logger *slog.Logger
	// DecisionLevel is the level of the per-decision log line.
	DecisionLevel slog.Level
	// TokenCacheEntries bounds the verified-token cache; 0 disables it.
	TokenCacheEntries int
	// CacheMetrics records cache lookups; nil records nothing.
	CacheMetrics *CacheMetrics
}

// Authorizer decides Check requests. Build it with New.
type Authorizer struct {
	realm        string
	providers    []*provider
	byIssuer     map[string]*provider
	byName       map[string]*provider
	rules        []*rule
	ruleByName   map[string]*rule
	defaultAllow bool
	body         BodyFormat
	paths        PathOptions
	now          func() time.Time
	metrics      *Metrics
	log          *slog.Logger
	level        slog.Level
	sources      []TokenSource // union of every provider's sources
	allHeaders   []string      // every configured claim/payload header
	cache        *TokenCache
	// ruleClaims are the top-level claim names some rule reads: the only
	// claims a verified token keeps (the cache holds what the response
	// and the rules need, not the whole payload).
	ruleClaims map[string]bool
	// removeLists interns headers_to_remove lists by the set of headers a
	// token sets, so cached tokens share them.
	removeLists sync.Map // string -> *[]string
	// dpopSource is the index of the "Authorization: DPoP" source in
	// sources, -1 when no provider accepts DPoP; dpopAlgs the union of
	// the proof algorithms of the providers that do (for the challenge
	// of a request without a token).
	dpopSource int
	dpopAlgs   string
	// headersRead are the request headers some check reads.
	headersRead []string
	// proofKeys are DPoP proof keys already parsed.
	proofKeys jwkCache
}

type provider struct {
	Provider
	algs    map[string]bool
	sources []int // indexes into Authorizer.sources
	// dpopAlgs are the accepted proof algorithms, dpopAlgList the same
	// for the challenge.
	dpopAlgs    map[string]bool
	dpopAlgList string
}

// DefaultRealm is the realm of challenges when Options.Realm is empty.
const DefaultRealm = "jwt-authz"

// ProviderNamePattern is what a provider name must match: it is a metric
// label value.
const ProviderNamePattern = "[a-z0-9_-]{1,32}"

var namePattern = regexp.MustCompile("^" + ProviderNamePattern + "$")

// ValidProviderName reports whether name matches ProviderNamePattern.
func ValidProviderName(name string) bool { return namePattern.MatchString(name) }

// DefaultAlgorithm is the allowlist of a Provider that names none: what an
// Auth0 API signs with by default.
const DefaultAlgorithm = "RS256"

// Algorithms is the allowlist in force for a Provider's Algorithms: list,
// or [DefaultAlgorithm] when it is empty. A key source that filters keys by
// algorithm uses the same list.
func Algorithms(list []string) []string {
	if len(list) == 0 {
		return []string{DefaultAlgorithm}
	}
	return list
}

// New builds an Authorizer. It fails on options that cannot work (the config
// package validates user input with field paths before this).
func New(o Options) (*Authorizer, error) {
	if len(o.Providers) == 0 {
		return nil, errors.New("authz: no providers")
	}
	a := &Authorizer{
		realm:        o.Realm,
		byIssuer:     map[string]*provider{},
		byName:       map[string]*provider{},
		ruleByName:   map[string]*rule{},
		defaultAllow: o.DefaultAllow,
		body:         o.DenyBody,
		paths:        o.Paths,
		now:          o.Now,
		metrics:      o.Metrics,
		log:          o.Logger,
		level:        o.DecisionLevel,
		dpopSource:   -1,
	}
	if a.realm == "" {
		a.realm = DefaultRealm
	}
	if a.now == nil {
		a.now = time.Now
	}
	seenHeader := map[string]bool{}
	for _, p := range o.Providers {
		if !ValidProviderName(p.Name) {
			return nil, fmt.Errorf("authz: provider name %q", p.Name)
		}
		if a.byName[p.Name] != nil || a.byIssuer[p.Issuer] != nil {
			return nil, fmt.Errorf("authz: provider %q: duplicate name or issuer", p.Name)
		}
		if p.Keys == nil {
			return nil, fmt.Errorf("authz: provider %q: no key source", p.Name)
		}
		p.ClaimHeaders = append([]ClaimHeader(nil), p.ClaimHeaders...)
		for i := range p.ClaimHeaders {
			p.ClaimHeaders[i].Header = strings.ToLower(p.ClaimHeaders[i].Header)
		}
		p.PayloadHeader = strings.ToLower(p.PayloadHeader)
		pp := &provider{Provider: p, algs: map[string]bool{}}
		for _, alg := range Algorithms(p.Algorithms) {
			if !SupportedAlgorithm(alg) {
				return nil, fmt.Errorf("authz: provider %q: algorithm %q not supported", p.Name, alg)
			}
			pp.algs[alg] = true
		}
		srcs := p.Sources
		if len(srcs) == 0 {
			srcs = DefaultSources
		}
		for _, s := range srcs {
			pp.sources = append(pp.sources, a.addSource(s))
		}
		if err := a.addSenderChecks(pp); err != nil {
			return nil, err
		}
		for _, ch := range p.ClaimHeaders {
			h := ch.Header // lower-cased above
			if !seenHeader[h] {
				seenHeader[h] = true
				a.allHeaders = append(a.allHeaders, h)
			}
		}
		if h := p.PayloadHeader; h != "" && !seenHeader[h] {
			seenHeader[h] = true
			a.allHeaders = append(a.allHeaders, h)
		}
		a.providers = append(a.providers, pp)
		a.byName[p.Name] = pp
		a.byIssuer[p.Issuer] = pp
	}
	rules := o.Rules
	if len(rules) == 0 {
		rules = []Rule{{Name: "default"}}
	}
	a.ruleClaims = map[string]bool{}
	for _, r := range rules {
		for _, cr := range r.Require.Claims {
			name := cr.Name
			if cr.Nested {
				name, _, _ = strings.Cut(name, ".")
			}
			a.ruleClaims[name] = true
		}
		c, err := compileRule(r, o.Paths.CaseInsensitive)
		if err != nil {
			return nil, fmt.Errorf("authz: %w", err)
		}
		for _, pn := range r.Require.Providers {
			if a.byName[pn] == nil {
				return nil, fmt.Errorf("authz: rule %q: unknown provider %q", r.Name, pn)
			}
		}
		a.rules = append(a.rules, c)
		if r.Name != "" {
			a.ruleByName[r.Name] = c
		}
	}
	if o.TokenCacheEntries > 0 {
		a.cache = NewTokenCache(o.TokenCacheEntries, o.CacheMetrics)
	}
	names := make([]string, 0, len(a.providers))
	for _, p := range a.providers {
		names = append(names, p.Name)
	}
	a.metrics.initSeries(names)
	a.headersRead = a.computeHeadersRead()
	return a, nil
}

func (a *Authorizer) addSource(s TokenSource) int {
	s.Header = strings.ToLower(s.Header)
	for i, e := range a.sources {
		if e.same(s) {
			return i
		}
	}
	a.sources = append(a.sources, s)
	return len(a.sources) - 1
}

// KeysRemoved drops the cached verifications of provider's tokens signed by
// one of kids: a key removed from the provider's set stops verifying at
// once. Current.KeysRemoved calls it on the Authorizer in force.
func (a *Authorizer) KeysRemoved(provider string, kids []string) {
	if a.cache != nil {
		a.cache.DropKeys(provider, kids)
	}
}

// Check decides one request. It never returns an error: a request that
// cannot be decided is denied with internal_error or keys_unavailable.
func (a *Authorizer) Check(ctx context.Context, r *Request) Decision {
	start := time.Now()
	d := a.decide(ctx, r)
	a.Observe(ctx, &d, time.Since(start))
	return d
}

// Observe counts and logs a decision. Adapters call it for decisions they
// make themselves (a recovered panic); Check calls it for its own.
func (a *Authorizer) Observe(ctx context.Context, d *Decision, took time.Duration) {
	a.metrics.observe(d, took)
	if a.log != nil && a.log.Enabled(ctx, a.level) {
		a.log.LogAttrs(ctx, a.level, "check",
			slog.String("decision", d.DecisionLabel()),
			slog.String("reason", string(d.Reason)),
			slog.String("would_reason", string(d.WouldReason)),
			slog.Int("status", d.Status),
			slog.String("provider", d.Provider),
			slog.String("rule", d.Rule),
			slog.String("subject", TextSafe(d.Metadata.Subject)),
			slog.String("client_id", TextSafe(d.Metadata.ClientID)),
			slog.String("kid", TextSafe(d.KeyID)),
			slog.String("description", TextSafe(d.Description)),
			slog.Float64("latency_ms", float64(took.Microseconds())/1000),
		)
	}
}

// Deny builds a finished denial with a reason and description, as Check
// would render it. Adapters use it for internal_error.
func (a *Authorizer) Deny(reason Reason, description string) Decision {
	d := Decision{Reason: reason, Description: description}
	d.finishDeny(a.realm, a.body)
	return d
}

func (a *Authorizer) decide(ctx context.Context, r *Request) Decision {
	method := strings.ToUpper(r.Method)
	var path string
	if method == "OPTIONS" && r.Path == "*" {
		path = "*" // the one request-target that is not a path (RFC 9110 §9.3.7)
	} else {
		p, why := readPath(r.Path, a.paths)
		if why != "" {
			return a.finish(Decision{Reason: ReasonBadRequest, Description: why})
		}
		path = p
	}
	if a.paths.CaseInsensitive {
		path = strings.ToLower(path)
	}
	host := r.Host
	if host == "" {
		host = r.Headers[":authority"]
	}
	host, ok := readHost(host)
	if !ok {
		return a.finish(Decision{Reason: ReasonBadRequest, Description: "the request host cannot be read"})
	}

	rl, req, deny := a.selectRule(r, path, method, host)
	if deny != nil {
		return a.finish(*deny)
	}
	d, v, from := a.decideWith(ctx, r, rl, req, method)
	if rl != nil {
		d.Rule = rl.Name
		if rl.DryRun {
			d = a.dryRun(d, v, from, r)
		}
	}
	return a.finish(d)
}

// effective is a rule's requirement tightened by context_extensions.
type effective struct {
	Requirement
	anonymous       bool
	providersNarrow bool // Providers restricts (possibly to nothing)
	// contextNeedsToken: context_extensions ask for something only a token
	// can give (scopes, providers, allow_anonymous other than "true"), so
	// a request without one is missing_token whatever rule or default
	// matched. Without it, sending no token would do better than sending
	// one that lacks the scope.
	contextNeedsToken bool
	// noPreflight: allow_anonymous other than "true" also turns off CORS
	// preflight pass-through.
	noPreflight bool
}

// selectRule finds the rule for the request: the one context_extensions
// names, else the first that matches. It returns a denial when the context
// names an unknown rule.
func (a *Authorizer) selectRule(r *Request, path, method, host string) (*rule, effective, *Decision) {
	var rl *rule
	if name, ok := r.Context["rule"]; ok {
		rl = a.ruleByName[name]
		if rl == nil {
			return nil, effective{}, &Decision{Reason: ReasonNoMatchingRule,
				Description: "the route names a rule that is not configured"}
		}
	} else {
		for _, c := range a.rules {
			if c.matches(path, method, host) {
				rl = c
				break
			}
		}
	}
	var eff effective
	if rl != nil {
		eff.Requirement = rl.Require
		eff.anonymous = rl.AllowAnonymous
		eff.providersNarrow = len(rl.Require.Providers) > 0
	}
	// context_extensions tighten; they never widen (README, "Wiring Envoy").
	if s := strings.Fields(r.Context["scopes"]); len(s) > 0 {
		eff.Scopes = append(append([]string(nil), eff.Scopes...), s...)
		eff.contextNeedsToken = true
	}
	if s, ok := r.Context["providers"]; ok {
		var list []string
		for p := range strings.SplitSeq(s, ",") {
			p = strings.TrimSpace(p)
			if p == "" || (eff.providersNarrow && !slices.Contains(eff.Providers, p)) {
				continue
			}
			list = append(list, p)
		}
		eff.Providers = list
		eff.providersNarrow = true
		eff.contextNeedsToken = true
	}
	if strings.EqualFold(r.Context["sender_constrained"], "true") {
		// "false" cannot take away what the rule asks.
		eff.SenderConstrained = true
		eff.contextNeedsToken = true
	}
	if v, ok := r.Context["allow_anonymous"]; ok && !strings.EqualFold(v, "true") {
		// "false" takes anonymity away; "true" cannot grant what the rule
		// does not.
		eff.anonymous = false
		eff.contextNeedsToken = true
		eff.noPreflight = true
	}
	return rl, eff, nil
}

func (a *Authorizer) decideWith(ctx context.Context, r *Request, rl *rule, req effective, method string) (Decision, *verified, found) {
	if rl != nil && rl.AllowCORSPreflight && !req.noPreflight && isPreflight(r, method) {
		return a.anonymous("CORS preflight"), nil, found{}
	}
	f, st, why := extract(r, a.sources)
	switch st {
	case extractMalformed:
		d := Decision{Reason: ReasonMalformedToken, Description: "the token is malformed: " + why}
		if a.dpopSource >= 0 && f.source == a.dpopSource {
			d.dpopAlgs = a.dpopAlgs
		}
		return d, nil, found{}
	case extractNone:
		switch {
		case rl == nil && !a.defaultAllow:
			return Decision{Reason: ReasonNoMatchingRule, Description: "no rule matches the request"}, nil, found{}
		case req.contextNeedsToken:
			// Checked before the rule's anonymity and the default allow.
		case rl == nil || req.anonymous:
			return a.anonymous(""), nil, found{}
		}
		return Decision{Reason: ReasonMissingToken, Description: "a bearer token is required", alsoDPoP: a.dpopAlgs}, nil, found{}
	}

	isDPoP := a.dpopSource >= 0 && f.source == a.dpopSource
	v, d, cached := a.verify(ctx, f.token)
	if v == nil {
		if isDPoP {
			d.dpopAlgs = a.dpopAlgs
			if p := a.byName[d.Provider]; p != nil && p.dpopAlgList != "" {
				d.dpopAlgs = p.dpopAlgList
			}
		}
		return d, nil, found{}
	}
	d = Decision{Provider: v.p.Name, KeyID: v.kid, Metadata: v.metadata()}
	if isDPoP {
		d.dpopAlgs = v.p.dpopAlgList
		if d.dpopAlgs == "" {
			d.dpopAlgs = a.dpopAlgs
		}
	}
	if !slices.Contains(v.p.sources, f.source) {
		d.Reason, d.Description = ReasonMalformedToken, "the token was sent where its issuer's tokens are not accepted"
		return d, nil, found{}
	}
	if !a.checkSender(ctx, &d, r, v, f, isDPoP, req.SenderConstrained) {
		return d, nil, found{}
	}
	// From here the token itself is valid: a dry-run rule forwards its
	// claims whatever the requirements say.
	// From here on v is returned with every decision, so that a dry-run
	// rule can forward the claims of a valid token it would refuse.
	if rl == nil && !a.defaultAllow {
		d.Reason, d.Description = ReasonNoMatchingRule, "no rule matches the request"
		return d, v, f
	}
	if req.providersNarrow && !slices.Contains(req.Providers, v.p.Name) {
		d.Reason, d.Description = ReasonUnknownIssuer, "the token's issuer is not accepted on this route"
		return d, v, f
	}
	if missing := missingScopes(v, req.Scopes); len(missing) > 0 {
		d.Reason, d.Description, d.MissingScopes = ReasonInsufficientScope, "the token lacks a required scope", missing
		return d, v, f
	}
	if len(req.AnyScopes) > 0 && len(missingScopes(v, req.AnyScopes)) == len(req.AnyScopes) {
		d.Reason, d.Description, d.MissingScopes = ReasonInsufficientScope, "the token has none of the accepted scopes", req.AnyScopes
		return d, v, f
	}
	if rl != nil {
		for _, cr := range rl.claims {
			val, ok := v.claims.lookup(cr.Name, cr.Nested)
			if !ok || (len(cr.Values) > 0 && !cr.values.matches(val)) {
				d.Reason, d.Description = ReasonClaimMismatch, "the token's claim "+quoteName(cr.Name)+" does not meet the rule"
				return d, v, f
			}
		}
	}
	d.Allow, d.Reason = true, ReasonOK
	a.applyToken(&d, v, r, f)
	if cached && !(v.p.DropToken && a.sources[f.source].Cookie != "") {
		// The rendering depends on the token, the rule and the source
		// only (a rewritten cookie depends on the request).
		d.Answer = Answer{v: v, rule: rl, src: f.source}
	}
	return d, v, f
}

// isPreflight reports whether r is a CORS preflight (Fetch standard):
// OPTIONS with an Origin and an access-control-request-method that is a
// method token.
func isPreflight(r *Request, method string) bool {
	if method != "OPTIONS" || r.Headers["origin"] == "" {
		return false
	}
	m := r.Headers["access-control-request-method"]
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !isTchar(m[i]) {
			return false
		}
	}
	return true
}

// isTchar reports whether c may occur in an RFC 9110 token.
func isTchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// quoteName renders a configured claim name for a description.
func quoteName(s string) string { return "'" + s + "'" }

func missingScopes(v *verified, want []string) []string {
	var missing []string
	for _, w := range want {
		if !v.hasScope(w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// anonymous allows a request without a token, removing every configured
// claim header so the client cannot supply its own.
func (a *Authorizer) anonymous(desc string) Decision {
	return Decision{Allow: true, Reason: ReasonAnonymous, Description: desc, RemoveHeaders: a.allHeaders}
}

// applyToken adds the verified token's headers, and removes the token
// itself upstream when its provider says so.
func (a *Authorizer) applyToken(d *Decision, v *verified, r *Request, f found) {
	d.Headers = v.headers
	d.RemoveHeaders = *v.remove
	if !v.p.DropToken {
		return
	}
	src := a.sources[f.source]
	switch {
	case src.Header != "":
		d.RemoveHeaders = append(append([]string(nil), d.RemoveHeaders...), src.Header)
	case src.Query != "":
		d.RemoveQuery = []string{src.Query}
	case src.Cookie != "":
		rest, left := cookieWithout(r.Headers["cookie"], src.Cookie)
		if left {
			d.Headers = append(append([]Header(nil), d.Headers...), Header{Name: "cookie", Value: rest})
		} else {
			d.RemoveHeaders = append(append([]string(nil), d.RemoveHeaders...), "cookie")
		}
	}
}

// dryRun turns any decision under a dry-run rule into an allow with
// reason dry_run (docs/reference.md, rules[].dry_run) that records, for the log, the reason the
// rule would have given. Claim headers are set only when the token itself
// was valid.
func (a *Authorizer) dryRun(d Decision, v *verified, from found, r *Request) Decision {
	if !d.Allow {
		// Nothing of a denial reaches the upstream but, for a valid token
		// the rule would refuse, its claims (and forward_token: false
		// still keeps the token from the upstream); an allow keeps what
		// it carried.
		d.Headers, d.RemoveHeaders, d.RemoveQuery = nil, a.allHeaders, nil
		if v != nil {
			a.applyToken(&d, v, r, from)
		}
	}
	d.Allow, d.Reason, d.WouldReason = true, ReasonDryRun, d.Reason
	d.MissingScopes, d.Answer = nil, Answer{} // a dry-run answer is never stored
	return d
}

// finish renders a denial; allowed decisions get their status.
func (a *Authorizer) finish(d Decision) Decision {
	// Metadata needs no sanitising here: its token-derived fields are
	// sanitised where they are made (verified.metadata), the rest come from
	// the config or are thumbprints.
	d.KeyID = TextSafe(d.KeyID)
	if d.Allow {
		d.Status = 200
		return d
	}
	d.Headers, d.RemoveHeaders, d.RemoveQuery, d.Answer = nil, nil, nil, Answer{}
	d.finishDeny(a.realm, a.body)
	return d
}

// tokenKey is the cache key of a token: its SHA-256. The token's bytes are
// hashed in place: []byte(tok) would copy the ~1 KiB token to the heap on
// every Check (the one sizeable allocation of a cache hit), and Sum256
// neither keeps nor modifies its input.
func tokenKey(tok string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
}

// Metrics returns the decision metrics the authorizer records to.
func (a *Authorizer) Metrics() *Metrics { return a.metrics }
