package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/httpauthz"
	"github.com/jwtauthz/jwt-authz/jwks"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

var (
	providerName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	// headerName is an RFC 9110 token, lower-case as Envoy sends them.
	headerName = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)
	methodName = regexp.MustCompile(`^[A-Za-z]+$`)
)

// headers a claim header may never be: they decide routing or identity
// for Envoy itself, or carry the token.
var reservedHeaders = map[string]bool{
	"host": true, "authorization": true, "cookie": true, "content-length": true,
	"transfer-encoding": true, "connection": true, "te": true, "upgrade": true,
	"dpop": true, "x-forwarded-client-cert": true, // proofs of possession
}

// Validate checks a decoded config and returns every problem joined, each
// prefixed with its field path.
func Validate(c *configv1.Config) error {
	var e fieldErrors
	validate(&e, c)
	return e.join()
}

func validate(e *fieldErrors, c *configv1.Config) {
	validateListen(e, c.GetListen())
	positive(e, "shutdown_grace", c.GetShutdownGrace(), true)
	positive(e, "lameduck", c.GetLameduck(), true)
	if strings.ContainsAny(c.GetRealm(), "\"\\\r\n") {
		e.add("realm", "must not contain quotes, backslashes or line breaks")
	}
	if len(c.GetProviders()) == 0 {
		e.add("providers", "at least one provider is required")
	}
	names := map[string]int{}
	issuers := map[string]int{}
	for i, p := range c.GetProviders() {
		path := fmt.Sprintf("providers[%d]", i)
		validateProvider(e, path, p)
		if j, dup := names[p.GetName()]; dup && p.GetName() != "" {
			e.add(path+".name", "%q is also the name of providers[%d]", p.GetName(), j)
		}
		names[p.GetName()] = i
		if j, dup := issuers[p.GetIssuer()]; dup && p.GetIssuer() != "" {
			e.add(path+".issuer", "%q is also the issuer of providers[%d]", p.GetIssuer(), j)
		}
		issuers[p.GetIssuer()] = i
	}
	bindable := false // some provider checks DPoP or mTLS bindings
	for _, p := range c.GetProviders() {
		bindable = bindable || p.GetDpop().GetMode() != "disabled" || p.GetMtls().GetMode() == "allowed" || p.GetMtls().GetMode() == "required"
	}
	rules := map[string]int{}
	for i, r := range c.GetRules() {
		path := fmt.Sprintf("rules[%d]", i)
		validateRule(e, path, r, names)
		if r.GetRequire().GetSenderConstrained() && !bindable {
			e.add(path+".require.sender_constrained", "no provider accepts DPoP or mTLS-bound tokens, so every token would be unbound_token")
		}
		if j, dup := rules[r.GetName()]; dup && r.GetName() != "" {
			e.add(path+".name", "%q is also the name of rules[%d]", r.GetName(), j)
		}
		rules[r.GetName()] = i
	}
	switch c.GetDefaultDecision() {
	case "", "deny", "allow":
	default:
		e.add("default_decision", "must be deny or allow, not %q", c.GetDefaultDecision())
	}
	switch c.GetDenyBody() {
	case "", "json", "apigee":
	default:
		e.add("deny_body", "must be json or apigee, not %q", c.GetDenyBody())
	}
	switch c.GetPaths().GetParameters() {
	case "", "reject", "strip", "keep":
	default:
		e.add("paths.parameters", "must be reject, strip or keep, not %q", c.GetPaths().GetParameters())
	}
	if tc := c.GetTokenCache(); tc != nil && tc.GetMaxEntries() > 10_000_000 {
		e.add("token_cache.max_entries", "must be at most 10000000")
	}
	switch c.GetLogging().GetLevel() {
	case "", "debug", "info", "warn", "error":
	default:
		e.add("logging.level", "must be debug, info, warn or error, not %q", c.GetLogging().GetLevel())
	}
	switch c.GetLogging().GetDecisionLevel() {
	case "", "debug", "info", "off":
	default:
		e.add("logging.decision_level", "must be debug, info or off, not %q", c.GetLogging().GetDecisionLevel())
	}
	if hz := c.GetHttpAuthz(); hz != nil && hz.GetPathPrefix() != "" && !strings.HasPrefix(hz.GetPathPrefix(), "/") {
		e.add("http_authz.path_prefix", "must start with \"/\"")
	}
	validateHTTPAuthz(e, c.GetHttpAuthz())
}

// validateHTTPAuthz: one trusted forwarded-header family, named.
func validateHTTPAuthz(e *fieldErrors, hz *configv1.HTTPAuthz) {
	if hz.GetTrustForwardedHeaders() {
		e.add("http_authz.trust_forwarded_headers", "replaced by http_authz.forwarded_headers: set it to %q (Traefik forwardAuth, Caddy forward_auth) or %q (nginx auth_request) and remove this field",
			httpauthz.ForwardedXForwarded, httpauthz.ForwardedXOriginal)
	}
	if _, err := httpauthz.ParseForwarded(hz.GetForwardedHeaders()); err != nil {
		e.add("http_authz.forwarded_headers", "%v", err)
	}
}

func validateListen(e *fieldErrors, l *configv1.Listen) {
	for _, f := range []struct{ name, addr string }{{"listen.grpc", l.GetGrpc()}, {"listen.http", l.GetHttp()}} {
		if f.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			e.add(f.name, "must be host:port, not %q", f.addr)
		}
	}
	if t := l.GetTls(); t != nil {
		if (t.GetCertFile() == "") != (t.GetKeyFile() == "") {
			e.add("listen.tls", "cert_file and key_file go together")
		}
		if t.GetClientCaFile() != "" && t.GetCertFile() == "" {
			e.add("listen.tls.client_ca_file", "needs cert_file and key_file")
		}
	}
}

func positive(e *fieldErrors, path string, d *durationpb.Duration, zeroOK bool) {
	if d == nil {
		return
	}
	v := d.AsDuration()
	if v < 0 || (v == 0 && !zeroOK) {
		e.add(path, "must be positive, not %s", v)
	}
}

func validateProvider(e *fieldErrors, path string, p *configv1.Provider) {
	if !providerName.MatchString(p.GetName()) {
		e.add(path+".name", "must match [a-z0-9_-]{1,32}, not %q", p.GetName())
	}
	if p.GetIssuer() == "" {
		e.add(path+".issuer", "is required")
	}
	validateAudiences(e, path, p)
	checkAlgorithms(e, path+".algorithms", p.GetAlgorithms(), authz.SupportedAlgorithm,
		"only asymmetric algorithms are supported (RS*, PS*, ES*, EdDSA)",
		"RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA", false)
	validateJWKS(e, path+".jwks", p)
	positive(e, path+".clock_skew", p.GetClockSkew(), true)
	positive(e, path+".max_lifetime", p.GetMaxLifetime(), true)
	if s := p.GetClockSkew(); s != nil && s.AsDuration() > 10*time.Minute {
		e.add(path+".clock_skew", "must be at most 600s")
	}
	for i, c := range p.GetRequiredClaims() {
		if strings.TrimSpace(c) == "" {
			e.add(fmt.Sprintf("%s.required_claims[%d]", path, i), "must not be empty")
		}
	}
	for i, s := range p.GetFrom() {
		sp := fmt.Sprintf("%s.from[%d]", path, i)
		switch src := s.GetSource().(type) {
		case nil:
			e.add(sp, "one of header, query or cookie is required")
		case *configv1.TokenSource_Header:
			if !headerName.MatchString(strings.ToLower(src.Header.GetName())) {
				e.add(sp+".header.name", "must be a header name, not %q", src.Header.GetName())
			}
		case *configv1.TokenSource_Query:
			if src.Query == "" {
				e.add(sp+".query", "must not be empty")
			}
		case *configv1.TokenSource_Cookie:
			if src.Cookie == "" || strings.ContainsAny(src.Cookie, "=; ") {
				e.add(sp+".cookie", "must be a cookie name, not %q", src.Cookie)
			}
		}
	}
	for i, ch := range p.GetClaimHeaders() {
		cp := fmt.Sprintf("%s.claim_headers[%d]", path, i)
		if ch.GetClaim() == "" {
			e.add(cp+".claim", "is required")
		}
		checkHeaderName(e, cp+".header", ch.GetHeader())
	}
	if p.GetPayloadHeader() != "" {
		checkHeaderName(e, path+".payload_header", p.GetPayloadHeader())
	}
	validateDPoP(e, path+".dpop", p.GetDpop())
	validateMTLS(e, path+".mtls", p.GetMtls())
}

// checkAlgorithms refuses none, HMAC and unknown algorithms in a list,
// and, with noRepeats, an algorithm listed twice.
func checkAlgorithms(e *fieldErrors, path string, algs []string, supported func(string) bool, hmacWhy, known string, noRepeats bool) {
	seen := map[string]bool{}
	for i, alg := range algs {
		ap := fmt.Sprintf("%s[%d]", path, i)
		switch {
		case strings.EqualFold(alg, "none"):
			e.add(ap, "\"none\" is never accepted")
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			e.add(ap, "%q needs a shared secret; %s", alg, hmacWhy)
		case !supported(alg):
			e.add(ap, "unknown algorithm %q (%s)", alg, known)
		case noRepeats && seen[alg]:
			e.add(ap, "%q is listed twice", alg)
		}
		seen[alg] = true
	}
}

func checkSenderMode(e *fieldErrors, path, mode string) {
	switch mode {
	case "", "disabled", "allowed", "required":
	default:
		e.add(path, "must be disabled, allowed or required, not %q", mode)
	}
}

func validateDPoP(e *fieldErrors, path string, d *configv1.DPoP) {
	if d == nil {
		return
	}
	checkSenderMode(e, path+".mode", d.GetMode())
	positive(e, path+".iat_offset", d.GetIatOffset(), false)
	positive(e, path+".iat_leeway", d.GetIatLeeway(), false)
	if o := d.GetIatOffset(); o != nil && o.AsDuration() > time.Hour {
		e.add(path+".iat_offset", "must be at most 3600s")
	}
	if l := d.GetIatLeeway(); l != nil && l.AsDuration() > 10*time.Minute {
		e.add(path+".iat_leeway", "must be at most 600s")
	}
	checkAlgorithms(e, path+".algorithms", d.GetAlgorithms(), authz.SupportedProofAlgorithm,
		"a DPoP proof is signed with the client's private key",
		"RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519", true)
	if d.ReplayCacheEntries != nil && d.GetReplayCacheEntries() == 0 {
		e.add(path+".replay_cache_entries", "must be positive (a proof must be remembered to be refused a second time)")
	}
	if r := d.GetReplayStore().GetRedis(); r != nil {
		rp := path + ".replay_store.redis"
		if _, _, err := net.SplitHostPort(r.GetAddress()); err != nil || r.GetAddress() == "" {
			e.add(rp+".address", "must be host:port, not %q", r.GetAddress())
		}
		positive(e, rp+".timeout", r.GetTimeout(), false)
		if len(r.GetKeyPrefix()) > 128 {
			e.add(rp+".key_prefix", "must be at most 128 bytes")
		}
	} else if d.GetReplayStore() != nil {
		e.add(path+".replay_store", "redis is required (leave replay_store out for the per-replica memory store)")
	}
}

func validateMTLS(e *fieldErrors, path string, m *configv1.MTLS) {
	if m == nil {
		return
	}
	checkSenderMode(e, path+".mode", m.GetMode())
	switch m.GetCertificateSource() {
	case "", "envoy", "xfcc":
	default:
		e.add(path+".certificate_source", "must be envoy or xfcc, not %q", m.GetCertificateSource())
	}
}

// validateAudiences makes audiences required: an Auth0 tenant signs the
// tokens of every API (the Management API too) with the same iss and keys,
// so without an audience check a token meant for another API passes.
func validateAudiences(e *fieldErrors, path string, p *configv1.Provider) {
	switch {
	case p.GetSkipAudienceCheck() && len(p.GetAudiences()) > 0:
		e.add(path+".skip_audience_check", "must not be set together with audiences")
	case len(p.GetAudiences()) == 0 && !p.GetSkipAudienceCheck():
		e.add(path+".audiences", "is required, or a token for any API of this issuer passes "+
			"(skip_audience_check: true accepts any audience on purpose)")
	}
	for i, a := range p.GetAudiences() {
		if strings.TrimSpace(a) == "" {
			e.add(fmt.Sprintf("%s.audiences[%d]", path, i), "must not be empty")
		}
	}
}

func checkHeaderName(e *fieldErrors, path, h string) {
	l := strings.ToLower(h)
	switch {
	case h == "":
		e.add(path, "is required")
	case !headerName.MatchString(l):
		e.add(path, "must be a header name, not %q", h)
	case reservedHeaders[l]:
		e.add(path, "%q cannot carry claims", h)
	}
}

func validateJWKS(e *fieldErrors, path string, p *configv1.Provider) {
	j := p.GetJwks()
	if j == nil {
		e.add(path, "is required (one of uri, discovery, file, inline)")
		return
	}
	n := 0
	for _, set := range []bool{j.GetUri() != "", j.GetDiscovery(), j.GetFile() != "", j.GetInline() != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		e.add(path, "exactly one of uri, discovery, file, inline must be set")
	}
	if u := j.GetUri(); u != "" {
		pu, err := url.Parse(u)
		switch {
		case err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "":
			e.add(path+".uri", "must be an http(s) URL, not %q", jwks.RedactURI(u))
		case insecure(pu, j):
			e.add(path+".uri", "%q: %v", jwks.RedactURI(u), jwks.ErrInsecureHTTP)
		}
	}
	if j.GetDiscovery() {
		pu, err := url.Parse(p.GetIssuer())
		switch {
		case err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "":
			e.add(path+".discovery", "needs an issuer that is an http(s) URL")
		case insecure(pu, j):
			e.add(path+".discovery", "issuer %q: %v", jwks.RedactURI(p.GetIssuer()), jwks.ErrInsecureHTTP)
		}
	}
	positive(e, path+".refresh_interval", j.GetRefreshInterval(), false)
	positive(e, path+".min_refresh_interval", j.GetMinRefreshInterval(), false)
	positive(e, path+".fetch_timeout", j.GetFetchTimeout(), false)
	if j.GetRefreshInterval() != nil && j.GetMinRefreshInterval() != nil &&
		j.GetMinRefreshInterval().AsDuration() > j.GetRefreshInterval().AsDuration() {
		e.add(path+".min_refresh_interval", "must not exceed refresh_interval")
	}
}

// insecure reports a plain-http key source that the config does not allow:
// keys fetched over plain http can be swapped by anyone on the path.
func insecure(u *url.URL, j *configv1.JWKS) bool {
	return u.Scheme == "http" && !j.GetAllowInsecureHttp() && !jwks.IsLoopbackHost(u.Hostname())
}

func validateRule(e *fieldErrors, path string, r *configv1.Rule, providers map[string]int) {
	if r.GetName() == "" {
		e.add(path+".name", "is required")
	}
	m := r.GetMatch()
	n := 0
	for _, f := range []struct{ name, v string }{{"path_prefix", m.GetPathPrefix()}, {"path_exact", m.GetPathExact()}} {
		if f.v == "" {
			continue
		}
		n++
		if !strings.HasPrefix(f.v, "/") {
			e.add(path+".match."+f.name, "must start with \"/\"")
		}
	}
	if m.GetPathRegex() != "" {
		n++
		if _, err := regexp.Compile(m.GetPathRegex()); err != nil {
			e.add(path+".match.path_regex", "%v", err)
		}
	}
	if n > 1 {
		e.add(path+".match", "at most one of path_prefix, path_exact, path_regex")
	}
	for i, meth := range m.GetMethods() {
		if !methodName.MatchString(meth) {
			e.add(fmt.Sprintf("%s.match.methods[%d]", path, i), "must be an HTTP method, not %q", meth)
		}
	}
	for i, h := range m.GetHosts() {
		hp := fmt.Sprintf("%s.match.hosts[%d]", path, i)
		if h == "" || strings.ContainsAny(h, "/ ") || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
			e.add(hp, "must be a host name or \"*.domain\", not %q", h)
		}
	}
	req := r.GetRequire()
	for i, pn := range req.GetProviders() {
		if _, ok := providers[pn]; !ok {
			e.add(fmt.Sprintf("%s.require.providers[%d]", path, i), "no provider is named %q", pn)
		}
	}
	for _, list := range []struct {
		name string
		v    []string
	}{{"scopes", req.GetScopes()}, {"any_scopes", req.GetAnyScopes()}} {
		for i, s := range list.v {
			if s == "" || strings.ContainsAny(s, " \t\"\\") {
				e.add(fmt.Sprintf("%s.require.%s[%d]", path, list.name, i), "must be one scope without spaces or quotes, not %q", s)
			}
		}
	}
	for i, c := range req.GetClaims() {
		cp := fmt.Sprintf("%s.require.claims[%d]", path, i)
		if c.GetName() == "" {
			e.add(cp+".name", "is required")
		}
		for j, v := range c.GetValues() {
			switch v.GetKind().(type) {
			case *structpb.Value_StringValue, *structpb.Value_NumberValue, *structpb.Value_BoolValue:
			default:
				e.add(fmt.Sprintf("%s.values[%d]", cp, j), "must be a string, number or bool")
			}
		}
	}
}
