// Package stack runs jwt-authz: it assembles a validated config into the
// key sets and the authorizer, puts the authorizer in force behind the one
// authz.Current every adapter asks, reloads (a new config is built
// completely, then swapped in; key sets whose source did not change keep
// their keys), retires what a reload leaves behind, and reports readiness
// (/readyz) and the key sets' state (/debug/keys).
//
// Package config parses and validates and maps the config to authz and jwks
// options; it starts nothing. The listeners, signals and file watching are
// the program's (cmd/jwt-authz); internal/stacktest runs a Stack behind a
// real gRPC server for tests.
//
// Concurrency: a Stack is safe for concurrent use. Reload is serialised by
// a mutex; adapters never take it (they read the Authorizer through
// authz.Current).
package stack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/jwks"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// Options are the process's parts of a Stack. The zero value works: no
// metrics are registered, logs are discarded, keys are fetched with jwks's
// client on the real clock.
type Options struct {
	// Logger receives the stack's, the authorizer's and the key sets' logs;
	// nil discards.
	Logger *slog.Logger
	// Registry receives the metrics of the authorizer, its token cache, the
	// key sets and the reloads; nil registers nothing.
	Registry prometheus.Registerer
	// HTTPClient fetches keys; nil means jwks's default.
	HTTPClient *http.Client
	// Clock drives key refresh; nil means the real clock.
	Clock jwks.Clock
	// Now is the authorizer's clock; nil means time.Now.
	Now func() time.Time
}

// Stack is a running jwt-authz: the config in force, its key sets and
// authorizer. Create it with New; Close it when done.
type Stack struct {
	opts         Options
	log          *slog.Logger
	current      *authz.Current
	authzMetrics *authz.Metrics
	cacheMetrics *authz.CacheMetrics
	jwksMetrics  *jwks.Metrics
	reloads      *prometheus.CounterVec

	mu  sync.Mutex // serialises reloads; guards gen
	gen *generation
	// started is set once every provider of the first config had a usable
	// key set. From then on the instance stays in service: a provider
	// without keys (an IdP outage, a reload that adds an unreachable one)
	// answers its own tokens 503 keys_unavailable and is reported, but it
	// must not take every replica out at once while the others serve.
	started atomic.Bool
}

// generation is one built config: its authorizer and running key sets.
type generation struct {
	cfg     *configv1.Config
	a       *authz.Authorizer
	keySets []*jwks.KeySet // in config order
	// replays are the DPoP replay stores by provider name.
	replays map[string]*replayStore
}

// New builds cfg (validated, as config.Parse returns it), starts its key
// sets and puts its authorizer in force. It does not wait for keys; see
// WaitReady and Readiness.
func New(cfg *configv1.Config, o Options) (*Stack, error) {
	s := &Stack{opts: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.current = authz.NewCurrent(authz.CurrentOptions{Logger: s.log})
	if o.Registry != nil {
		s.authzMetrics = authz.NewMetrics(o.Registry)
		s.cacheMetrics = authz.NewCacheMetrics(o.Registry)
		s.jwksMetrics = jwks.NewMetrics(o.Registry)
		s.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "jwt_authz", Name: "config_reloads_total",
			Help: "Config reloads by result (success, error)."}, []string{"result"})
		o.Registry.MustRegister(s.reloads)
		// At zero from the start: increase() over a series that did not
		// exist is empty, so the first refused reload would never fire an
		// alert.
		s.reloads.WithLabelValues("success")
		s.reloads.WithLabelValues("error")
	}
	g, err := s.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.gen = g
	s.current.Store(g.a)
	return s, nil
}

// Current is the authorizer in force, for the adapters.
func (s *Stack) Current() *authz.Current { return s.current }

// Config is the config in force.
func (s *Stack) Config() *configv1.Config { return s.generation().cfg }

// KeySets are the key sets of the config in force, in config order.
func (s *Stack) KeySets() []*jwks.KeySet { return s.generation().keySets }

func (s *Stack) generation() *generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Reload builds cfg completely, then swaps it in and retires what the old
// config used and the new one does not. A config that cannot be built is
// refused: the old one keeps serving. Either way the result is logged with
// the trigger (sighup, file_changed, ...) and counted.
func (s *Stack) Reload(cfg *configv1.Config, trigger string) error {
	s.mu.Lock()
	prev := s.gen
	next, err := s.build(cfg, prev)
	if err == nil {
		s.gen = next
		s.current.Store(next.a)
		s.retire(prev, next)
	}
	s.mu.Unlock()
	if err != nil {
		s.Refused(trigger, err)
		return err
	}
	if !proto.Equal(prev.cfg.GetListen(), cfg.GetListen()) || !proto.Equal(prev.cfg.GetLimits(), cfg.GetLimits()) ||
		!proto.Equal(prev.cfg.GetHttpAuthz(), cfg.GetHttpAuthz()) {
		s.log.Warn("listen, limits and http_authz changes take effect at the next restart")
	}
	s.count("success")
	s.log.Info("config reloaded", slog.String("trigger", trigger))
	return nil
}

// Refused logs and counts a reload refused before Reload: a config that
// could not be read or validated. The old config keeps serving.
func (s *Stack) Refused(trigger string, err error) {
	s.count("error")
	s.log.Error("config reload refused; the old config keeps serving", slog.String("trigger", trigger), slog.String("error", err.Error()))
}

func (s *Stack) count(result string) {
	if s.reloads != nil {
		s.reloads.WithLabelValues(result).Inc()
	}
}

// Close stops every key set. Keys stay served by the authorizer in force.
func (s *Stack) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retire(s.gen, nil)
}

// build makes a generation from cfg. Key sets of prev whose provider kept
// its name and key settings are reused as they are; a key set whose source
// (uri, discovery issuer, file path or inline content) is one of prev's
// starts from that one's keys with its own tuning; the others start empty.
// Every provider that skips the audience check is warned about, at start
// and at every reload.
func (s *Stack) build(cfg *configv1.Config, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg}
	var started []*jwks.KeySet
	keys := map[*configv1.Provider]*jwks.KeySet{}
	for _, pc := range cfg.GetProviders() {
		if pc.GetSkipAudienceCheck() {
			s.log.Warn("audience check skipped: tokens for any audience of this issuer are accepted",
				"provider", pc.GetName(), "issuer", pc.GetIssuer())
		}
		ks := prev.reusable(pc)
		if ks == nil {
			var err error
			if ks, err = s.newKeySet(pc, prev); err != nil {
				stopAll(started)
				return nil, err
			}
			started = append(started, ks)
			ks.Start(context.Background())
		}
		g.keySets = append(g.keySets, ks)
		keys[pc] = ks
	}
	opts := config.AuthzOptions(cfg, s.log, func(pc *configv1.Provider) authz.KeySource { return keys[pc] })
	opts.Now, opts.Metrics, opts.CacheMetrics = s.opts.Now, s.authzMetrics, s.cacheMetrics
	g.replays = map[string]*replayStore{}
	for i, pc := range cfg.GetProviders() {
		if opts.Providers[i].DPoP.Mode == authz.SenderDisabled {
			continue
		}
		rs, err := prev.replayFor(pc, s.opts.Now, s.opts.Registry)
		if err != nil {
			stopAll(started)
			prev.closeReplays(g)
			return nil, fmt.Errorf("providers[%d].dpop.replay_store: %w", i, err)
		}
		g.replays[pc.GetName()] = rs
		opts.Providers[i].DPoP.Replay = rs.store
	}
	a, err := authz.New(opts)
	if err != nil {
		stopAll(started)
		prev.closeReplays(g)
		return nil, err
	}
	g.a = a
	return g, nil
}

func (s *Stack) newKeySet(pc *configv1.Provider, prev *generation) (*jwks.KeySet, error) {
	o := config.KeySetOptions(pc)
	o.Previous = prev.sameSource(o)
	o.HTTPClient, o.Clock, o.Logger, o.Metrics = s.opts.HTTPClient, s.opts.Clock, s.log, s.jwksMetrics
	name := pc.GetName()
	// A key removed from the set stops verifying at once, in whichever
	// authorizer is in force.
	o.OnKeysRemoved = func(kids []string) { s.current.KeysRemoved(name, kids) }
	return jwks.New(o)
}

func stopAll(sets []*jwks.KeySet) {
	for _, ks := range sets {
		ks.Close()
	}
}

// reusable returns g's key set for pc when its name and key settings are the
// same.
func (g *generation) reusable(pc *configv1.Provider) *jwks.KeySet {
	if g == nil {
		return nil
	}
	for i, old := range g.cfg.GetProviders() {
		if old.GetName() == pc.GetName() && sameKeys(old, pc) {
			return g.keySets[i]
		}
	}
	return nil
}

// sameSource returns g's key set that reads from o's source, preferring the
// one of the provider with o's name; nil when there is none.
func (g *generation) sameSource(o jwks.Options) *jwks.KeySet {
	if g == nil {
		return nil
	}
	var found *jwks.KeySet
	for _, ks := range g.keySets {
		if !ks.SameSource(o) {
			continue
		}
		if ks.Name() == o.Name {
			return ks
		}
		if found == nil {
			found = ks
		}
	}
	return found
}

func sameKeys(a, b *configv1.Provider) bool {
	return a.GetIssuer() == b.GetIssuer() && proto.Equal(a.GetJwks(), b.GetJwks()) &&
		strings.Join(a.GetAlgorithms(), ",") == strings.Join(b.GetAlgorithms(), ",")
}

// retire stops the key sets of prev that next does not use; a provider that
// left the config leaves /metrics too. next nil retires everything.
func (s *Stack) retire(prev, next *generation) {
	if prev == nil {
		return
	}
	keep := map[*jwks.KeySet]bool{}
	names := map[string]bool{}
	if next != nil {
		for _, ks := range next.keySets {
			keep[ks] = true
		}
		for _, pc := range next.cfg.GetProviders() {
			names[pc.GetName()] = true
		}
	}
	for _, ks := range prev.keySets {
		if !keep[ks] {
			ks.Close()
		}
	}
	next.closeReplays(prev)
	for _, pc := range prev.cfg.GetProviders() {
		if !names[pc.GetName()] {
			s.authzMetrics.Forget(pc.GetName())
			if s.jwksMetrics != nil {
				s.jwksMetrics.Forget(pc.GetName())
			}
		}
	}
}
