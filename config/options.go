package config

import (
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// Defaults the contract gives that no library owns: the listeners and the
// shutdown are the program's, the clock skew and the token cache size the
// config's choice for authz. Key-set intervals are jwks's (jwks.Default*),
// the algorithm authz's (authz.DefaultAlgorithm).
const (
	DefaultGRPCAddr          = "127.0.0.1:9001"
	DefaultHTTPAddr          = "127.0.0.1:9090"
	DefaultShutdownGrace     = 10 * time.Second
	DefaultClockSkew         = 30 * time.Second
	DefaultTokenCacheEntries = 100000
)

// AuthzOptions maps the config to the authorizer's options, every provider
// reading its keys from the key source keys returns for it. Logger is the
// one decisions are logged to (the config may turn that off).
func AuthzOptions(cfg *configv1.Config, logger *slog.Logger, keys func(*configv1.Provider) authz.KeySource) authz.Options {
	opts := authz.Options{
		Realm:        cfg.GetRealm(),
		DefaultAllow: cfg.GetDefaultDecision() == "allow",
		Logger:       logger,
	}
	if cfg.GetDenyBody() == "apigee" {
		opts.DenyBody = authz.BodyApigee
	}
	opts.Paths.CaseInsensitive = cfg.GetPaths().GetCaseInsensitive()
	switch cfg.GetPaths().GetParameters() {
	case "strip":
		opts.Paths.Parameters = authz.PathParamsStrip
	case "keep":
		opts.Paths.Parameters = authz.PathParamsKeep
	}
	switch cfg.GetLogging().GetDecisionLevel() {
	case "info":
		opts.DecisionLevel = slog.LevelInfo
	case "off":
		opts.Logger = nil
	default:
		opts.DecisionLevel = slog.LevelDebug
	}
	opts.TokenCacheEntries = DefaultTokenCacheEntries
	if tc := cfg.GetTokenCache(); tc != nil && tc.MaxEntries != nil {
		opts.TokenCacheEntries = int(tc.GetMaxEntries())
	}
	for _, pc := range cfg.GetProviders() {
		opts.Providers = append(opts.Providers, Provider(pc, keys(pc)))
	}
	for _, rc := range cfg.GetRules() {
		opts.Rules = append(opts.Rules, rule(rc))
	}
	return opts
}

// KeySetOptions maps a provider's jwks settings to a key set's options:
// where its keys come from and the tuning. Unset durations stay zero, which
// means jwks's defaults; the algorithm allowlist is authz's, so that the key
// set keeps exactly the keys the authorizer may use. The caller adds the
// process's parts (HTTP client, clock, logger, metrics, callbacks).
func KeySetOptions(pc *configv1.Provider) jwks.Options {
	j := pc.GetJwks()
	return jwks.Options{
		Name:               pc.GetName(),
		Issuer:             pc.GetIssuer(),
		URI:                j.GetUri(),
		Discovery:          j.GetDiscovery(),
		File:               j.GetFile(),
		Inline:             j.GetInline(),
		Algorithms:         authz.Algorithms(pc.GetAlgorithms()),
		RefreshInterval:    j.GetRefreshInterval().AsDuration(),
		MinRefreshInterval: j.GetMinRefreshInterval().AsDuration(),
		FetchTimeout:       j.GetFetchTimeout().AsDuration(),
		CacheFile:          j.GetCacheFile(),
		AllowInsecureHTTP:  j.GetAllowInsecureHttp(),
	}
}

func dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// Provider maps a provider of the config to the authorizer's, reading its
// tokens' keys from ks. Defaults and header-name case are authz's to apply.
func Provider(pc *configv1.Provider, ks authz.KeySource) authz.Provider {
	p := authz.Provider{
		Name:           pc.GetName(),
		Issuer:         pc.GetIssuer(),
		Audiences:      pc.GetAudiences(),
		Algorithms:     pc.GetAlgorithms(),
		Keys:           ks,
		ClockSkew:      dur(pc.GetClockSkew(), DefaultClockSkew),
		MaxLifetime:    dur(pc.GetMaxLifetime(), 0),
		RequiredClaims: pc.GetRequiredClaims(),
		TokenType:      pc.GetTokenType(),
		PayloadHeader:  pc.GetPayloadHeader(),
		DropToken:      pc.ForwardToken != nil && !pc.GetForwardToken(),
		DPoP: authz.DPoPOptions{
			Mode:           senderMode(pc.GetDpop().GetMode(), authz.SenderAllowed),
			IATOffset:      dur(pc.GetDpop().GetIatOffset(), authz.DefaultDPoPIATOffset),
			IATLeeway:      dur(pc.GetDpop().GetIatLeeway(), authz.DefaultDPoPIATLeeway),
			Algorithms:     pc.GetDpop().GetAlgorithms(),
			TrustForwarded: pc.GetDpop().GetTrustForwardedHeaders(),
		},
		MTLS: authz.MTLSOptions{Mode: senderMode(pc.GetMtls().GetMode(), authz.SenderDisabled)},
	}
	if pc.GetMtls().GetCertificateSource() == "xfcc" {
		p.MTLS.Source = authz.CertFromXFCC
	}
	for _, s := range pc.GetFrom() {
		switch src := s.GetSource().(type) {
		case *configv1.TokenSource_Header:
			p.Sources = append(p.Sources, authz.TokenSource{Header: src.Header.GetName(), Prefix: src.Header.GetPrefix()})
		case *configv1.TokenSource_Query:
			p.Sources = append(p.Sources, authz.TokenSource{Query: src.Query})
		case *configv1.TokenSource_Cookie:
			p.Sources = append(p.Sources, authz.TokenSource{Cookie: src.Cookie})
		}
	}
	for _, ch := range pc.GetClaimHeaders() {
		p.ClaimHeaders = append(p.ClaimHeaders, authz.ClaimHeader{Claim: ch.GetClaim(), Header: ch.GetHeader(), Nested: ch.GetNested()})
	}
	return p
}

func rule(rc *configv1.Rule) authz.Rule {
	m := rc.GetMatch()
	r := authz.Rule{
		Name: rc.GetName(),
		Match: authz.Match{
			PathPrefix: m.GetPathPrefix(),
			PathExact:  m.GetPathExact(),
			PathRegex:  m.GetPathRegex(),
			Methods:    m.GetMethods(),
			Hosts:      m.GetHosts(),
		},
		Require: authz.Requirement{
			Providers: rc.GetRequire().GetProviders(),
			Scopes:    rc.GetRequire().GetScopes(),
			AnyScopes: rc.GetRequire().GetAnyScopes(),

			SenderConstrained: rc.GetRequire().GetSenderConstrained(),
		},
		AllowAnonymous:     rc.GetAllowAnonymous(),
		AllowCORSPreflight: rc.GetAllowCorsPreflight(),
		DryRun:             rc.GetDryRun(),
	}
	for _, c := range rc.GetRequire().GetClaims() {
		cr := authz.ClaimRequirement{Name: c.GetName(), Nested: c.GetNested()}
		for _, v := range c.GetValues() {
			switch k := v.GetKind().(type) {
			case *structpb.Value_StringValue:
				cr.Values = append(cr.Values, k.StringValue)
			case *structpb.Value_NumberValue:
				cr.Values = append(cr.Values, k.NumberValue)
			case *structpb.Value_BoolValue:
				cr.Values = append(cr.Values, k.BoolValue)
			}
		}
		r.Require.Claims = append(r.Require.Claims, cr)
	}
	return r
}

func senderMode(mode string, def authz.SenderMode) authz.SenderMode {
	switch mode {
	case "disabled":
		return authz.SenderDisabled
	case "allowed":
		return authz.SenderAllowed
	case "required":
		return authz.SenderRequired
	}
	return def
}
