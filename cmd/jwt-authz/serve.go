package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/jwtauthz/jwt-authz/authz"
	"github.com/jwtauthz/jwt-authz/config"
	"github.com/jwtauthz/jwt-authz/envoy"
	"github.com/jwtauthz/jwt-authz/httpauthz"
	"github.com/jwtauthz/jwt-authz/jwks"
	configv1 "github.com/jwtauthz/jwt-authz/proto/jwtauthz/config/v1"
)

// server is the running process: listeners, the runtime in force, reload.
type server struct {
	path    string
	log     *slog.Logger
	env     config.Env
	current atomic.Pointer[authz.Authorizer]
	reloads *prometheus.CounterVec

	mu      sync.Mutex // guards rt across reloads
	rt      *config.Runtime
	watched *fileWatch // owned by serve's loop
	// started is set once every provider of the first config had a usable
	// key set. From then on the instance stays in service: a provider
	// without keys (an IdP outage, a reload that adds an unreachable one)
	// answers its own tokens 503 keys_unavailable and is reported, but it
	// must not take every replica out at once while the others serve.
	started atomic.Bool
}

// providerState is one provider's line in /readyz.
type providerState struct {
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// readiness reports whether the instance is in service (gRPC health
// SERVING, /readyz 200) and each provider's state. Readiness gates only the
// first start.
func (s *server) readiness() (bool, map[string]providerState) {
	s.mu.Lock()
	providers := s.rt.Providers
	s.mu.Unlock()
	states := make(map[string]providerState, len(providers))
	all := true
	for _, p := range providers {
		st := p.Status()
		states[st.Name] = providerState{Ready: st.Ready, Error: st.LastError}
		all = all && st.Ready
	}
	if all && s.started.CompareAndSwap(false, true) {
		s.log.Info("every provider has keys: in service")
	}
	return s.started.Load(), states
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want json or text", format)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return serveWith(ctx, args, stdout, stderr, watchOptions{})
}

// serveWith is serve with the config watcher's settings, which tests set.
func serveWith(ctx context.Context, args []string, stdout, stderr io.Writer, wo watchOptions) int {
	fs := newFlags("serve", stdout, stderr)
	path := fs.String("config", "", "config file (YAML)")
	grpcAddr := fs.String("grpc-addr", "", "gRPC listen address (overrides listen.grpc)")
	httpAddr := fs.String("http-addr", "", "HTTP listen address (overrides listen.http)")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides logging.level)")
	pprofOn := fs.Bool("pprof", false, "serve Go profiles under /debug/pprof/ on the HTTP listener (off by default)")
	if code, ok := fs.parse(args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "jwt-authz serve: -config is required")
		return 2
	}
	// The watcher's first reading comes before Load, so a change made
	// while the server starts is reloaded, not taken as already loaded.
	watch := newFileWatch(*path, wo)
	cfg, err := config.Load(*path)
	if err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintln(stderr, e)
		}
		return 1
	}
	level := *logLevel
	if level == "" {
		level = cfg.GetLogging().GetLevel()
	}
	if level == "" {
		level = "info"
	}
	logger, err := newLogger(*logFormat, level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "jwt-authz serve: %v\n", err)
		return 2
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(reg)
	f.NewGaugeVec(prometheus.GaugeOpts{Namespace: "jwt_authz", Name: "build_info",
		Help: "Build information; always 1."}, []string{"version", "goversion"}).
		WithLabelValues(version, runtime.Version()).Set(1)
	s := &server{
		path: *path,
		log:  logger,
		reloads: f.NewCounterVec(prometheus.CounterOpts{Namespace: "jwt_authz", Name: "config_reloads_total",
			Help: "Config reloads by result (success, error)."}, []string{"result"}),
	}
	s.env = config.Env{
		Logger:       logger,
		AuthzMetrics: authz.NewMetrics(reg),
		CacheMetrics: authz.NewCacheMetrics(reg),
		JWKSMetrics:  jwks.NewMetrics(reg),
		Current:      &s.current,
	}
	s.watched = watch
	rt, err := config.Build(cfg, s.env, nil)
	if err != nil {
		logger.Error("config not usable", slog.String("error", err.Error()))
		return 1
	}
	s.rt = rt
	s.current.Store(rt.Authorizer)
	defer func() { s.mu.Lock(); s.rt.Close(); s.mu.Unlock() }()

	ga := firstNonEmpty(*grpcAddr, cfg.GetListen().GetGrpc(), config.DefaultGRPCAddr)
	ha := firstNonEmpty(*httpAddr, cfg.GetListen().GetHttp(), config.DefaultHTTPAddr)
	gs, err := s.grpcServer(cfg)
	if err != nil {
		logger.Error("grpc server", slog.String("error", err.Error()))
		return 1
	}
	hs := envoy.Register(gs, envoy.NewServer(envoy.Options{Authorizer: &s.current, Logger: logger, Limits: limits(cfg)}))
	glis, err := net.Listen("tcp", ga)
	if err != nil {
		logger.Error("listen grpc", slog.String("addr", ga), slog.String("error", err.Error()))
		return 1
	}
	hlis, err := net.Listen("tcp", ha)
	if err != nil {
		glis.Close()
		logger.Error("listen http", slog.String("addr", ha), slog.String("error", err.Error()))
		return 1
	}
	handler := s.httpHandler(reg, *pprofOn)
	if hz := cfg.GetHttpAuthz(); hz.GetEnabled() {
		// The HTTP authorization mode, for Envoy's http_service, nginx
		// auth_request, Traefik forwardAuth and Caddy forward_auth. The
		// listener is chosen at start; a reload does not move it.
		handler = httpauthz.Route(hz.GetPathPrefix(), httpauthz.NewHandler(httpauthz.Options{
			Authorizer: &s.current,
			PathPrefix: hz.GetPathPrefix(),
			Forwarded:  httpauthz.Forwarded(hz.GetForwardedHeaders()),
			Logger:     logger,
		}), handler)
	}
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	logger.Info("serving", slog.String("grpc", glis.Addr().String()), slog.String("http", hlis.Addr().String()),
		slog.String("version", version), slog.Int("providers", len(cfg.GetProviders())))
	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(glis) }()
	go func() { errc <- httpSrv.Serve(hlis) }()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	serving := false
	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			logger.Error("listener failed", slog.String("error", err.Error()))
			code = 1
			break loop
		case <-hup:
			s.reload("sighup", s.watched.readNow())
		case <-tick.C:
			if snap, ok := s.watched.poll(); ok {
				s.reload("file_changed", snap)
			}
			ready, _ := s.readiness()
			if ready != serving {
				serving = ready
				envoy.SetServing(hs, ready)
				logger.Info("health", slog.Bool("serving", ready))
			}
		}
	}
	s.shutdown(gs, hs, httpSrv)
	return code
}

// shutdown: health NOT_SERVING first so Envoy's health checks move
// traffic away, then the lameduck, then GracefulStop with a deadline so
// in-flight Checks finish.
func (s *server) shutdown(gs *grpc.Server, hs *health.Server, httpSrv *http.Server) {
	s.mu.Lock()
	cfg := s.rt.Config
	s.mu.Unlock()
	hs.Shutdown()
	s.log.Info("shutting down")
	if ld := cfg.GetLameduck().AsDuration(); ld > 0 {
		time.Sleep(ld) // the lameduck is the point: keep answering while balancers notice
	}
	grace := config.DefaultShutdownGrace
	if cfg.GetShutdownGrace() != nil {
		grace = cfg.GetShutdownGrace().AsDuration()
	}
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	t := time.NewTimer(grace)
	select {
	case <-done:
		t.Stop()
	case <-t.C:
		s.log.Warn("shutdown grace over; closing remaining streams")
		gs.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	httpSrv.Shutdown(ctx)
	s.log.Info("stopped")
}

// reload builds the config read in snap completely, then swaps it in; a
// bad one is refused, logged and counted, and the old one keeps serving.
func (s *server) reload(why string, snap snapshot) {
	cfg, err := snap.config()
	if err == nil {
		s.mu.Lock()
		var next *config.Runtime
		next, err = config.Build(cfg, s.env, s.rt)
		if err == nil {
			prev := s.rt
			s.rt = next
			s.current.Store(next.Authorizer)
			prev.Retire(next)
			if !proto.Equal(prev.Config.GetListen(), cfg.GetListen()) || !proto.Equal(prev.Config.GetLimits(), cfg.GetLimits()) ||
				!proto.Equal(prev.Config.GetHttpAuthz(), cfg.GetHttpAuthz()) {
				s.log.Warn("listen, limits and http_authz changes take effect at the next restart")
			}
		}
		s.mu.Unlock()
	}
	if err != nil {
		s.reloads.WithLabelValues("error").Inc()
		s.log.Error("config reload refused; the old config keeps serving", slog.String("trigger", why), slog.String("error", err.Error()))
		return
	}
	s.reloads.WithLabelValues("success").Inc()
	s.log.Info("config reloaded", slog.String("trigger", why))
}

func limits(cfg *configv1.Config) envoy.Limits {
	return envoy.Limits{
		MaxHeaders:     int(cfg.GetLimits().GetMaxHeaders()),
		MaxHeaderBytes: int(cfg.GetLimits().GetMaxHeaderBytes()),
	}
}

func (s *server) grpcServer(cfg *configv1.Config) (*grpc.Server, error) {
	maxRecv := int(cfg.GetLimits().GetMaxRequestBytes())
	if maxRecv == 0 {
		maxRecv = 1 << 20
	}
	streams := cfg.GetLimits().GetMaxConcurrentStreams()
	if streams == 0 {
		streams = 1000
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxConcurrentStreams(streams),
		// Envoy keeps long-lived HTTP/2 connections; allow its pings but
		// not a flood of them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		// Serve streams on long-lived workers: a fresh goroutine per Check
		// grows its stack on every request (runtime.copystack was 13% of the
		// server's CPU under load); a worker's stack is already grown.
		grpc.NumStreamWorkers(uint32(64 * runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(envoy.Recover(s.log)),
		// Check decodes only what a decision reads and sends stored answers.
		grpc.ForceServerCodecV2(envoy.Codec()),
	}
	if t := cfg.GetListen().GetTls(); t.GetCertFile() != "" {
		tc, err := serverTLS(t.GetCertFile(), t.GetKeyFile(), t.GetClientCaFile(), s.log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return grpc.NewServer(opts...), nil
}

// httpHandler serves /metrics, /healthz, /readyz and /debug/keys.
func (s *server) httpHandler(reg *prometheus.Registry, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, states := s.readiness()
		type notReady struct {
			Provider string `json:"provider"`
			Error    string `json:"error,omitempty"`
		}
		bad := []notReady{}
		for _, name := range slices.Sorted(maps.Keys(states)) {
			if st := states[name]; !st.Ready {
				bad = append(bad, notReady{Provider: name, Error: st.Error})
			}
		}
		body := map[string]any{"ready": ready, "providers": states}
		status := "ok"
		switch {
		case !ready:
			status = "starting"
			body["not_ready"] = bad
		case len(bad) > 0:
			status = "degraded"
			body["not_ready"] = bad
		}
		body["status"] = status
		w.Header().Set("Content-Type", "application/json")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("GET /debug/keys", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		providers := s.rt.Providers
		s.mu.Unlock()
		out := make([]jwks.Status, 0, len(providers))
		for _, p := range providers {
			out = append(out, p.Status())
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"providers": out})
	})
	return mux
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
