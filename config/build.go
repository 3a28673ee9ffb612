package config

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/jwks"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
	"github.com/jwtauthz/jwt-authz/replay"
)

// Defaults the contract gives.
const (
	DefaultGRPCAddr           = "127.0.0.1:9001"
	DefaultHTTPAddr           = "127.0.0.1:9090"
	DefaultShutdownGrace      = 10 * time.Second
	DefaultRefreshInterval    = 900 * time.Second
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultClockSkew          = 30 * time.Second
	DefaultTokenCacheEntries  = 100000
)

// Env is what Build needs from the process: metrics built once, the
// logger, and the authorizer pointer that the servers read (so key
// removals reach the token cache of whichever authorizer is current).
type Env struct {
	Logger       *slog.Logger
	AuthzMetrics *authz.Metrics
	CacheMetrics *authz.CacheMetrics
	JWKSMetrics  *jwks.Metrics
	// Current is the authorizer in force; required.
	Current *atomic.Pointer[authz.Authorizer]
	// HTTPClient fetches keys; nil means jwks' default.
	HTTPClient *http.Client
	// Clock drives key refresh; nil means the real clock.
	Clock jwks.Clock
	// Now is the authorizer's clock; nil means time.Now.
	Now func() time.Time
	// Registerer receives the DPoP replay-store metrics; nil means none.
	Registerer prometheus.Registerer
}

// Runtime is a built config: the authorizer and the running key sets.
type Runtime struct {
	Config     *configv1.Config
	Authorizer *authz.Authorizer
	// Providers in config order.
	Providers   []*jwks.KeySet
	keyConfig   map[string]*configv1.Provider
	jwksMetrics *jwks.Metrics
	// replays are the DPoP replay stores by provider name.
	replays map[string]*replayStore
}

// Build makes a Runtime from a validated config. Key sets of prev whose
// provider kept its name and key settings are reused as they are; a key set
// whose source (uri, discovery issuer, file path or inline content) is one
// of prev's starts from that one's keys with its own tuning; the others
// start empty. Build does not stop prev's key sets: after swapping, call
// prev.Retire(next). Every provider that skips the audience check is
// warned about, at start and at every reload.
func Build(cfg *configv1.Config, env Env, prev *Runtime) (*Runtime, error) {
	rt := &Runtime{Config: cfg, keyConfig: map[string]*configv1.Provider{}, jwksMetrics: env.JWKSMetrics,
		replays: map[string]*replayStore{}}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := authz.Options{
		Realm:        cfg.GetRealm(),
		DefaultAllow: cfg.GetDefaultDecision() == "allow",
		Now:          env.Now,
		Metrics:      env.AuthzMetrics,
		CacheMetrics: env.CacheMetrics,
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
	var started []*jwks.KeySet
	fail := func(err error) (*Runtime, error) {
		for _, p := range started {
			p.Close()
		}
		prev.closeReplays(rt)
		return nil, err
	}
	for i, pc := range cfg.GetProviders() {
		if pc.GetSkipAudienceCheck() {
			logger.Warn("audience check skipped: tokens for any audience of this issuer are accepted",
				"provider", pc.GetName(), "issuer", pc.GetIssuer())
		}
		ks := prev.reusable(pc)
		if ks == nil {
			var err error
			ks, err = newKeySet(pc, env, logger, prev.sameSource(pc))
			if err != nil {
				return fail(err)
			}
			started = append(started, ks)
			ks.Start(context.Background())
		}
		rt.Providers = append(rt.Providers, ks)
		rt.keyConfig[pc.GetName()] = pc
		ap := provider(pc, ks)
		if ap.DPoP.Mode != authz.SenderDisabled {
			rs, err := prev.replayFor(pc, env)
			if err != nil {
				return fail(fmt.Errorf("providers[%d].dpop.replay_store: %w", i, err))
			}
			rt.replays[pc.GetName()] = rs
			ap.DPoP.Replay = rs.store
		}
		opts.Providers = append(opts.Providers, ap)
	}
	for _, rc := range cfg.GetRules() {
		opts.Rules = append(opts.Rules, rule(rc))
	}
	a, err := authz.New(opts)
	if err != nil {
		return fail(err)
	}
	rt.Authorizer = a
	return rt, nil
}

// reusable returns prev's key set for pc when the key settings are the same.
func (rt *Runtime) reusable(pc *configv1.Provider) *jwks.KeySet {
	if rt == nil {
		return nil
	}
	old, ok := rt.keyConfig[pc.GetName()]
	if !ok || !sameKeys(old, pc) {
		return nil
	}
	for _, p := range rt.Providers {
		if p.Name() == pc.GetName() {
			return p
		}
	}
	return nil
}

// sameSource returns prev's key set that reads from pc's source, preferring
// the one of the provider with pc's name; nil when there is none.
func (rt *Runtime) sameSource(pc *configv1.Provider) *jwks.KeySet {
	if rt == nil {
		return nil
	}
	want := sourceOf(pc)
	var found *jwks.KeySet
	for i, p := range rt.Providers {
		old := rt.Config.GetProviders()[i]
		if sourceOf(old) != want {
			continue
		}
		if old.GetName() == pc.GetName() {
			return p
		}
		if found == nil {
			found = p
		}
	}
	return found
}

// sourceOf names where a provider's keys come from: its keys belong to
// that, not to the tuning around it.
func sourceOf(pc *configv1.Provider) string {
	j := pc.GetJwks()
	switch {
	case j.GetUri() != "":
		return "uri\x00" + j.GetUri()
	case j.GetDiscovery():
		return "discovery\x00" + pc.GetIssuer()
	case j.GetFile() != "":
		return "file\x00" + j.GetFile()
	}
	return "inline\x00" + j.GetInline()
}

func sameKeys(a, b *configv1.Provider) bool {
	return a.GetIssuer() == b.GetIssuer() && proto.Equal(a.GetJwks(), b.GetJwks()) &&
		strings.Join(a.GetAlgorithms(), ",") == strings.Join(b.GetAlgorithms(), ",")
}

// Retire stops the key sets of rt that next does not use.
func (rt *Runtime) Retire(next *Runtime) {
	if rt == nil {
		return
	}
	keep := map[*jwks.KeySet]bool{}
	if next != nil {
		for _, p := range next.Providers {
			keep[p] = true
		}
	}
	names := map[string]bool{}
	if next != nil {
		for _, pc := range next.Config.GetProviders() {
			names[pc.GetName()] = true
		}
	}
	for _, p := range rt.Providers {
		if !keep[p] {
			p.Close()
		}
	}
	next.closeReplays(rt)
	// A provider that left the config leaves /metrics too.
	for name := range rt.keyConfig {
		if !names[name] && rt.jwksMetrics != nil {
			rt.jwksMetrics.Forget(name)
		}
	}
}

// Close stops every key set.
func (rt *Runtime) Close() { rt.Retire(nil) }

// Ready reports whether every provider has a usable key set, and names
// those that do not.
func (rt *Runtime) Ready() (bool, []string) {
	var notReady []string
	for _, p := range rt.Providers {
		if !p.Ready() {
			notReady = append(notReady, p.Name())
		}
	}
	return len(notReady) == 0, notReady
}

func dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

func algorithms(pc *configv1.Provider) []string {
	if len(pc.GetAlgorithms()) == 0 {
		return []string{"RS256"}
	}
	return pc.GetAlgorithms()
}

func newKeySet(pc *configv1.Provider, env Env, logger *slog.Logger, previous *jwks.KeySet) (*jwks.KeySet, error) {
	j := pc.GetJwks()
	name := pc.GetName()
	current := env.Current
	return jwks.New(jwks.Options{
		Name:               name,
		Issuer:             pc.GetIssuer(),
		URI:                j.GetUri(),
		Discovery:          j.GetDiscovery(),
		File:               j.GetFile(),
		Inline:             j.GetInline(),
		Algorithms:         algorithms(pc),
		RefreshInterval:    dur(j.GetRefreshInterval(), DefaultRefreshInterval),
		MinRefreshInterval: dur(j.GetMinRefreshInterval(), DefaultMinRefreshInterval),
		FetchTimeout:       dur(j.GetFetchTimeout(), DefaultFetchTimeout),
		CacheFile:          j.GetCacheFile(),
		AllowInsecureHTTP:  j.GetAllowInsecureHttp(),
		Previous:           previous,
		HTTPClient:         env.HTTPClient,
		Clock:              env.Clock,
		Logger:             logger,
		Metrics:            env.JWKSMetrics,
		OnKeysRemoved: func(kids []string) {
			// A key removed from the set stops verifying at once: drop
			// the tokens it signed from whichever cache is current.
			if current == nil {
				return
			}
			if a := current.Load(); a != nil && a.Cache() != nil {
				a.Cache().DropKeys(name, kids)
			}
		},
	})
}

func provider(pc *configv1.Provider, ks authz.KeySource) authz.Provider {
	p := authz.Provider{
		Name:           pc.GetName(),
		Issuer:         pc.GetIssuer(),
		Audiences:      pc.GetAudiences(),
		Algorithms:     algorithms(pc),
		Keys:           ks,
		ClockSkew:      dur(pc.GetClockSkew(), DefaultClockSkew),
		MaxLifetime:    dur(pc.GetMaxLifetime(), 0),
		RequiredClaims: pc.GetRequiredClaims(),
		TokenType:      pc.GetTokenType(),
		PayloadHeader:  strings.ToLower(pc.GetPayloadHeader()),
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
			p.Sources = append(p.Sources, authz.TokenSource{Header: strings.ToLower(src.Header.GetName()), Prefix: src.Header.GetPrefix()})
		case *configv1.TokenSource_Query:
			p.Sources = append(p.Sources, authz.TokenSource{Query: src.Query})
		case *configv1.TokenSource_Cookie:
			p.Sources = append(p.Sources, authz.TokenSource{Cookie: src.Cookie})
		}
	}
	for _, ch := range pc.GetClaimHeaders() {
		p.ClaimHeaders = append(p.ClaimHeaders, authz.ClaimHeader{Claim: ch.GetClaim(), Header: strings.ToLower(ch.GetHeader()), Nested: ch.GetNested()})
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

// replayStore is a provider's DPoP replay store and the settings it was
// built from: a reload that keeps them keeps the store, and with it the
// proofs already seen.
type replayStore struct {
	settings *configv1.DPoP // replay_store and replay_cache_entries only
	store    authz.ReplayStore
	close    func() error
}

func replaySettings(pc *configv1.Provider) *configv1.DPoP {
	d := pc.GetDpop()
	out := &configv1.DPoP{ReplayStore: d.GetReplayStore()}
	if d != nil {
		out.ReplayCacheEntries = d.ReplayCacheEntries
	}
	return out
}

// replayFor returns prev's replay store for pc when its settings are the
// same, else a new one.
func (rt *Runtime) replayFor(pc *configv1.Provider, env Env) (*replayStore, error) {
	want := replaySettings(pc)
	if rt != nil {
		if old := rt.replays[pc.GetName()]; old != nil && proto.Equal(old.settings, want) {
			return old, nil
		}
	}
	rs := &replayStore{settings: want, close: func() error { return nil }}
	if r := want.GetReplayStore().GetRedis(); r != nil {
		s, err := replay.NewRedis(replay.RedisOptions{
			Address:    r.GetAddress(),
			Username:   r.GetUsername(),
			Password:   r.GetPassword(),
			DB:         int(r.GetDb()),
			TLS:        r.GetTls(),
			KeyPrefix:  r.GetKeyPrefix(),
			Timeout:    dur(r.GetTimeout(), 0),
			Now:        env.Now,
			Registerer: env.Registerer,
		})
		if err != nil {
			return nil, err
		}
		rs.store, rs.close = s, s.Close
		return rs, nil
	}
	m, err := replay.NewMemory(replay.MemoryOptions{
		MaxEntries: int(want.GetReplayCacheEntries()),
		Now:        env.Now,
		Registerer: env.Registerer,
	})
	if err != nil {
		return nil, err
	}
	rs.store = m
	return rs, nil
}

// closeReplays closes the replay stores of old that rt does not use.
func (rt *Runtime) closeReplays(old *Runtime) {
	if old == nil {
		return
	}
	for name, rs := range old.replays {
		if rt != nil && rt.replays[name] == rs {
			continue
		}
		_ = rs.close()
	}
}
